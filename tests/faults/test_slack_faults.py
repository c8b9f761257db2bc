"""The Slack Web API fails while a rollout runs (HTTP 500s, 429s with Retry-After, calls that time out, connections
dropped without an answer, a call carried out only after the client gave up): the rollout still succeeds, and once
Slack heals every audit row reaches the audit channel exactly once and in order, the card ends in its final state,
and the incident post is made once. `modelbot serve` runs as a process against a devstack fleet, the outbox lives
in a real database (both backends: the outbox's claims and retry times are rows)."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.devstack_support import wait_until
from tests.e2e.fake_slack import Call, FakeSlack
from tests.e2e.stack import AUDIT, BOB, INCIDENT, OPS
from tests.faults.serve_harness import MODEL, ServeStack

CLOSED = {"SUCCEEDED", "FAILED", "PARTIAL"}
LOAD_S = 3.0  # the cold rollback lasts this long: the outage overlaps it
METHODS = ("chat.postMessage", "chat.update")  # what the bot calls while a rollout runs
RETRY_AFTER_S = 2
HANG_S = 12.0  # longer than the outbox client's timeout (10 s) and live progress's (5 s)
FOREVER = 10_000  # injected failures: Slack stays down until heal()


@dataclass(frozen=True)
class Outage:
    """The card's ts; when Slack broke and when the rollout was seen closed (time.monotonic())."""

    card_ts: str
    broken: float
    closed: float


def _break(fake: FakeSlack, kind: str) -> None:
    """Slack goes down in one way for every call the bot makes while the rollout runs."""
    for method in METHODS:
        if kind == "http_500":
            fake.fail_next(method, FOREVER, status=500)
        elif kind == "http_429":
            fake.fail_next(method, FOREVER, status=429, retry_after=RETRY_AFTER_S)
        else:  # the first call hangs until the client times out; then every connection drops unanswered
            fake.fail_next(method, 1, status=0, hang_s=HANG_S)
            fake.fail_next(method, FOREVER, status=0)


def _pending(stack: ServeStack) -> int:
    with stack.db.uow(readonly=True) as uow:
        return uow.outbox.pending_count()


def _settled(stack: ServeStack, timeout: float) -> None:
    wait_until(lambda: _pending(stack) == 0 or None, timeout, "the outbox drained")


def _ok_posts(fake: FakeSlack, channel: str) -> list[str]:
    return [str(c.body.get("text", "")) for c in fake.calls_to("chat.postMessage", channel=channel)]


def _failed(fake: FakeSlack) -> list[Call]:
    return [c for method in METHODS for c in fake.calls_to(method, ok_only=False) if not c.ok]


def _card_text(stack: ServeStack, outage: Outage) -> str:
    return str(stack.fake.messages[(OPS, outage.card_ts)]["text"])


def _rollout_while_slack_is_down(stack: ServeStack, breaks: Callable[[FakeSlack], None]) -> Outage:
    """Open R1 (cold rollback to v1) with Slack up, break Slack, approve; return once R1 has SUCCEEDED, with
    the outcome still queued; Slack is healed by the caller."""
    fake = stack.fake
    assert "R1" in stack.say(f'rollback {MODEL} 1 --reason "INC-8 Slack is down"')
    card = fake.wait_for("chat.postMessage", 1, 30, channel=OPS)[0]
    _settled(stack, 30)  # the request's rows and card are out: everything after this meets the outage
    broken = time.monotonic()
    breaks(fake)
    stack.say("approve R1", user=BOB, wait=False)
    done = stack.wait_state(1, CLOSED, timeout=60)
    closed = time.monotonic()
    assert done.state.value == "SUCCEEDED", stack.operations(1)
    assert stack.view() == [1, 1, 1] and stack.consistent() == 1
    replied = "the approver told R1 SUCCEEDED by response_url (not the Web API)"
    wait_until(lambda: [t for t in stack.replies() if t.startswith("R1 SUCCEEDED")] or None, 30, replied)
    return Outage(str(card.response["ts"]), broken, closed)


def _nothing_lost_or_repeated(stack: ServeStack, outage: Outage) -> None:
    """Every audit row posted once and in order, one incident post, the card updated (never re-posted) and final."""
    fake = stack.fake
    rows = stack.audit()
    audit_posts = [text.split()[0] for text in _ok_posts(fake, AUDIT)]
    assert audit_posts == [f"#{row.seq}" for row in rows], audit_posts
    assert [r.outcome for r in stack.audit(1) if r.action == "execute"] == ["executing", "succeeded"]
    assert stack.audit_verifies()
    incident = _ok_posts(fake, INCIDENT)
    assert len(incident) == 1 and incident[0].startswith("R1 SUCCEEDED"), incident
    posts = fake.calls_to("chat.postMessage", channel=OPS)
    assert len([c for c in posts if not c.body.get("thread_ts")]) == 1, _ok_posts(fake, OPS)  # one card
    thread = [str(c.body.get("text")) for c in posts if c.body.get("thread_ts")]
    assert len(thread) == len(set(thread)), thread  # its thread replies: none twice either
    assert "(SUCCEEDED)" in _card_text(stack, outage), _card_text(stack, outage)


