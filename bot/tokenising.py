"""Split slash-command text into words, forgiving what Slack clients do to typed text.

Shell-like, with three allowances: smart quotes (U+201C U+201D U+201E U+2018 U+2019) work like
ASCII quotes, an apostrophe inside a word (don't, also typed as U+2019) is a letter, and a leading
em or en dash (which macOS and iOS make of a typed `--`) is read as `--`. A quote opens at the start
of a word or right after `=`, and closes at a matching quote followed by a space or the end of the
text; inside ASCII double quotes a backslash escapes `"` and `\\`. Errors are UsageError with the
usage line given.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from bot.core.errors import UsageError
from bot.texts import commands as texts

# A quote opened by the key closes at any of its value (clients often mismatch smart quotes).
_CLOSERS: Mapping[str, str] = {
    '"': '"',
    "'": "'",
    "\u201c": '\u201d\u201c"',  # left double quotation mark: what Slack clients make of a typed "
    "\u201d": '\u201d\u201c"',  # right double quotation mark
    "\u201e": '\u201d\u201c"',  # double low-9 quotation mark (German keyboards)
    "\u2018": "\u2019\u2018'",  # left single quotation mark
    "\u2019": "\u2019\u2018'",  # right single quotation mark
}
_QUOTE_CHARS = frozenset("".join(_CLOSERS) + "".join(_CLOSERS.values()))
DASHES = "\u2014\u2013"  # em and en dash


@dataclass(frozen=True)
class Word:
    text: str
    quoted: bool  # the word began with a quote: it is a value, never a flag


def _is_forbidden(ch: str) -> bool:
    """Control, format (bidi override, zero-width), surrogate and line/paragraph separator characters;
    the zero-width joiner is allowed because emoji sequences use it."""
    category = unicodedata.category(ch)
    return category in ("Cc", "Cs", "Zl", "Zp") or (category == "Cf" and ch != "\u200d")


def forbidden_character(text: str) -> int | None:
    """Index of the first character a command may not contain, or None."""
    return next((index for index, ch in enumerate(text) if _is_forbidden(ch)), None)


def one_line(value: str) -> str:
    """`value` without forbidden characters: line breaks and other controls become spaces, invisible
    format characters are dropped (e.g. a multi-line reason typed into a Slack modal)."""
    parts = [
        (" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else "") if _is_forbidden(ch) else ch for ch in value
    ]
    return "".join(parts).strip()


def split_words(text: str, usage: str) -> list[Word]:
    """The words of `text`; an unclosed quote raises UsageError(..., usage)."""
    words: list[Word] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start, parts = i, []
        while i < n and not text[i].isspace():
            if text[i] in _CLOSERS and (i == start or text[i - 1] == "="):
                value, i = _read_quoted(text, i, usage)
                parts.append(value)
            else:
                parts.append(text[i])
                i += 1
        word, quoted = "".join(parts), text[start] in _CLOSERS
        if not quoted and word[:1] in DASHES:
            word = "--" + word[1:]
        words.append(Word(word, quoted))
    return words


def quote_word(value: str) -> str:
    """`value` as one word `split_words` reads back unchanged: bare when safe, else in escaped double quotes."""
    if value and value[0] not in "-" + DASHES and not any(ch.isspace() or ch in _QUOTE_CHARS for ch in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _read_quoted(text: str, start: int, usage: str) -> tuple[str, int]:
    """The text inside the quote opened at `start`, and the index just after its closing quote."""
    opener, parts = text[start], []
    closers = _CLOSERS[opener]
    i, n = start + 1, len(text)
    while i < n:
        ch = text[i]
        if opener == '"' and ch == "\\" and i + 1 < n and text[i + 1] in '"\\':
            parts.append(text[i + 1])
            i += 2
        elif ch in closers and (i + 1 == n or text[i + 1].isspace()):
            return "".join(parts), i + 1
        else:
            parts.append(ch)
            i += 1
    raise UsageError(texts.unbalanced_quote(opener, start), usage)
