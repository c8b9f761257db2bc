"""A fake Slack Web API on loopback (ThreadingHTTPServer, standard library only), per slack.md §9.

Point the bot at `fake.api_url` (SLACK_API_URL / WebClient(base_url=...)). Every call is recorded; messages
posted are kept so chat.update can find (or miss) them; users and user groups are filled by the test;
`response_url()` gives hook URLs standing in for Slack's response_url. Failures are injected per method:

    fake.fail_next("chat.postMessage", 3, status=500)                # HTTP 500 three times
    fake.fail_next("chat.postMessage", 1, status=429, retry_after=1)  # rate limited
    fake.fail_next("chat.postMessage", 1, error="channel_not_found")  # HTTP 200, ok: false
    fake.fail_next("chat.postMessage", 1, status=0, hang_s=15)       # no answer for 15 s, then dropped
    fake.fail_next("chat.update", 1, hang_s=15)                       # carried out and answered after 15 s

`fake.scopes` is what the token is granted (the `x-oauth-scopes` header of auth.test); `add_channel` makes a
channel conversations.info knows (any other id is channel_not_found); posting in one added with `member=False`
answers not_in_channel (channel_not_found if private), in an archived one is_archived. `home_views` holds what
views.publish set per user; chat.getPermalink answers for messages the fake holds.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

BOT_USER = "U0MODELBOT"
TEAM = "T0FAKE"
SCOPES = ("commands", "chat:write", "users:read", "usergroups:read", "im:write")


@dataclass(frozen=True)
class Call:
    method: str  # Web API method, or "hooks" for a response_url
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int  # what the fake answered
    ok: bool
    response: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Injected:
    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    channel: str | None = None  # only calls to this channel fail
    hang_s: float = 0.0  # answer only after this long (or heal()): past the client's timeout, a timeout


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, list[str]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.home_views: dict[str, dict[str, Any]] = {}  # user -> the Home view views.publish set last
        self.scopes: list[str] = list(SCOPES)
        self._failures: dict[str, deque[Injected]] = defaultdict(deque)
        self._used_triggers: set[str] = set()
        self._ts = itertools.count(1)
        self._hooks = itertools.count(1)
        self._lock = threading.Lock()
        self._release = threading.Event()  # set by heal() and on exit: hanging calls answer at once
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    # --- lifecycle

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    def response_url(self) -> str:
        return f"{self.base}/hooks/{next(self._hooks)}"

    # --- what the test sets up

    def add_user(self, user_id: str, *, is_bot: bool = False, deleted: bool = False) -> None:
        self.users[user_id] = {
            "id": user_id,
            "team_id": TEAM,
            "name": user_id.lower(),
            "deleted": deleted,
            "is_bot": is_bot,
            "is_admin": False,
            "profile": {},
        }

    def set_group(self, group_id: str, members: list[str]) -> None:
        self.groups[group_id] = list(members)

    def add_channel(
        self, channel_id: str, name: str = "", *, member: bool = True, private: bool = False, archived: bool = False
    ) -> None:
        """A channel conversations.info answers for; `member`: the bot is in it."""
        self.channels[channel_id] = {
            "id": channel_id,
            "name": name or channel_id.lower(),
            "is_channel": True,
            "is_private": private,
            "is_archived": archived,
            "is_member": member,
        }

    def fail_next(
        self,
        method: str,
        count: int = 1,
        *,
        status: int = 200,
        error: str | None = None,
        retry_after: int | None = None,
        channel: str | None = None,
        hang_s: float = 0.0,
    ) -> None:
        """The next `count` calls of `method` fail: HTTP `status` (500, 429...), a dropped connection (status=0),
        or HTTP 200 with ok:false `error`; with `channel`, only calls posting to that channel count. With
        `hang_s`, that failure comes only after `hang_s` seconds (or at heal()): status=0 with a `hang_s` longer
        than the client's timeout is a timeout of a call Slack never carried out; `hang_s` alone (no status, no
        error) is a slow call that Slack does carry out, after the client may have given up."""
        with self._lock:
            self._failures[method].extend([Injected(status, error, retry_after, channel, hang_s)] * count)

    def heal(self) -> None:
        """Injected failures are forgotten and calls hanging now are answered (with their failure) at once."""
        with self._lock:
            self._failures.clear()
            released, self._release = self._release, threading.Event()
        released.set()

    # --- what the test asserts on

    def calls_to(self, method: str, *, ok_only: bool = True, **where: Any) -> list[Call]:
        """Recorded calls of `method` (successful ones unless ok_only=False) whose body matches `where`."""
        with self._lock:
            calls = list(self.calls)
        return [
            c
            for c in calls
            if c.method == method and (c.ok or not ok_only) and all(c.body.get(k) == v for k, v in where.items())
        ]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0, **where: Any) -> list[Call]:
        """Poll until at least `count` successful calls of `method` matching `where` were made."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.calls_to(method, **where)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = sorted({c.method for c in self.calls})
                raise AssertionError(f"{len(found)}/{count} {method} {where} after {timeout}s; methods seen: {seen}")
            time.sleep(0.02)

    # --- the API

    def answer(self, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        injected = self._take_failure(method, body)
        if injected is not None and injected.hang_s > 0:
            with self._lock:
                release = self._release
            release.wait(injected.hang_s)
            if injected.status == 200 and injected.error is None:  # slow, not failed
                injected = None
        if injected is not None and injected.status == 0:
            return 0, {}, {}
        if injected is not None and injected.status == 429:
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(injected.retry_after or 1)}
        if injected is not None and injected.status != 200:
            return injected.status, {"ok": False, "error": "internal_error"}, {}
        if injected is not None:
            return 200, {"ok": False, "error": injected.error or "fatal_error"}, {}
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(body), {}

    def _take_failure(self, method: str, body: dict[str, Any]) -> Injected | None:
        with self._lock:
            queue = self._failures[method]
            for injected in queue:
                if injected.channel is None or injected.channel == body.get("channel"):
                    queue.remove(injected)
                    return injected
        return None

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake",
            "user": "modelbot",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": "B0MODELBOT",
            "is_enterprise_install": False,
        }

    def _new_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    def _cannot_post(self, channel: str) -> dict[str, Any] | None:
        """Slack's refusal to post in a channel added with `member=False` (not_in_channel) or archived; channels
        never added are postable (most tests do not model channels)."""
        known = self.channels.get(channel)
        if known is None:
            return None
        if known["is_archived"]:
            return {"ok": False, "error": "is_archived"}
        if not known["is_member"]:
            return {"ok": False, "error": "channel_not_found" if known["is_private"] else "not_in_channel"}
        return None

    def _chat_postMessage(self, body: dict[str, Any]) -> dict[str, Any]:
        refused = self._cannot_post(str(body.get("channel")))
        if refused is not None:
            return refused
        channel, ts = str(body.get("channel")), self._new_ts()
        message = {
            "type": "message",
            "subtype": "bot_message",
            "text": body.get("text"),
            "ts": ts,
            "bot_id": "B0MODELBOT",
            "blocks": body.get("blocks") or [],
        }
        if body.get("thread_ts"):
            message["thread_ts"] = str(body["thread_ts"])
        with self._lock:
            self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        key = (str(body.get("channel")), str(body.get("ts")))
        with self._lock:
            if key not in self.messages:
                return {"ok": False, "error": "message_not_found"}
            self.messages[key] = {**self.messages[key], "text": body.get("text"), "blocks": body.get("blocks") or []}
            message = self.messages[key]
        return {"ok": True, "channel": key[0], "ts": key[1], "text": body.get("text"), "message": message}

    def _chat_postEphemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        refused = self._cannot_post(str(body.get("channel")))
        if refused is not None:
            return refused
        return {"ok": True, "message_ts": self._new_ts()}

    def _chat_getPermalink(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(body.get("channel")), str(body.get("message_ts"))
        with self._lock:
            found = (channel, ts) in self.messages
        if not found:
            return {"ok": False, "error": "message_not_found"}
        link = f"https://fake.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _views_publish(self, body: dict[str, Any]) -> dict[str, Any]:
        user = str(body.get("user_id"))
        if user not in self.users:
            return {"ok": False, "error": "user_not_found"}
        view = body.get("view") or {}
        if isinstance(view, str):
            view = json.loads(view)
        if len(view.get("blocks") or []) > 100:
            return {"ok": False, "error": "invalid_arguments"}
        published = {**view, "id": f"V{next(self._ts):08d}", "hash": "h"}
        with self._lock:
            self.home_views[user] = published
        return {"ok": True, "view": published}

    def _views_open(self, body: dict[str, Any]) -> dict[str, Any]:
        trigger = str(body.get("trigger_id"))
        with self._lock:
            if trigger in self._used_triggers:
                return {"ok": False, "error": "expired_trigger_id"}
            self._used_triggers.add(trigger)
        view = body.get("view") or {}
        if isinstance(view, str):
            view = json.loads(view)
        return {"ok": True, "view": {**view, "id": f"V{next(self._ts):08d}", "hash": "h", "state": {"values": {}}}}

    def _users_info(self, body: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(body.get("user")))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def _usergroups_list(self, body: dict[str, Any]) -> dict[str, Any]:
        groups = [{"id": g, "team_id": TEAM, "handle": g.lower(), "name": g} for g in sorted(self.groups)]
        return {"ok": True, "usergroups": groups}

    def _usergroups_users_list(self, body: dict[str, Any]) -> dict[str, Any]:
        group = str(body.get("usergroup"))
        if group not in self.groups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.groups[group])}

    def _conversations_info(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self.channels.get(str(body.get("channel")))
        return {"ok": True, "channel": channel} if channel else {"ok": False, "error": "channel_not_found"}

    def _conversations_open(self, body: dict[str, Any]) -> dict[str, Any]:
        user = str(body.get("users", "X"))
        if self.users and user not in self.users:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "channel": {"id": f"D{user[:10]}"}}

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)


