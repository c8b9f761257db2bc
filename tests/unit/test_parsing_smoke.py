"""`/model smoke MODEL VERSION`: parsed, printed back, and refused with its usage line when malformed."""

from __future__ import annotations

import pytest

from bot import parsing
from bot.core import commands
from bot.core.errors import UsageError

MODELS = ("fraud_detector",)


def test_smoke_parses_model_and_version() -> None:
    """The verb takes a model and a version and needs only the read-only `versions` permission."""
    command = parsing.parse("smoke fraud_detector 2", MODELS)
    assert command == commands.Smoke(model_name="fraud_detector", version=2)
    assert command.ACTION == "versions"
    assert parsing.parse(parsing.format_command(command), MODELS) == command


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("smoke fraud_detector", "missing VERSION"),
        ("smoke fraud_detectr 2", "did you mean fraud_detector"),
        ("smoke fraud_detector v2", "did you mean 2"),
        ("smoke fraud_detector 2 --reason x", "does not apply to smoke"),
    ],
)
def test_bad_smoke_commands_show_the_usage(text: str, says: str) -> None:
    """Malformed input gets the reason and the usage line, never a stack trace."""
    with pytest.raises(UsageError, match=says) as caught:
        parsing.parse(text, MODELS)
    assert caught.value.usage == "/model smoke MODEL VERSION"


def test_help_lists_smoke_for_viewers() -> None:
    """Whoever may run `versions` sees the smoke verb in help."""
    assert "/model smoke MODEL VERSION" in parsing.help_text(None, {"versions"})
    assert "/model smoke" not in parsing.help_text(None, {"list"})
