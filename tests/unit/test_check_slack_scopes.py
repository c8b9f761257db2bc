"""The scopes `check-config --online` requires are the ones the Slack front end's Web API calls need."""

from __future__ import annotations

import re
from pathlib import Path

from bot.checks import SLACK_METHOD_SCOPES, SLACK_SCOPE_USES

FRONTEND = Path(__file__).resolve().parents[2] / "bot" / "frontends" / "slack"
# `client.chat_postMessage(`, `self._client.usergroups_users_list(`: a WebClient method named after a Web API method.
CALL = re.compile(r"client\.([a-z]+(?:_[A-Za-z]+)+)\(")


def web_api_methods_called() -> set[str]:
    return {m.replace("_", ".") for f in FRONTEND.glob("*.py") for m in CALL.findall(f.read_text())}


def test_every_web_api_method_the_front_end_calls_has_its_scope_listed() -> None:
    """A new Web API call in bot/frontends/slack fails here until SLACK_METHOD_SCOPES says which scope it needs."""
    called = web_api_methods_called()
    assert {"chat.postMessage", "chat.update", "users.info", "usergroups.users.list"} <= called  # the scan works
    assert called - set(SLACK_METHOD_SCOPES) == set()


def test_every_required_scope_says_what_it_is_for() -> None:
    """Each scope the check can report missing has a use to name in the line (plus `commands` for /model)."""
    needed = {s for s in SLACK_METHOD_SCOPES.values() if s} | {"commands"}
    assert needed == set(SLACK_SCOPE_USES)
