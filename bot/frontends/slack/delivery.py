"""Turning one outbox message into Slack Web API calls, and telling passing failures from permanent ones.

Kinds: "audit" (one audit-channel post per audit row), "incident" (a post in the channel the message
names), "drift" (a drift notice with a Re-sync button),
"card" (the approval card rendered from the request's *current* state: posted the first time,
updated in place afterwards, posted again if someone deleted it; the first post goes to the approval channel,
else where the request was typed: routing.py), "card_link" / "approver_dm" / "thread" (what follows a card:
routing.py); an "incident" naming `review_request_id` is a retro-review reminder with the Acknowledge button.

Every call first asks the process's RateGate (a call held by an earlier 429 is not made: RateHeld) and
tells it about any 429 it meets. A card update that fails without an answer (a timeout, a dropped connection)
may still be carried out by Slack later, over whatever was written after it: that failure asks for a retry
no sooner than LATE_LANDING_S, so the card's last write is always one made after such a late landing.
"""

from __future__ import annotations

import http.client
import urllib.error
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.core.errors import ModelbotError, StoreUnavailable
from bot.core.outbox import OutboxMessage
from bot.core.policy import MEMBER_ID
from bot.frontends.slack import alert_posts
from bot.frontends.slack.blocks import Message, render_card, render_drift
from bot.frontends.slack.mrkdwn import clip, date, escape, member
from bot.frontends.slack.notices import Notices
from bot.frontends.slack.ratelimit import RateGate, RateHeld, is_rate_limited, retry_after_s
from bot.frontends.slack.review_blocks import render_reminder
from bot.frontends.slack.routing import KINDS as ROUTING_KINDS
from bot.frontends.slack.routing import Router, result_follow_up
from bot.service import Service
from bot.texts import slack as texts
from bot.usecases.cards import CardView
from bot.usecases.outbox import Delivered

POST_CHARS = 3900
WHY_CHARS = 500
# How long after our client gave up on a call Slack may still carry it out. Slack states no bound; this is
# a judgment: our clients give up after 5 s (live progress) and 10 s (outbox), so a correction comes 25-30 s
# after the call was sent, past slack_sdk's own default timeout (30 s) for a call to be answered at all.
LATE_LANDING_S = 20.0
# Slack-side trouble that passes, and credentials an operator must fix: retried (with backoff) for ever,
# because giving up would lose audit rows.
PASSING_ERRORS = frozenset(
    {
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "team_added_to_org",
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "ekm_access_denied",
    }
)
CARD_GONE = frozenset({"message_not_found", "cant_update_message"})


class PermanentError(ModelbotError):
    """This message can never be delivered as it is (unknown kind, unknown request)."""


class CardUpdateInDoubt(Exception):
    """A card update got no answer (timeout, dropped connection): Slack may still carry it out, late."""


@dataclass(frozen=True)
class Failure:
    error: str
    permanent: bool
    retry_after_s: float | None = None
    min_delay_s: float = 0.0  # retry no sooner: the failed call may still be carried out until then


