"""`/model ...` text -> bot.core.commands: flags in any order, usage lines and "did you mean" on every
error, and help generated from one table (VERB_SPECS). Words come from bot.tokenising.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from bot.core import commands
from bot.core.durations import parse_duration
from bot.core.errors import UsageError
from bot.core.freeze import ALL_MODELS
from bot.texts import commands as texts
from bot.tokenising import Word, forbidden_character, one_line, quote_word, split_words

MAX_TEXT_LENGTH = 2000
MAX_NUMBER = 2**63 - 1  # TF Serving versions are int64; request ids fit the same bound
LIMIT_MIN, LIMIT_MAX = 1, 200
MAX_FREEZE_DAYS = 30
LABELS = ("stable", "canary")


@dataclass(frozen=True)
class VerbSpec:
    """What help and errors say about one verb, and the permission `action` it needs."""

    verb: str
    usage: str
    summary: str
    action: str
    flags: tuple[str, ...] = ()


_FLAGS_OF_VERB: Mapping[str, tuple[str, ...]] = {
    "promote": ("--label", "--reason", "--dry-run"),
    "rollback": ("--reason", "--dry-run", "--emergency"),
    "reject": ("--reason",),
    "history": ("--limit",),
    "list": ("--all", "--page"),
    "freeze": ("--reason", "--for"),
}
VERB_SPECS: Mapping[str, VerbSpec] = {
    verb: VerbSpec(verb, texts.USAGE[verb], texts.SUMMARY[verb], cls.ACTION, _FLAGS_OF_VERB.get(verb, ()))
    for verb, cls in commands.VERBS.items()
}
_VERB_OF_CLASS: Mapping[type[commands.Command], str] = {cls: verb for verb, cls in commands.VERBS.items()}

_VALUE_FLAGS: Mapping[str, str] = {
    "--reason": "TEXT",
    "--label": "LABEL",
    "--limit": "N",
    "--page": "N",
    "--for": "DURATION",
}
_SWITCHES = frozenset({"--dry-run", "--emergency", "--all"})
_HELP_FLAGS = frozenset({"--help", "-h"})
_ALL_FLAGS = (*_VALUE_FLAGS, *_SWITCHES, "--help")

_DIGITS = re.compile(r"[0-9]+")
_VERSIONISH = re.compile(r"(?:v|ver|version)?[#:=]?([0-9]+)(?:\.0+)?", re.IGNORECASE)
_REQUEST_ID = re.compile(r"#?[Rr]?([0-9]+)")
_NEGATIVE_NUMBER = re.compile(r"-[0-9]+(?:\.[0-9]+)?")


def parse(text: str, known_models: Collection[str]) -> commands.Command:
    """Parse the text after `/model` into a command; empty text is Help(). Raises UsageError only."""
    _check_characters(text)
    words = split_words(text, _usage_guess(text))
    if not words or _is_help_flag(words[0]):
        return commands.Help()
    spec = _verb_spec(words[0].text, texts.GENERAL_USAGE)
    rest = words[1:]
    if any(_is_help_flag(t) for t in rest):
        return commands.Help(spec.verb)
    args, flags = _split_flags(rest, spec)
    return _BUILDERS[spec.verb](spec, args, flags, known_models)


def format_command(command: commands.Command) -> str:
    """The canonical text of a command (without `/model`). `parse` reads it back to an equal command; a
    reason from elsewhere (a Slack modal) is first folded to one line, since commands are one line."""
    verb = _VERB_OF_CLASS[type(command)]
    words: list[str] = [verb]
    reason = one_line(getattr(command, "reason", ""))
    if isinstance(command, commands.Help) and command.verb:
        words.append(command.verb)
    elif isinstance(command, commands.Versions | commands.Status | commands.Resync):
        words.append(quote_word(command.model_name))
    elif isinstance(command, commands.Smoke):
        words += [quote_word(command.model_name), str(command.version)]
    elif isinstance(command, commands.Promote | commands.Rollback):
        words += [quote_word(command.model_name), str(command.version)]
        if isinstance(command, commands.Promote) and command.label != "stable":
            words += ["--label", command.label]
        words += ["--reason", quote_word(reason)] if reason else []
        words += ["--dry-run"] if command.dry_run else []
        words += ["--emergency"] if isinstance(command, commands.Rollback) and command.emergency else []
    elif isinstance(command, commands.Approve | commands.Reject | commands.Cancel | commands.Review | commands.Explain):
        words.append(commands.format_request_id(command.request_id))
        words += ["--reason", quote_word(reason)] if reason else []
    elif isinstance(command, commands.Freeze | commands.Unfreeze):
        words.append("all" if command.model_name == ALL_MODELS else quote_word(command.model_name))
        if isinstance(command, commands.Freeze):
            words += ["--reason", quote_word(reason)] if reason else []
            words += ["--for", f"{command.for_s}s"] if command.for_s else []
    elif isinstance(command, commands.ListModels):
        words += [quote_word(command.prefix)] if command.prefix else []
        words += ["--all"] if command.show_all else []
        words += ["--page", str(command.page)] if command.page != 1 else []
    elif isinstance(command, commands.History):
        words += [quote_word(command.model_name)] if command.model_name else []
        words += ["--limit", str(command.limit)] if command.limit != commands.History().limit else []
    return " ".join(words)


def help_text(verb: str | None, allowed_actions: Collection[str]) -> str:
    """Help generated from VERB_SPECS: the verbs the user may run, or the details of one verb."""
    if verb is None:
        lines = [texts.help_line(s.usage, s.summary) for s in VERB_SPECS.values() if s.action in allowed_actions]
        if not lines:
            return texts.HELP_NOTHING_ALLOWED
        return "\n".join([texts.HELP_HEADER, *lines, texts.HELP_FOOTER])
    spec = _verb_spec(verb, texts.USAGE["help"])
    lines = [spec.usage, spec.summary, *(f"  {texts.FLAG_HELP[f]}" for f in spec.flags)]
    if spec.verb in ("approve", "reject"):
        lines.append(texts.HELP_REQUEST_ID)
    lines.append(texts.help_permission(spec.action, spec.action in allowed_actions))
    return "\n".join(lines)


# --- words and verbs


def _check_characters(text: str) -> None:
    if len(text) > MAX_TEXT_LENGTH:
        raise UsageError(texts.text_too_long(len(text), MAX_TEXT_LENGTH), texts.GENERAL_USAGE)
    position = forbidden_character(text)
    if position is not None:
        raise UsageError(texts.control_character(ord(text[position]), position), _usage_guess(text))


def _usage_guess(text: str) -> str:
    words = text.split(maxsplit=1)
    spec = VERB_SPECS.get(words[0].lower()) if words else None
    return spec.usage if spec else texts.GENERAL_USAGE


def _closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like `word` (ignoring case), for "did you mean"."""
    by_folded = {cand.casefold(): cand for cand in candidates}
    match = difflib.get_close_matches(word.casefold(), by_folded, n=1, cutoff=0.6)
    return by_folded[match[0]] if match else None