def _handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            headers = {k.lower(): v for k, v in self.headers.items()}
            body = _parse(raw, headers.get("content-type", ""))
            if self.path.startswith("/hooks/"):
                fake.record(Call("hooks", self.path, headers, body, 200, True))
                self._send(200, b"ok", "text/plain")
                return
            method = self.path.removeprefix("/api/").split("?")[0]
            if not headers.get("authorization", "").startswith("Bearer xox"):
                status, answer, extra = 200, {"ok": False, "error": "not_authed"}, {}
            else:
                status, answer, extra = fake.answer(method, body)
            if status == 0:  # injected connection drop: no answer at all
                fake.record(Call(method, self.path, headers, body, 0, False))
                self.close_connection = True
                return
            ok = status == 200 and bool(answer.get("ok"))
            fake.record(Call(method, self.path, headers, body, status, ok, answer))
            if method == "auth.test":
                extra = {**extra, "x-oauth-scopes": ",".join(fake.scopes)}
            self._send(status, json.dumps(answer).encode(), "application/json", extra)

        def _send(self, status: int, data: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timed out) before the answer
                self.close_connection = True

    return Handler


def _parse(raw: str, content_type: str) -> dict[str, Any]:
    if raw.startswith("{") or "json" in content_type:
        try:
            parsed = json.loads(raw or "{}")
        except ValueError:
            return {"_raw": raw}
        return parsed if isinstance(parsed, dict) else {"_raw": parsed}
    return dict(parse_qsl(raw))


def main() -> None:
    """`python -m tests.e2e.fake_slack USER...`: serve (with those users) until stdin closes; prints the base URL."""
    with FakeSlack() as fake:
        for user in sys.argv[1:]:
            fake.add_user(user)
        print(fake.base, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
