"""`/model ...` text -> commands: a table of good inputs, a table of bad ones, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core import commands
from bot.core.errors import UsageError
from bot.parsing import VERB_SPECS, format_command, help_text, parse, request_id_value
from bot.texts import commands as texts
from bot.tokenising import forbidden_character, one_line, quote_word, split_words

MODELS = ("fraud_detector", "churn_model")
U = texts.USAGE

GOOD = [
    ("", commands.Help()),
    ("   ", commands.Help()),
    ("help", commands.Help()),
    ("help rollback", commands.Help("rollback")),
    ("help Rollback", commands.Help("rollback")),
    ("--help", commands.Help()),
    ("rollback --help", commands.Help("rollback")),
    ("rollback fraud_detector -h --bogus", commands.Help("rollback")),
    ("list", commands.ListModels()),
    ("LIST", commands.ListModels()),
    ("versions fraud_detector", commands.Versions("fraud_detector")),
    ("versions\u00a0fraud_detector", commands.Versions("fraud_detector")),
    ("status churn_model", commands.Status("churn_model")),
    ("promote fraud_detector 3", commands.Promote("fraud_detector", 3)),
    (
        "promote fraud_detector 3 --label canary --dry-run",
        commands.Promote("fraud_detector", 3, "canary", dry_run=True),
    ),
    ("promote fraud_detector 3 --label=CANARY", commands.Promote("fraud_detector", 3, "canary")),
    (
        'promote --dry-run fraud_detector --reason "new data" 3',
        commands.Promote("fraud_detector", 3, reason="new data", dry_run=True),
    ),
    (
        'rollback fraud_detector 2 --reason "INC-481 false positives"',
        commands.Rollback("fraud_detector", 2, "INC-481 false positives"),
    ),
    (
        "rollback fraud_detector 2 --reason 'INC 481' --emergency",
        commands.Rollback("fraud_detector", 2, "INC 481", emergency=True),
    ),
    ("rollback fraud_detector 2 --reason \u201cINC 481\u201d", commands.Rollback("fraud_detector", 2, "INC 481")),
    ("rollback fraud_detector 2 --reason \u201dINC 481\u201d", commands.Rollback("fraud_detector", 2, "INC 481")),
    ("rollback fraud_detector 2 --reason \u2018INC 481\u2019", commands.Rollback("fraud_detector", 2, "INC 481")),
    (
        "rollback fraud_detector 2 --reason \u201cdon\u2019t page\u201d",
        commands.Rollback("fraud_detector", 2, "don\u2019t page"),
    ),
    ('rollback fraud_detector 2 --reason "don\'t page"', commands.Rollback("fraud_detector", 2, "don't page")),
    ("rollback fraud_detector 2 --reason 'don't page'", commands.Rollback("fraud_detector", 2, "don't page")),
    ("rollback fraud_detector 2 --reason don't", commands.Rollback("fraud_detector", 2, "don't")),
    ('rollback fraud_detector 2 --reason="INC 481"', commands.Rollback("fraud_detector", 2, "INC 481")),
    ("rollback fraud_detector 2 --reason=INC-481", commands.Rollback("fraud_detector", 2, "INC-481")),
    ('rollback fraud_detector 2 --reason "say \\"hi\\" now"', commands.Rollback("fraud_detector", 2, 'say "hi" now')),
    ('rollback fraud_detector 2 --reason "  padded  "', commands.Rollback("fraud_detector", 2, "padded")),
    (
        "rollback fraud_detector 2 \u2014reason INC-481 \u2014dry-run",
        commands.Rollback("fraud_detector", 2, "INC-481", dry_run=True),
    ),
    ("rollback fraud_detector 2 \u2013dry-run", commands.Rollback("fraud_detector", 2, dry_run=True)),
    ("rollback fraud_detector 02", commands.Rollback("fraud_detector", 2)),
    ('rollback "fraud_detector" "2"', commands.Rollback("fraud_detector", 2)),
    ("Rollback fraud_detector 2 --DRY-RUN", commands.Rollback("fraud_detector", 2, dry_run=True)),
    ("approve R7", commands.Approve(7)),
    ("approve r7", commands.Approve(7)),
    ("approve 7", commands.Approve(7)),
    ("approve #R7", commands.Approve(7)),
    ("reject R12 --reason 'wrong model'", commands.Reject(12, "wrong model")),
    ("reject R12", commands.Reject(12)),
    ("requests", commands.Requests()),
    ("whoami", commands.Whoami()),
    ("history", commands.History()),
    ("history fraud_detector", commands.History("fraud_detector")),
    ("history --limit 200", commands.History(limit=200)),
    ("history --limit=1 fraud_detector", commands.History("fraud_detector", 1)),
]


@pytest.mark.parametrize(("text", "expected"), GOOD, ids=[t or "<empty>" for t, _ in GOOD])
def test_parses_good_input(text: str, expected: commands.Command) -> None:
    """Each well-formed text becomes exactly the expected command."""
    assert parse(text, MODELS) == expected


BAD = [
    ("rolback fraud_detector 2", "unknown command 'rolback'; did you mean rollback?", texts.GENERAL_USAGE),
    ("deploy x", "unknown command 'deploy'", texts.GENERAL_USAGE),
    ('"--dry-run"', "unknown command '--dry-run'", texts.GENERAL_USAGE),
    ("rollback fraud_detecter 2", "unknown model 'fraud_detecter'; did you mean fraud_detector?", U["rollback"]),
    ("status nosuch", "unknown model 'nosuch' (models: churn_model, fraud_detector)", U["status"]),
    ("history Fraud_Detector", "unknown model 'Fraud_Detector'; did you mean fraud_detector?", U["history"]),
    ("rollback", "missing MODEL", U["rollback"]),
    ("rollback fraud_detector", "missing VERSION", U["rollback"]),
    ("versions", "missing MODEL", U["versions"]),
    ("rollback fraud_detector v2", "VERSION must be a positive whole number, not 'v2'; did you mean 2?", U["rollback"]),
    ("promote fraud_detector V3", "VERSION must be a positive whole number, not 'V3'; did you mean 3?", U["promote"]),
    (
        "rollback fraud_detector 2.0",
        "VERSION must be a positive whole number, not '2.0'; did you mean 2?",
        U["rollback"],
    ),
    ("rollback fraud_detector two", "VERSION must be a positive whole number, not 'two'", U["rollback"]),
    ("rollback fraud_detector 0", "VERSION must be a positive whole number, not '0'", U["rollback"]),
    ("rollback fraud_detector -1", "VERSION must be a positive whole number, not '-1'", U["rollback"]),
    ("rollback fraud_detector \uff12", "VERSION must be a positive whole number, not '\uff12'", U["rollback"]),
    ("rollback fraud_detector 99999999999999999999", "VERSION '99999999999999999999' is too large", U["rollback"]),
    ("rollback fraud_detector 2 --reason", "--reason needs a value: --reason TEXT", U["rollback"]),
    ("rollback fraud_detector 2 --reason --dry-run", "--reason needs a value: --reason TEXT", U["rollback"]),
    ("rollback fraud_detector 2 --reson x", "unknown option '--reson'; did you mean --reason?", U["rollback"]),
    ("rollback fraud_detector 2 -x", "unknown option '-x'", U["rollback"]),
    (
        "rollback fraud_detector 2 --limit 5",
        "--limit does not apply to rollback; rollback takes --reason, --dry-run, --emergency",
        U["rollback"],
    ),
    (
        "promote fraud_detector 2 --emergency",
        "--emergency does not apply to promote; promote takes --label, --reason, --dry-run",
        U["promote"],
    ),
    ("list --dry-run", "--dry-run does not apply to list; list takes --all, --page", U["list"]),
    ("whoami --dry-run", "--dry-run does not apply to whoami; whoami takes no options", U["whoami"]),
    ("rollback fraud_detector 2 --dry-run=yes", "--dry-run takes no value", U["rollback"]),
    ("rollback fraud_detector 2 --reason a --reason b", "--reason is given twice", U["rollback"]),
    ('rollback fraud_detector 2 --reason ""', "--reason is empty; say why in a few words", U["rollback"]),
    ("rollback fraud_detector 2 --reason= ", "--reason is empty; say why in a few words", U["rollback"]),
    (
        "rollback fraud_detector 2 --reason INC 481",
        "unexpected '481': put a reason of several words in quotes, --reason \"like this\"",
        U["rollback"],
    ),
    ("list fraud extra", "unexpected 'extra'", U["list"]),
    ("whoami U02BOB", "unexpected 'U02BOB'", U["whoami"]),
    ("promote fraud_detector 2 --label prod", "--label must be stable or canary, not 'prod'", U["promote"]),
    (
        "promote fraud_detector 2 --label stabel",
        "--label must be stable or canary, not 'stabel'; did you mean stable?",
        U["promote"],
    ),
    ("history --limit 0", "--limit must be a whole number from 1 to 200, not '0'", U["history"]),
    ("history --limit 201", "--limit must be a whole number from 1 to 200, not '201'", U["history"]),
    ("history --limit ten", "--limit must be a whole number from 1 to 200, not 'ten'", U["history"]),
    ("history 50", "unexpected '50'; did you mean --limit 50?", U["history"]),
    ("approve", "missing REQUEST_ID", U["approve"]),
    ("approve X7", "REQUEST_ID must look like R7, not 'X7'", U["approve"]),
    ("approve R0", "REQUEST_ID must look like R7, not 'R0'", U["approve"]),
    ("approve R7 R8", "unexpected 'R8'", U["approve"]),
    ('rollback fraud_detector 2 --reason "INC 481', 'the quote " at position 36 is never closed', U["rollback"]),
    (
        "rollback fraud_detector 2 --reason \u201cINC 481",
        "the quote \u201c at position 36 is never closed",
        U["rollback"],
    ),
    ("list\nwhoami", "the command contains an invisible or control character (U+000A at position 5)", U["list"]),
    ("list\twhoami", "the command contains an invisible or control character (U+0009 at position 5)", U["list"]),
    (
        "status fraud\u202edetector",
        "the command contains an invisible or control character (U+202E at position 13)",
        U["status"],
    ),
    ("help rolback", "unknown command 'rolback'; did you mean rollback?", U["help"]),
    ("help list extra", "unexpected 'extra'", U["help"]),
    ("x" * 2001, "the command is 2,001 characters long; the limit is 2,000", texts.GENERAL_USAGE),
    ("approve " + "9" * 30, texts.request_id_too_large("9" * 30), U["approve"]),
]


@pytest.mark.parametrize(("text", "message", "usage"), BAD, ids=[t[:40] for t, _, _ in BAD])
def test_rejects_bad_input_with_message_and_usage(text: str, message: str, usage: str) -> None:
    """Each bad text raises UsageError with the exact one-line message and the verb's usage line."""
    with pytest.raises(UsageError) as caught:
        parse(text, MODELS)
    assert str(caught.value) == message
    assert caught.value.usage == usage


