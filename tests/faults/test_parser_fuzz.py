"""The `/model` parser under 1,000 hostile texts per property: a command or a UsageError, nothing else.

tests/unit/test_parsing.py holds the quick (100-example) versions; these go further: texts longer than the
limit, every Unicode category (controls, surrogates, bidi marks, zero-width), numbers past int64, and near-miss
commands glued from real verbs, flags and quotes with odd separators.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core import commands
from bot.core.errors import UsageError
from bot.parsing import MAX_TEXT_LENGTH, parse

MODELS = ("fraud_detector", "payload_scorer", "m")
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WORDS = st.sampled_from(
    [*commands.VERBS, *MODELS, "--reason", "--label", "--limit", "--dry-run", "--emergency", "--help", "-h",
     "--reason=", "--label=stable", "--limit=0", "--", "-", '"', "'", "\u201c", "\u201d", "\u2018", "\u2019",
     "\u2014reason", "\u2013dry-run", "=", "#", "R7", "#R7", "r0", "7", "v2", "ver:3", "version=4", "2.0", "2.5",
     "-1", "0", "00", str(2**63 - 1), str(2**63), "9" * 5000, "1e3", "\uff11", "\u0663", "stable", "canary", "\\",
     '\\"', "x y", "&amp;", "&lt;", "<@U01ALICE>", "<!channel>", "\x00", "\u202e", "\u200b", "\ud800", "\n", "\t",
     "payload"]
)  # fmt: skip
SEPARATORS = st.sampled_from([" ", "", "  ", "\u00a0", "\t", "\n", "\u3000", "\u2003"])


def _parses_or_explains(text: str) -> None:
    try:
        result = parse(text, MODELS)
    except UsageError as exc:
        assert str(exc), "a UsageError must say what is wrong"
        assert exc.usage.startswith("/model"), exc.usage
    else:
        assert isinstance(result, commands.Command)


@FUZZ
@given(st.text(max_size=MAX_TEXT_LENGTH + 200))
def test_any_text_parses_or_raises_usage_error(text: str) -> None:
    """Any text up to past the length limit is a command or a UsageError, never another exception."""
    _parses_or_explains(text)


@FUZZ
@given(st.lists(WORDS | st.text(max_size=12), max_size=14), SEPARATORS)
def test_near_miss_commands_parse_or_raise_usage_error(parts: list[str], separator: str) -> None:
    """Texts glued from real verbs, model names, flags, quotes and odd numbers: a command or a UsageError."""
    _parses_or_explains(separator.join(parts))


@FUZZ
@given(st.sampled_from(sorted(commands.VERBS)), st.lists(WORDS, max_size=8), st.text(max_size=60))
def test_each_verb_with_junk_arguments_parses_or_raises_usage_error(verb: str, words: list[str], tail: str) -> None:
    """Every verb followed by junk arguments and a random tail: a command or a UsageError."""
    _parses_or_explains(" ".join([verb, *words, tail]))