class Delivery:
    def __init__(
        self, client: WebClient, service: Service, gate: RateGate | None = None, notices: Notices | None = None
    ) -> None:
        self._client = client
        self._service = service
        self._gate = gate or RateGate()
        self._router = Router(client, service, self._gate, notices or Notices())

    def send(self, message: OutboxMessage, now: datetime) -> Delivered:  # noqa: PLR0911 - one return per kind
        if message.kind == "audit":
            return self._post(message.channel, audit_text(message.payload))
        if message.kind == "incident" and message.payload.get("review_request_id"):
            return self._reminder(message)
        if message.kind == "incident":
            return self._post(message.channel, clip(escape(str(message.payload.get("text", ""))), POST_CHARS))
        if message.kind in ROUTING_KINDS:
            return Delivered(self._router.send(message))
        if message.kind == "card":
            return self._card(message, now)
        if message.kind == alert_posts.KIND:  # an alert's incident post, updated in place (alert_posts.py)
            view = self._service.alert_view(int(message.payload["alert_id"]))  # NotFound: permanent
            where, posted = alert_posts.deliver(self._client, self._gate, view, message.channel)
            return Delivered(where, alert_post=posted)
        if message.kind == "drift":
            notice = render_drift(str(message.payload.get("model", "")), str(message.payload.get("text", "")))
            with self._gate.guard("chat.postMessage", message.channel):
                response = self._client.chat_postMessage(
                    channel=message.channel, text=notice.text, blocks=notice.blocks, unfurl_links=False
                )
            return Delivered({"channel": response["channel"], "ts": response["ts"]})
        raise PermanentError(f"unknown outbox kind {message.kind!r}")

    def _post(self, channel: str, text: str) -> Delivered:
        with self._gate.guard("chat.postMessage", channel):
            response = self._client.chat_postMessage(channel=channel, text=text, unfurl_links=False, unfurl_media=False)
        return Delivered({"channel": response["channel"], "ts": response["ts"]})

    def _card(self, message: OutboxMessage, now: datetime) -> Delivered:
        request_id = int(message.payload["request_id"])
        card = self._service.card(request_id)  # NotFound is a ModelbotError: permanent
        rendered = render_card(card, now)
        location = self._service.card_location(request_id)
        if location is not None:
            channel, ts = location
            try:
                with self._gate.guard("chat.update"):
                    self._client.chat_update(channel=channel, ts=ts, text=rendered.text, blocks=rendered.blocks)
                done = result_follow_up(card, channel)  # the final per-replica result in the card's thread
                return Delivered({"channel": channel, "ts": ts}, rendered_version=card.request.version, follow_ups=done)
            except SlackApiError as exc:
                if exc.response.get("error") not in CARD_GONE:
                    raise
            except Exception as exc:
                if may_land_late(exc):
                    raise CardUpdateInDoubt(type(exc).__name__) from exc
                raise
        return self._post_card(message, rendered, card)

    def _post_card(self, message: OutboxMessage, rendered: Message, card: CardView) -> Delivered:
        """The first post (or a re-post of a deleted card): the approval channel, else where it was typed."""
        posted = self._router.first_post(message, rendered.text, rendered.blocks, card)
        if posted.location is None:
            return Delivered(posted.response, abandoned=posted.undeliverable)
        where, ts = posted.location
        return Delivered(
            posted.response,
            new_card=(card.request.id, where, ts),
            rendered_version=card.request.version,
            follow_ups=posted.follow_ups + result_follow_up(card, where),
        )

    def _reminder(self, message: OutboxMessage) -> Delivered:
        """A retro-review reminder, with the Acknowledge button."""
        reminder = render_reminder(clip(escape(str(message.payload.get("text", ""))), POST_CHARS), message.payload)
        with self._gate.guard("chat.postMessage", message.channel):
            response = self._client.chat_postMessage(
                channel=message.channel, text=reminder.text, blocks=reminder.blocks, unfurl_links=False
            )
        return Delivered({"channel": response["channel"], "ts": response["ts"]})


def audit_text(row: Mapping[str, Any]) -> str:
    """One audit row as an audit-channel post (user text made inert)."""
    detail = row.get("detail") if isinstance(row.get("detail"), Mapping) else {}
    assert isinstance(detail, Mapping)
    actor = str(row.get("actor", ""))
    why = str(detail.get("reason") or detail.get("why") or detail.get("message") or "")
    try:
        at = date(datetime.fromisoformat(str(row.get("at"))))
    except ValueError:
        at = escape(str(row.get("at", "")))
    text = texts.slack_audit_line(
        seq=row.get("seq"),
        at=at,
        actor=member(actor) if MEMBER_ID.fullmatch(actor) else escape(actor),
        action=escape(str(row.get("action", ""))),
        request_id=row.get("request_id"),
        model=escape(str(row.get("model") or "")),
        move=texts.slack_move(detail.get("from_version"), detail.get("to_version")),
        outcome=escape(str(row.get("outcome", ""))),
        why=clip(escape(why), WHY_CHARS),
        hash_=str(row.get("hash", "")),
    )
    return clip(text, POST_CHARS)


def may_land_late(exc: BaseException) -> bool:
    """True when a call failed without Slack's answer after it may have reached Slack (a timeout, a dropped
    connection), so Slack may still carry it out; False for an answer (SlackApiError: not carried out) and
    for a connection that was refused (never sent)."""
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, ConnectionRefusedError):
        return False
    return isinstance(exc, OSError | http.client.HTTPException) and not isinstance(exc, ConnectionRefusedError)


def classify(exc: BaseException) -> Failure:
    """Passing failures (5xx, 429, connection trouble, credentials) are retried; anything else is permanent."""
    if isinstance(exc, SlackApiError):
        return _answered(exc)
    if isinstance(exc, RateHeld):  # not sent: a 429 (this writer's or another's) holds the method
        return Failure(str(exc), permanent=False, retry_after_s=exc.wait_s)
    if isinstance(exc, CardUpdateInDoubt):
        return Failure(f"{exc} (the card update may still land)", permanent=False, min_delay_s=LATE_LANDING_S)
    if isinstance(exc, SlackClientError | OSError | http.client.HTTPException | StoreUnavailable):
        return Failure(type(exc).__name__, permanent=False)
    if isinstance(exc, ModelbotError):
        return Failure(str(exc), permanent=True)
    return Failure(f"{type(exc).__name__} while rendering or sending", permanent=True)


def _answered(exc: SlackApiError) -> Failure:
    status = exc.response.status_code
    error = str(exc.response.get("error") or f"http_{status}")
    if is_rate_limited(exc):
        return Failure(error, permanent=False, retry_after_s=retry_after_s(exc.response.headers))
    return Failure(error, permanent=not (status >= 500 or error in PASSING_ERRORS))
