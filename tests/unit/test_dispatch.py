"""The typed command -> use-case table of the service."""

from __future__ import annotations

import pytest

from bot.core import commands
from bot.service import HANDLERS
from bot.usecases.context import Context, Deps, Reply
from bot.usecases.dispatch import Handlers


def test_every_verb_has_a_use_case() -> None:
    """Each command class the parser can produce is registered with the service."""
    missing = [verb for verb, command in commands.VERBS.items() if command not in HANDLERS]
    assert missing == []


def test_handler_for_picks_the_use_case_of_the_command_class() -> None:
    """The use case registered for a class receives the command itself; a class registered twice is refused."""
    seen: list[commands.Command] = []

    def whoami(deps: Deps, ctx: Context, cmd: commands.Whoami) -> Reply:
        seen.append(cmd)
        return Reply("me")

    handlers = Handlers().register(commands.Whoami, whoami)
    command = commands.Whoami()
    reply = handlers.handler_for(command)(None, None, command)  # the use case here reads neither
    assert (reply.text, seen) == ("me", [command])
    with pytest.raises(KeyError):
        handlers.handler_for(commands.Help())
    with pytest.raises(ValueError, match="already"):
        handlers.register(commands.Whoami, whoami)