def _verb_spec(word: str, usage: str) -> VerbSpec:
    spec = VERB_SPECS.get(word.lower())
    if spec is None:
        raise UsageError(texts.unknown_verb(word, _closest(word, VERB_SPECS)), usage)
    return spec


# --- flags


def _is_flag(word: Word) -> bool:
    text = word.text
    return not word.quoted and len(text) > 1 and text[0] == "-" and not _NEGATIVE_NUMBER.fullmatch(text)


def _is_help_flag(word: Word) -> bool:
    return not word.quoted and word.text.partition("=")[0].lower() in _HELP_FLAGS


def _split_flags(all_words: Sequence[Word], spec: VerbSpec) -> tuple[list[Word], dict[str, str]]:
    """Positional words in order, and flag -> value ("" for switches); flags may come anywhere."""
    args: list[Word] = []
    flags: dict[str, str] = {}
    i = 0
    while i < len(all_words):
        word = all_words[i]
        i += 1
        if not _is_flag(word):
            args.append(word)
            continue
        raw_name, has_value, value = word.text.partition("=")
        name = _flag_name(raw_name, spec)
        if name in flags:
            raise _error(texts.flag_repeated(name), spec)
        if name in _SWITCHES:
            if has_value:
                raise _error(texts.flag_takes_no_value(name), spec)
        elif not has_value:
            if i >= len(all_words) or _is_flag(all_words[i]):
                raise _error(texts.flag_needs_value(name, _VALUE_FLAGS[name]), spec)
            value = all_words[i].text
            i += 1
        flags[name] = value
    return args, flags


def _flag_name(raw: str, spec: VerbSpec) -> str:
    name = raw.lower()
    if name in spec.flags:
        return name
    if name in _ALL_FLAGS:
        raise _error(texts.flag_not_for_verb(name, spec.verb, spec.flags), spec)
    raise _error(texts.unknown_flag(raw, _closest(name, spec.flags or _ALL_FLAGS)), spec)


def _error(message: str, spec: VerbSpec) -> UsageError:
    return UsageError(message, spec.usage)


