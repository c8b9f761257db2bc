"""Plays Slack's side against the running bot: signed slash commands, button clicks and modal submissions."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

FORM = "application/x-www-form-urlencoded"
TEAM = "T0FAKE"


def sign(secret: str, timestamp: str, body: str) -> str:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: str
    headers: dict[str, str]
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    url: str,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
    timeout: float = 10.0,
) -> HttpResult:
    """One HTTP request with urllib; 4xx/5xx are returned, not raised."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body, status, got = response.read().decode(), response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        body, status, got = error.read().decode(), error.code, dict(error.headers)
    return HttpResult(status, body, {k.lower(): v for k, v in got.items()}, time.perf_counter() - started)


class SlackDriver:
    def __init__(self, url: str, secret: str, response_url: Any) -> None:
        self.url = url  # http://127.0.0.1:PORT/slack/events
        self.secret = secret
        self._response_url = response_url  # callable giving a fresh hook URL on the fake
        self._triggers = itertools.count(1)

    def post(
        self, body: str, *, timestamp: int | None = None, signature: str | None = None, content_type: str = FORM
    ) -> HttpResult:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature or sign(self.secret, ts, body),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        return http(self.url, body.encode(), headers)

    def trigger_id(self) -> str:
        return f"{next(self._triggers)}.1234.abcdef"

    def slash_command_body(
        self, text: str, user_id: str, channel_id: str = "C0OPS", response_url: str | None = None
    ) -> str:
        fields = {
            "token": "deprecated",
            "team_id": TEAM,
            "team_domain": "fake",
            "channel_id": channel_id,
            "channel_name": "ops",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": "/model",
            "text": text,
            "api_app_id": "A0MODELBOT",
            "is_enterprise_install": "false",
            "response_url": response_url or self._response_url(),
            "trigger_id": self.trigger_id(),
        }
        return urlencode(fields)

    def slash_command(self, text: str, user_id: str, channel_id: str = "C0OPS", **kwargs: Any) -> HttpResult:
        return self.post(self.slash_command_body(text, user_id, channel_id), **kwargs)

    def block_action_body(self, action_id: str, value: str, user_id: str, channel_id: str, message_ts: str) -> str:
        """A button click on a message (the approval card, an alert post)."""
        action = {"type": "button", "action_id": action_id, "block_id": f"decide:{value}", "value": value}
        return self.block_actions_body(user_id, action, channel_id=channel_id, message_ts=message_ts)

    def block_actions_body(
        self,
        user_id: str,
        action: dict[str, Any],
        *,
        channel_id: str | None = None,
        message_ts: str | None = None,
        view_id: str | None = None,
    ) -> str:
        """The form body of a `block_actions` payload with one action, as Slack sends it: clicked on a message
        (`channel_id` + `message_ts`, with a response_url) or on a view (`view_id`, e.g. the Home tab: no channel,
        no message, no response_url)."""
        action = {"text": {"type": "plain_text", "text": action["action_id"]}, "action_ts": str(time.time()), **action}
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": TEAM},
            "api_app_id": "A0MODELBOT",
            "token": "deprecated",
            "team": {"id": TEAM, "domain": "fake"},
            "is_enterprise_install": False,
            "trigger_id": self.trigger_id(),
            "state": {"values": {}},
            "actions": [action],
        }
        if view_id is not None:
            payload["container"] = {"type": "view", "view_id": view_id}
            payload["view"] = {"id": view_id, "type": "home", "callback_id": "", "private_metadata": "", "hash": "h"}
        else:
            payload["container"] = {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel_id,
                "is_ephemeral": False,
            }
            payload["channel"] = {"id": channel_id, "name": "ops"}
            payload["message"] = {"type": "message", "ts": message_ts, "bot_id": "B0MODELBOT"}
            payload["response_url"] = self._response_url()
        return urlencode({"payload": json.dumps(payload)})

    def click(self, action_id: str, value: str, user_id: str, channel_id: str, message_ts: str) -> HttpResult:
        return self.post(self.block_action_body(action_id, value, user_id, channel_id, message_ts))

    def submit_view(self, callback_id: str, user_id: str, values: dict[str, str], private_metadata: str) -> HttpResult:
        state = {block: {block: {"type": "plain_text_input", "value": value}} for block, value in values.items()}
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM, "domain": "fake"},
            "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": TEAM},
            "api_app_id": "A0MODELBOT",
            "token": "deprecated",
            "trigger_id": self.trigger_id(),
            "view": {
                "id": "V1",
                "type": "modal",
                "callback_id": callback_id,
                "private_metadata": private_metadata,
                "hash": "h",
                "state": {"values": state},
                "app_id": "A0MODELBOT",
                "bot_id": "B0MODELBOT",
            },
            "response_urls": [],
        }
        return self.post(urlencode({"payload": json.dumps(payload)}))
