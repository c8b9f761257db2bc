"""Telling a requester something privately after their command returned, from wherever it is found out.

A slash command's response_url is the one private way to reach a user in any channel (chat.postEphemeral needs
the bot in the channel too). The front end remembers the latest one per (user, channel) for RESPONSE_URL_TTL_S;
the outbox, finding that a card cannot be posted or linked back, says it through it. A response_url is never
stored in the database or logged: when this process does not hold one (the command went to another replica, or
it is older than Slack allows), the requester gets a DM instead (conversations.open + chat.postMessage).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient

from bot.frontends.slack.mrkdwn import clip, escape

log = logging.getLogger(__name__)
RESPONSE_URL_TTL_S = 25 * 60.0  # Slack honours a response_url for 30 minutes (5 uses): stay inside that
REPLY_CHARS = 39000  # Slack truncates message text above 40,000 characters
MAX_REMEMBERED = 10_000  # one per (user, channel); the oldest go first beyond this

Say = Callable[[str], None]
Respond = Callable[..., object]  # bolt's `respond`, or a WebhookClient's `send`: posts to one response_url


class Notices:
    """response_url sayers per (user, channel), thread-safe, forgotten after RESPONSE_URL_TTL_S."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl_s: float = RESPONSE_URL_TTL_S) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._sayers: dict[tuple[str, str], tuple[float, Say]] = {}

    def remember(self, user_id: str, channel: str | None, respond: Respond) -> None:
        """The latest way to answer `user_id` privately in `channel` (their command's response_url). What is said
        through it later is modelbot's own text with mentions and links built from IDs: not escaped again."""
        if not channel:
            return

        def say(text: str) -> None:
            respond(text=clip(text, REPLY_CHARS), response_type="ephemeral")

        with self._lock:
            self._sayers.pop((user_id, channel), None)  # re-inserted last: the dict stays oldest-first
            self._sayers[(user_id, channel)] = (self._clock() + self._ttl_s, say)
            while len(self._sayers) > MAX_REMEMBERED:
                del self._sayers[next(iter(self._sayers))]

    def sayer(self, user_id: str, channel: str | None) -> Say | None:
        """The remembered, still valid sayer for `user_id` in `channel`, if any."""
        if not channel:
            return None
        with self._lock:
            found = self._sayers.get((user_id, channel))
        if found is None or found[0] <= self._clock():
            return None
        return found[1]

    def tell(self, client: WebClient, user_id: str, channel: str | None, text: str) -> str:
        """Tell `user_id` privately: through their response_url when known, else by DM. Returns how ("ephemeral",
        "dm" or "failed"); never raises (the caller is delivering something else)."""
        say = self.sayer(user_id, channel)
        if say is not None:
            try:
                say(text)
                return "ephemeral"
            except Exception as exc:  # expired or used up: fall back to a DM
                log.info("response_url notice failed (%s); sending a DM instead", type(exc).__name__)
        try:
            dm = client.conversations_open(users=user_id)["channel"]["id"]
            client.chat_postMessage(channel=dm, text=text, unfurl_links=False, unfurl_media=False)
        except Exception as exc:  # Slack away or the user cannot be messaged: logged, nothing more to do
            log.warning("could not tell %s privately: %s", user_id, type(exc).__name__)
            return "failed"
        return "dm"


def private_say(client: WebClient, channel: str, user_id: str) -> Say:
    """Say to `user_id` alone: chat.postEphemeral in `channel`, or a DM when there is no channel (a click on the
    Home tab has none)."""

    def say(text: str) -> None:
        inert = clip(escape(text), REPLY_CHARS)  # service text: user input must not become mentions or links
        if channel:
            client.chat_postEphemeral(channel=channel, user=user_id, text=inert)
            return
        dm = client.conversations_open(users=user_id)["channel"]["id"]
        client.chat_postMessage(channel=dm, text=inert, unfurl_links=False, unfurl_media=False)

    return say
