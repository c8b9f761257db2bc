"""bolt's fast tier: the bot's Slack listeners driven through `App.dispatch` in this process (no HTTP server, no
socket), with requests signed exactly as Slack signs them. Every SlackDriver helper works unchanged on it."""

from __future__ import annotations

import ast
import importlib
import time
from dataclasses import replace
from pathlib import Path

from slack_bolt import BoltRequest

from bot.frontends.slack import app as slack_app
from tests.e2e.slack_driver import FORM, HttpResult, SlackDriver, sign
from tests.e2e.stack import SECRET, Stack

SLACK_PACKAGE = Path(slack_app.__file__).parent
LISTENER_KINDS = ("command", "action", "view", "event")


class InProcessDriver(SlackDriver):
    """A SlackDriver whose requests go to the bolt App's `dispatch` instead of over HTTP."""

    def __init__(self, stack: Stack) -> None:
        super().__init__("in-process", SECRET, stack.fake.response_url)
        self._app = stack.server.slack.app

    def post(
        self, body: str, *, timestamp: int | None = None, signature: str | None = None, content_type: str = FORM
    ) -> HttpResult:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        headers = {
            "content-type": [content_type],
            "x-slack-request-timestamp": [ts],
            "x-slack-signature": [signature or sign(self.secret, ts, body)],
        }
        started = time.perf_counter()
        response = self._app.dispatch(BoltRequest(body=body, headers=headers))
        got = {name: values[0] for name, values in response.headers.items() if values}
        return HttpResult(response.status, response.body, got, time.perf_counter() - started)


def in_process(stack: Stack) -> Stack:
    """The same stack, its driver dispatching in-process."""
    return replace(stack, driver=InProcessDriver(stack))


def registered_listeners() -> set[tuple[str, str]]:
    """(kind, id) of every `@app.command/action/view/event(X)` in bot/frontends/slack, X resolved in its module."""
    found = set()
    for path in sorted(SLACK_PACKAGE.glob("*.py")):
        module = importlib.import_module(f"bot.frontends.slack.{path.stem}")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute) or not node.args:
                continue
            if node.func.attr in LISTENER_KINDS and ast.unparse(node.func.value) == "app":
                found.add((node.func.attr, str(_value(node.args[0], vars(module)))))
    return found


def _value(node: ast.expr, namespace: dict[str, object]) -> object:
    """A listener id written as a literal, a name or a dotted name (modals.REJECT_CALLBACK)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return namespace[node.id]
    if isinstance(node, ast.Attribute):
        return getattr(_value(node.value, namespace), node.attr)
    raise AssertionError(f"listener id written as {ast.unparse(node)}: give it a constant")
