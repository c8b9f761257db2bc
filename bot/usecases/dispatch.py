"""The command -> use-case table, typed: `register` accepts only a use case taking that command class, and
`handler_for` hands back the use case of a command's class (so no table entry needs a `type: ignore`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from bot.core import commands
from bot.usecases.context import Context, Deps, Reply

C = TypeVar("C", bound=commands.Command)
UseCase = Callable[[Deps, Context, C], Reply]


class Handlers:
    """One use case per command class (a plain dict inside)."""

    def __init__(self) -> None:
        self._by_class: dict[type[commands.Command], UseCase[commands.Command]] = {}

    def register(self, command: type[C], use_case: UseCase[C]) -> Handlers:
        """Dispatch commands of exactly `command`'s class to `use_case`; returns self, to chain."""
        if command in self._by_class:
            raise ValueError(f"{command.__name__} already has a use case")

        def run(deps: Deps, ctx: Context, cmd: commands.Command) -> Reply:
            assert isinstance(cmd, command)  # handler_for picked this entry by type(cmd)
            return use_case(deps, ctx, cmd)

        self._by_class[command] = run
        return self

    def handler_for(self, command: C) -> UseCase[C]:
        """The use case registered for `type(command)` (KeyError when there is none)."""
        return self._by_class[type(command)]

    def __contains__(self, command: type[commands.Command]) -> bool:
        return command in self._by_class