def test_long_input_is_shortened_in_the_message() -> None:
    """A long offending word is echoed back shortened, so the error stays one short line."""
    with pytest.raises(UsageError) as caught:
        parse("status " + "m" * 500, MODELS)
    assert len(str(caught.value)) < 120
    assert "\u2026" in str(caught.value)


def test_text_of_exactly_the_limit_is_parsed() -> None:
    """2,000 characters is allowed; only longer text is refused."""
    text = "rollback fraud_detector 2 --reason " + "r" * (2000 - 35)
    assert len(text) == 2000
    assert parse(text, MODELS) == commands.Rollback("fraud_detector", 2, "r" * 1965)


def test_no_known_models_says_so() -> None:
    """With no models configured, an unknown-model error says that instead of suggesting nothing."""
    with pytest.raises(UsageError, match="no models are configured"):
        parse("status fraud_detector", ())


# --- help


def test_verb_specs_cover_every_command() -> None:
    """VERB_SPECS has one entry per command class, carrying its permission action and usage line."""
    assert set(VERB_SPECS) == set(commands.VERBS)
    for verb, spec in VERB_SPECS.items():
        assert spec.action == commands.VERBS[verb].ACTION
        assert spec.usage.startswith(f"/model {verb}")
        assert spec.summary


def test_help_lists_only_allowed_verbs() -> None:
    """The overview shows the verbs whose action the user holds, and none of the others."""
    text = help_text(None, {"help", "list", "rollback"})
    assert U["rollback"] in text
    assert U["list"] in text
    assert U["approve"] not in text
    assert U["promote"] not in text