@pytest.mark.parametrize("kind", ["http_500", "http_429", "timeout_then_dropped"])
def test_slack_outage_during_a_rollout_loses_and_repeats_nothing(
    serve_stack: Callable[..., ServeStack], db_url: str, kind: str
) -> None:
    """With Slack failing (`kind`) from the approval to past the end of a cold rollout, the rollout succeeds and,
    once Slack heals, every audit row is posted once in order, the card shows SUCCEEDED, one incident post."""
    started = time.monotonic()
    stack = serve_stack(db_url, load_seconds=LOAD_S, versions=(2, 3), stable=3)
    fake = stack.fake
    outage = _rollout_while_slack_is_down(stack, lambda f: _break(f, kind))
    assert _pending(stack) > 0  # the outcome's rows, card update and incident post wait in the outbox
    if kind == "timeout_then_dropped":  # the hanging calls were made during the rollout and outlived it
        hung = wait_until(
            lambda: [c for c in _failed(fake) if c.at - outage.broken >= HANG_S - 0.5] or None, 30, "the timeouts"
        )
        assert min(c.at for c in hung) - HANG_S < outage.closed, hung
    else:
        assert [c for c in _failed(fake) if c.at < outage.closed], "Slack was not called (failing) during the rollout"
    # Slack stays down until the outcome's own messages have met it too (the incident post is queued last).
    wait_until(lambda: [c for c in _failed(fake) if c.body.get("channel") == INCIDENT] or None, 30, "incident fails")
    assert not fake.calls_to("chat.postMessage", channel=INCIDENT)
    fake.heal()
    healed = time.monotonic()
    _settled(stack, 60)
    drained = time.monotonic() - healed
    _nothing_lost_or_repeated(stack, outage)
    time.sleep(2)  # nothing straggles in later: no row posted again, the card not changed back
    _nothing_lost_or_repeated(stack, outage)
    failures = Counter(c.status for c in _failed(fake))
    print(
        f"\n{kind}: failed calls by status {dict(failures)}; outage {healed - outage.broken:.1f}s (rollout closed"
        f" after {outage.closed - outage.broken:.1f}s); outbox drained {drained:.1f}s after Slack healed;"
        f" test {time.monotonic() - started:.1f}s"
    )


def test_retry_after_holds_every_writer(serve_stack: Callable[..., ServeStack], db_url: str) -> None:
    """After a 429 with Retry-After during a rollout, the bot (outbox or live progress alike) makes no call under the
    same rate limit (chat.postMessage to that channel; chat.update, Tier 3, at all) before Retry-After has passed
    (reference/slack.md §5: limits are per method and app, and going on after a 429 risks the app)."""
    stack = serve_stack(db_url, load_seconds=LOAD_S, versions=(2, 3), stable=3)
    fake = stack.fake
    outage = _rollout_while_slack_is_down(stack, lambda f: _break(f, "http_429"))
    time.sleep(RETRY_AFTER_S + 1)  # a few more rounds of 429s
    fake.heal()
    _settled(stack, 60)
    _nothing_lost_or_repeated(stack, outage)
    early = []
    for key, calls in itertools.groupby(
        sorted(_limited_together(fake), key=lambda item: item[:2]), key=lambda item: item[0]
    ):
        ordered = [call for _, _, call in calls]
        for limited, following in itertools.pairwise(ordered):
            waited = following.at - limited.at
            if limited.status == 429 and waited < RETRY_AFTER_S - 0.05:
                early.append(f"{key}: called again {waited:.2f}s after a 429 (Retry-After: {RETRY_AFTER_S})")
    assert not early, early


def _limited_together(fake: FakeSlack) -> list[tuple[str, float, Call]]:
    """Every call keyed by what one rate limit covers (reference/slack.md §5): chat.postMessage is limited per
    channel, chat.update (Tier 3) per method for the whole app; with (key, time) for sorting."""
    keyed = []
    for method in METHODS:
        for call in fake.calls_to(method, ok_only=False):
            key = f"{method} to {call.body.get('channel')}" if method == "chat.postMessage" else method
            keyed.append((key, call.at, call))
    return keyed


def test_a_card_update_carried_out_late_does_not_revert_the_card(
    serve_stack: Callable[..., ServeStack], db_url: str
) -> None:
    """Slack carries out a card update only after the bot's client gave up on it (a timeout, not a failure): once
    everything has landed, the card still shows the request's final state, SUCCEEDED."""
    stack = serve_stack(db_url, load_seconds=LOAD_S, versions=(2, 3), stable=3)
    fake = stack.fake
    late_s = 8.0  # past live progress's 5 s client timeout, and after the outbox's final card update landed

    def slow_update(f: FakeSlack) -> None:
        f.fail_next("chat.update", 1, hang_s=late_s)

    outage = _rollout_while_slack_is_down(stack, slow_update)
    _settled(stack, 60)
    applied = wait_until(
        lambda: [c for c in fake.calls_to("chat.update") if c.at - outage.broken >= late_s - 0.5] or None,
        30,
        "the late update",
    )
    print(f"\nlate update carried out {applied[0].at - outage.broken:.1f}s after the approval")
    _nothing_lost_or_repeated(stack, outage)