# --- arguments


def _expect(spec: VerbSpec, args: Sequence[Word], flags: Mapping[str, str], *names: str) -> list[Word]:
    """Exactly the positional arguments `names` (a name in [brackets] is optional and may be absent)."""
    required = [n for n in names if not n.startswith("[")]
    if len(args) < len(required):
        raise _error(texts.missing_argument(required[len(args)]), spec)
    extra = [t.text for t in args[len(names) :]]
    if extra:
        raise _error(texts.unexpected_arguments(extra, "--reason" in flags), spec)
    return list(args)


def _model(word: Word, known: Collection[str], spec: VerbSpec) -> str:
    if word.text in known:
        return word.text
    raise _error(texts.unknown_model(word.text, _closest(word.text, known), list(known)), spec)


def _version(word: Word, spec: VerbSpec) -> int:
    text = word.text
    if _DIGITS.fullmatch(text):
        if len(text.lstrip("0")) > 19 or int(text) > MAX_NUMBER:
            raise _error(texts.version_too_large(text), spec)
        if int(text) > 0:
            return int(text)
    match = _VERSIONISH.fullmatch(text)  # v2, V2, 2.0, version=2: say which number was meant
    suggestion = int(match.group(1)) if match and 0 < int(match.group(1)) <= MAX_NUMBER else None
    raise _error(texts.bad_version(text, suggestion), spec)


def _request_id(word: Word, spec: VerbSpec) -> int:
    match = _REQUEST_ID.fullmatch(word.text)
    if match is None or not int(match.group(1)):
        raise _error(texts.bad_request_id(word.text), spec)
    if len(match.group(1).lstrip("0")) > 19 or int(match.group(1)) > MAX_NUMBER:
        raise _error(texts.request_id_too_large(word.text), spec)
    return int(match.group(1))


def request_id_value(value: object) -> int | None:
    """The request id a Slack button value or modal metadata carries ("7" or 7), or None when it is not
    one a request can have (1 to MAX_NUMBER): such a value must be refused before it reaches the store."""
    if isinstance(value, str) and _DIGITS.fullmatch(value) and len(value.lstrip("0")) <= 19:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_NUMBER:
        return value
    return None


def _reason(flags: Mapping[str, str], spec: VerbSpec) -> str:
    reason = flags.get("--reason")
    if reason is None:
        return ""
    if not reason.strip():
        raise _error(texts.empty_reason("--reason"), spec)
    return reason.strip()


def _label(flags: Mapping[str, str], spec: VerbSpec) -> str:
    value = flags.get("--label", "stable")
    if value.lower() not in LABELS:
        raise _error(texts.bad_label(value, _closest(value, LABELS)), spec)
    return value.lower()


def _limit(flags: Mapping[str, str], spec: VerbSpec) -> int:
    value = flags.get("--limit")
    if value is None:
        return commands.History().limit
    if not _DIGITS.fullmatch(value) or len(value) > 4 or not LIMIT_MIN <= int(value) <= LIMIT_MAX:
        raise _error(texts.bad_limit(value, LIMIT_MIN, LIMIT_MAX), spec)
    return int(value)


# --- one builder per verb

_Flags = Mapping[str, str]
_Builder = Callable[[VerbSpec, Sequence[Word], _Flags, Collection[str]], commands.Command]


def _help(spec: VerbSpec, args: Sequence[Word], flags: _Flags, known: Collection[str]) -> commands.Command:
    words = _expect(spec, args, flags, "[VERB]")
    return commands.Help(_verb_spec(words[0].text, spec.usage).verb if words else None)


def _no_arguments(command: type[commands.Command]) -> _Builder:
    def build(spec: VerbSpec, args: Sequence[Word], flags: _Flags, known: Collection[str]) -> commands.Command:
        _expect(spec, args, flags)
        return command()

    return build


def _model_only(command: type[commands.Versions | commands.Status | commands.Resync]) -> _Builder:
    def build(spec: VerbSpec, args: Sequence[Word], flags: _Flags, known: Collection[str]) -> commands.Command:
        (model,) = _expect(spec, args, flags, "MODEL")
        return command(model_name=_model(model, known, spec))

    return build


def _promote(spec: VerbSpec, args: Sequence[Word], flags: _Flags, known: Collection[str]) -> commands.Command:
    model, version = _expect(spec, args, flags, "MODEL", "VERSION")
    return commands.Promote(
        model_name=_model(model, known, spec),
        version=_version(version, spec),
        label=_label(flags, spec),
        reason=_reason(flags, spec),
        dry_run="--dry-run" in flags,
    )


