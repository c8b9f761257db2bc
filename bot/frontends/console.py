"""The bot in a terminal: one line is one slash command; `:as` switches user; `:click` presses buttons.

Works from a pipe (one command per line, replies on stdout). A command that starts a rollout returns
when the rollout has finished, printing per-replica progress while it runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TextIO

from bot.core import commands
from bot.core.fleet import ProgressEvent
from bot.core.policy import Identity
from bot.service import Service
from bot.texts import replies as texts
from bot.usecases.context import Context

PROMPT = "modelbot> "
CONSOLE_HELP = """Console commands:
  /model ...                 a slash command, e.g. /model list
  :as USER [GROUP,GROUP]     act as another Slack user id (and user groups)
  :click approve|reject RID  press a button on an approval card, e.g. :click approve R1
  :whoami                    who you are acting as
  :quit                      leave"""


class Console:
    def __init__(
        self,
        service: Service,
        user: str,
        groups: Iterable[str] = (),
        out: TextIO = sys.stdout,
        extra: dict[str, Callable[[list[str]], str]] | None = None,
    ) -> None:
        self.service = service
        self.identity = Identity(user, frozenset(groups))
        self.out = out
        self.extra = extra or {}

    def run(self, lines: Iterable[str], echo: bool = False) -> int:
        """Process lines until EOF or :quit; returns the number of commands that failed."""
        failures = 0
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if echo:
                self._print(f"\n{self.identity.user_id}> {line}")
            if line in (":quit", ":q", ":exit"):
                break
            failures += 0 if self.execute(line) else 1
        return failures

    def execute(self, line: str) -> bool:
        if line.startswith(":"):
            return self._meta(line[1:].split())
        text = line.removeprefix("/model").strip() if line.startswith("/model") else line
        reply = self.service.handle_text(self._context(), text)
        self._print(reply.text)
        return reply.ok

    def _meta(self, words: list[str]) -> bool:
        verb, args = (words[0], words[1:]) if words else ("help", [])
        if verb == "as" and args:
            groups = frozenset(g for g in (args[1].split(",") if len(args) > 1 else []) if g)
            self.identity = Identity(args[0], groups)
            self._print(f"(now acting as {args[0]})")
            return True
        if verb == "whoami":
            self._print(self.identity.user_id)
            return True
        if verb == "click" and len(args) == 2 and args[0] in ("approve", "reject"):
            return self._click(args[0], args[1])
        if verb in self.extra:
            self._print(self.extra[verb](args))
            return True
        self._print(CONSOLE_HELP)
        return verb == "help"

    def _click(self, button: str, request: str) -> bool:
        digits = request.upper().removeprefix("R")
        if not digits.isdigit():
            self._print(f"Not a request id: {request!r} (expected e.g. R7)")
            return False
        command = commands.Approve(int(digits)) if button == "approve" else commands.Reject(int(digits))
        reply = self.service.handle(self._context(), command)
        self._print(reply.text)
        return reply.ok

    def _context(self) -> Context:
        return Context(actor=self.identity, channel=None, frontend="console", progress=self._progress)

    def _progress(self, event: ProgressEvent) -> None:
        self._print(texts.progress_line(event))

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)


def interactive_lines(stdin: TextIO = sys.stdin) -> Iterable[str]:
    """Lines from a terminal (with a prompt) or a pipe (without)."""
    if not stdin.isatty():
        yield from stdin
        return
    while True:
        try:
            yield input(PROMPT)
        except (EOFError, KeyboardInterrupt):
            print()
            return