def test_help_with_no_permissions_says_whom_to_ask() -> None:
    """A user with no allowed action gets the 'ask for access' text, not an empty list."""
    assert help_text(None, set()) == texts.HELP_NOTHING_ALLOWED


def test_help_for_one_verb_shows_flags_and_permission() -> None:
    """Details of a verb include its usage, each of its flags, and whether the user may run it."""
    text = help_text("rollback", {"list"})
    assert text.splitlines()[0] == U["rollback"]
    for flag in ("--reason", "--dry-run", "--emergency"):
        assert flag in text
    assert "--limit" not in text
    assert texts.help_permission("rollback", allowed=False) in text
    assert texts.help_permission("list", allowed=True) in help_text("LIST", {"list"})


def test_help_for_unknown_verb_suggests() -> None:
    """help_text refuses an unknown verb with did-you-mean and the help usage line."""
    with pytest.raises(UsageError) as caught:
        help_text("aprove", {"approve"})
    assert str(caught.value) == "unknown command 'aprove'; did you mean approve?"
    assert caught.value.usage == U["help"]


# --- properties

SAFE_TEXT = st.characters(blacklist_categories=("Cc", "Cs", "Cf", "Zl", "Zp"))
REASONS = st.text(SAFE_TEXT, min_size=1, max_size=60).map(str.strip).filter(bool)
VERSIONS = st.integers(min_value=1, max_value=2**63 - 1)
MODEL = st.sampled_from(MODELS)
COMMANDS = st.one_of(
    st.builds(commands.Help, st.none() | st.sampled_from(sorted(commands.VERBS))),
    st.builds(commands.ListModels),
    st.builds(commands.Versions, MODEL),
    st.builds(commands.Status, MODEL),
    st.builds(
        commands.Promote, MODEL, VERSIONS, st.sampled_from(("stable", "canary")), st.just("") | REASONS, st.booleans()
    ),
    st.builds(commands.Rollback, MODEL, VERSIONS, st.just("") | REASONS, st.booleans(), st.booleans()),
    st.builds(commands.Approve, VERSIONS),
    st.builds(commands.Reject, VERSIONS, st.just("") | REASONS),
    st.builds(commands.Requests),
    st.builds(commands.History, st.none() | MODEL, st.integers(1, 200)),
    st.builds(commands.Whoami),
)