def _rollback(spec: VerbSpec, args: Sequence[Word], flags: _Flags, known: Collection[str]) -> commands.Command:
    model, version = _expect(spec, args, flags, "MODEL", "VERSION")
    return commands.Rollback(
        model_name=_model(model, known, spec),
        version=_version(version, spec),
        reason=_reason(flags, spec),
        dry_run="--dry-run" in flags,
        emergency="--emergency" in flags,
    )


def _smoke(spec: VerbSpec, args: Sequence[Word], flags: _Flags, known: Collection[str]) -> commands.Command:
    model, version = _expect(spec, args, flags, "MODEL", "VERSION")
    return commands.Smoke(model_name=_model(model, known, spec), version=_version(version, spec))


def _approve(spec: VerbSpec, args: Sequence[Word], flags: _Flags, known: Collection[str]) -> commands.Command:
    (request,) = _expect(spec, args, flags, "REQUEST_ID")
    return commands.Approve(request_id=_request_id(request, spec))


def _request_only(command: type[commands.Cancel | commands.Review | commands.Explain]) -> _Builder:
    def build(spec: VerbSpec, args: Sequence[Word], flags: _Flags, known: Collection[str]) -> commands.Command:
        (request,) = _expect(spec, args, flags, "REQUEST_ID")
        return command(request_id=_request_id(request, spec))

    return build


def _reject(spec: VerbSpec, args: Sequence[Word], flags: _Flags, known: Collection[str]) -> commands.Command:
    (request,) = _expect(spec, args, flags, "REQUEST_ID")
    return commands.Reject(request_id=_request_id(request, spec), reason=_reason(flags, spec))


def _list(spec: VerbSpec, args: Sequence[Word], flags: _Flags, known: Collection[str]) -> commands.Command:
    words = _expect(spec, args, flags, "[PREFIX]")
    page = flags.get("--page", "1")
    if not _DIGITS.fullmatch(page) or len(page) > 4 or int(page) < 1:
        raise _error(texts.bad_page(page), spec)
    return commands.ListModels(prefix=words[0].text if words else "", show_all="--all" in flags, page=int(page))


def _freeze(spec: VerbSpec, args: Sequence[Word], flags: _Flags, known: Collection[str]) -> commands.Command:
    (target,) = _expect(spec, args, flags, "MODEL|all")
    reason = _reason(flags, spec)
    if not reason:
        raise _error(texts.FREEZE_NEEDS_REASON, spec)
    duration = None
    if "--for" in flags:
        found = parse_duration(flags["--for"].lower())
        if found is None or found.total_seconds() <= 0 or found.days > MAX_FREEZE_DAYS:
            raise _error(texts.bad_freeze_duration(flags["--for"], MAX_FREEZE_DAYS), spec)
        duration = int(found.total_seconds())
    return commands.Freeze(model_name=_freeze_target(target, known, spec), reason=reason, for_s=duration)


def _unfreeze(spec: VerbSpec, args: Sequence[Word], flags: _Flags, known: Collection[str]) -> commands.Command:
    (target,) = _expect(spec, args, flags, "MODEL|all")
    return commands.Unfreeze(model_name=_freeze_target(target, known, spec))


def _freeze_target(word: Word, known: Collection[str], spec: VerbSpec) -> str:
    return ALL_MODELS if word.text.lower() == "all" and not word.quoted else _model(word, known, spec)


def _history(spec: VerbSpec, args: Sequence[Word], flags: _Flags, known: Collection[str]) -> commands.Command:
    words = _expect(spec, args, flags, "[MODEL]")
    if words and words[0].text not in known and _DIGITS.fullmatch(words[0].text):
        raise _error(texts.unexpected_arguments([words[0].text], False, limit_hint=words[0].text), spec)
    model = _model(words[0], known, spec) if words else None
    return commands.History(model_name=model, limit=_limit(flags, spec))


_BUILDERS: Mapping[str, _Builder] = {
    "help": _help,
    "list": _list,
    "versions": _model_only(commands.Versions),
    "status": _model_only(commands.Status),
    "promote": _promote,
    "rollback": _rollback,
    "approve": _approve,
    "reject": _reject,
    "requests": _no_arguments(commands.Requests),
    "history": _history,
    "whoami": _no_arguments(commands.Whoami),
    "resync": _model_only(commands.Resync),
    "freeze": _freeze,
    "unfreeze": _unfreeze,
    "cancel": _request_only(commands.Cancel),
    "review": _request_only(commands.Review),
    "explain": _request_only(commands.Explain),
    "smoke": _smoke,
}
