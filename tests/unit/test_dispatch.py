"""The typed command -> use-case table of the service."""

from __future__ import annotations

import pytest

from bot.core import commands as c
from bot.service import HANDLERS
from bot.usecases.context import Context, Deps, Reply
from bot.usecases.dispatch import Handlers


def test_every_verb_has_a_use_case() -> None:
    """Each command class the parser can produce is registered with the service."""
    missing = [verb for verb, command in c.VERBS.items() if command not in HANDLERS]
    assert missing == []


def test_handler_for_picks_the_use_case_of_the_command_class() -> None:
    """The use case registered for a class receives the command itself; a class registered twice is refused."""
    seen: list[c.Command] = []

    def whoami(deps: Deps, ctx: Context, cmd: c.Whoami) -> Reply:
        seen.append(cmd)
        return Reply("me")

    handlers = Handlers().register(c.Whoami, whoami)
    command = c.Whoami()
    reply = handlers.handler_for(command)(None, None, command)  # the use case here reads neither
    assert (reply.text, seen) == ("me", [command])
    with pytest.raises(KeyError):
        handlers.handler_for(c.Help())
    with pytest.raises(ValueError, match="already"):
        handlers.register(c.Whoami, whoami)