@given(COMMANDS)
def test_round_trips_valid_commands(command: commands.Command) -> None:
    """Any valid command, written out canonically, parses back to an equal command."""
    assert parse(format_command(command), MODELS) == command


@given(st.sampled_from([commands.Rollback, commands.Promote]), st.text(max_size=500))
def test_any_reason_formats_to_parseable_text(kind: type[commands.Rollback | commands.Promote], reason: str) -> None:
    """A reason from outside the parser (a multi-line Slack modal field) still formats to text that parses,
    folded to one line."""
    parsed = parse(format_command(kind("fraud_detector", 2, reason=reason)), MODELS)
    assert isinstance(parsed, kind)
    assert parsed.reason == one_line(reason)
    assert forbidden_character(parsed.reason) is None


def test_multiline_reason_is_folded() -> None:
    """Line breaks in a reason become spaces and invisible characters vanish when a command is formatted."""
    text = format_command(commands.Reject(7, "wrong model\nsee INC-9\u200b"))
    assert text == 'reject R7 --reason "wrong model see INC-9"'


@given(st.text(SAFE_TEXT, max_size=80))
def test_quote_word_round_trips(value: str) -> None:
    """quote_word makes any printable value one word that tokenises back to exactly that value."""
    assert [w.text for w in split_words(quote_word(value), "")] == [value]


def _assert_parses_or_explains(text: str) -> None:
    try:
        result = parse(text, MODELS)
    except UsageError as exc:
        message = str(exc)
        assert message
        assert "\n" not in message
        assert exc.usage.startswith("/model")
    else:
        assert isinstance(result, commands.Command)


@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_usage_error(text: str) -> None:
    """Any text at all either parses or raises a one-line UsageError with a usage line, never anything else."""
    _assert_parses_or_explains(text)


FRAGMENTS = st.sampled_from(
    [*commands.VERBS, *MODELS, "--reason", "--label", "--limit", "--dry-run", "--emergency", "--help", "--reason=",
     "--label=canary", '"', "'", "\u201c", "\u201d", "\u2018", "\u2019", "\u2014dry-run", "=", "R7", "r0", "7",
     "v2", "-1", "0", "200", "201", "stable", "canary", "\\", '\\"', "x y"]
)  # fmt: skip


@given(st.lists(FRAGMENTS | st.text(max_size=8), max_size=10), st.sampled_from([" ", "", "\u00a0", "  "]))
def test_command_like_text_raises_only_usage_error(parts: list[str], separator: str) -> None:
    """Near-miss commands assembled from real verbs, flags and quotes parse or raise UsageError only."""
    _assert_parses_or_explains(separator.join(parts))


# --- 64-bit bounds: TF Serving versions are int64 and the store's ids are BIGINT (issue 7 item 5)

INT64_MAX = 2**63 - 1
INT64_BOUNDS_GOOD = [
    ("promote fraud_detector 20240101120000", commands.Promote("fraud_detector", 20240101120000)),
    (f"promote fraud_detector {INT64_MAX}", commands.Promote("fraud_detector", INT64_MAX)),
    (f"rollback fraud_detector {INT64_MAX}", commands.Rollback("fraud_detector", INT64_MAX)),
    (f"rollback fraud_detector 000{INT64_MAX}", commands.Rollback("fraud_detector", INT64_MAX)),
    ("approve R999999999999", commands.Approve(999999999999)),
    (f"approve R{INT64_MAX}", commands.Approve(INT64_MAX)),
    (f"reject {INT64_MAX}", commands.Reject(INT64_MAX)),
]


@pytest.mark.parametrize(("text", "expected"), INT64_BOUNDS_GOOD, ids=[t for t, _ in INT64_BOUNDS_GOOD])
def test_versions_and_request_ids_up_to_int64_max_are_accepted(text: str, expected: commands.Command) -> None:
    """Timestamp-named versions and any id up to 2^63-1 parse to exactly that number."""
    assert parse(text, MODELS) == expected


INT64_BOUNDS_BAD = [
    (f"promote fraud_detector {INT64_MAX + 1}", f"VERSION '{INT64_MAX + 1}' is too large", U["promote"]),
    (f"rollback fraud_detector {INT64_MAX + 1}", f"VERSION '{INT64_MAX + 1}' is too large", U["rollback"]),
    ("promote fraud_detector 99999999999999999999999", "VERSION '99999999999999999999999' is too large", U["promote"]),
    ("promote fraud_detector -20240101120000", "VERSION must be a positive whole number, not '-20240101120000'",
     U["promote"]),
    (f"approve R{INT64_MAX + 1}", f"REQUEST_ID 'R{INT64_MAX + 1}' is too large; no request has such a number",
     U["approve"]),
    ("reject 99999999999999999999999 --reason x",
     "REQUEST_ID '99999999999999999999999' is too large; no request has such a number", U["reject"]),
    ("approve -7", "REQUEST_ID must look like R7, not '-7'", U["approve"]),
    ("approve R-7", "REQUEST_ID must look like R7, not 'R-7'", U["approve"]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message", "usage"), INT64_BOUNDS_BAD, ids=[t for t, _, _ in INT64_BOUNDS_BAD])
def test_numbers_beyond_int64_or_negative_are_refused_clearly(text: str, message: str, usage: str) -> None:
    """A version or request id above 2^63-1, or negative, is a one-line UsageError, never reaching the store."""
    with pytest.raises(UsageError) as caught:
        parse(text, MODELS)
    assert str(caught.value) == message
    assert caught.value.usage == usage


BUTTON_VALUES = [
    ("7", 7),
    ("999999999999999999", 999999999999999999),
    (str(INT64_MAX), INT64_MAX),
    (INT64_MAX, INT64_MAX),
    (str(INT64_MAX + 1), None),
    ("99999999999999999999999", None),
    ("0", None),
    ("-7", None),
    ("R7", None),
    ("", None),
    (INT64_MAX + 1, None),
    (0, None),
    (True, None),
    (None, None),
    ("9" * 5000, None),
]


@pytest.mark.parametrize(("value", "expected"), BUTTON_VALUES, ids=[repr(v)[:30] for v, _ in BUTTON_VALUES])
def test_button_and_modal_request_values_are_bounded(value: object, expected: int | None) -> None:
    """A card button value or modal metadata names a request only if it is a whole number from 1 to 2^63-1."""
    assert request_id_value(value) == expected


def test_the_general_usage_names_every_verb() -> None:
    """The line shown after an unknown verb lists every verb the parser knows (freeze/unfreeze were missing)."""
    listed = set(texts.GENERAL_USAGE.split()[1].split("|"))
    assert listed == set(commands.VERBS)
