"""Alerts and automatic rollback with two bot replicas on one database (SQLite and PostgreSQL), a fake fleet and a
hand-moved clock: the same alerts reaching both at once are recorded once, min_firing is waited out by the sweep,
exactly one replica acts, and nobody can act as `modelbot`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.core import commands
from bot.core.alerts import AutoState
from bot.core.change_request import RequestState
from bot.core.errors import StoreUnavailable
from bot.core.policy import Identity
from bot.settings import AutoRollback
from bot.store import audit_export
from bot.usecases import auto_rollback
from bot.usecases.context import Context
from bot.wiring import Bot, build_bot
from tests.fakes import FakeCatalog, FakeFleet, FlakyDatabase
from tests.service_harness import ALICE, BOB, Clock, demo_policy, demo_settings, initial_config

MODEL = "fraud_detector"
AUTO = AutoRollback(on_alerts=("FraudScoreDrift",), min_firing=timedelta(minutes=2), min_stable=timedelta(0))


@pytest.fixture
def replicas(tmp_path: Path, db_url: str) -> Iterator[tuple[Bot, Bot, Clock]]:
    """Two bots sharing the database and clock; fraud_detector opted in (min_firing 2m, cooldown 15m)."""
    settings = demo_settings(tmp_path)
    settings = replace(settings, models={MODEL: replace(settings.models[MODEL], auto_rollback=AUTO)})
    clock = Clock()
    bots = []
    for _ in range(2):
        fleet = FakeFleet()
        fleet.sent.append(initial_config(settings.models[MODEL].base_path, versions=(2, 3), stable=2))
        bots.append(build_bot(settings, demo_policy(), db_url, fleet=fleet, catalog=FakeCatalog(), clock=clock))
    yield bots[0], bots[1], clock
    for bot in bots:
        bot.close()


def firing(clock: Clock) -> bytes:
    alert = {
        "status": "firing",
        "labels": {"alertname": "FraudScoreDrift", "model": MODEL},
        "annotations": {"summary": "PSI 0.31"},
        "startsAt": clock().isoformat(),
        "fingerprint": "fp-replicas",
    }
    return json.dumps({"version": "4", "alerts": [alert]}).encode()


def test_min_firing_is_waited_out_and_exactly_one_replica_acts(replicas: tuple[Bot, Bot, Clock]) -> None:
    """Before min_firing no sweep acts; after it both replicas sweep at once and exactly one rollback runs."""
    first, second, clock = replicas
    assert first.service.handle_text(Context(Identity(ALICE)), 'promote fraud_detector 3 --reason "r3"').ok
    assert first.service.handle_text(Context(Identity(BOB)), "approve R1").ok
    clock.advance(hours=1)
    assert first.service.alert(firing(clock)).queued == 1
    assert second.service.alert(firing(clock)).queued == 1  # the other replica gets the same notification

    clock.advance(minutes=1)
    assert first.service.auto_rollback() == second.service.auto_rollback() == 0
    clock.advance(minutes=1, seconds=1)
    results: list[int] = []
    threads = [threading.Thread(target=lambda b=b: results.append(b.service.auto_rollback())) for b in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [0, 1]

    with first.db.uow(readonly=True) as uow:
        alert = uow.alerts.get(1)
        assert alert is not None and alert.auto_state is AutoState.ACTED and uow.alerts.get(2) is None
        automatic = [r for r in uow.requests.emergencies() if r.requester == "modelbot"]
        rows = [r for r in uow.audit.iter_all() if r.action == "auto_rollback"]
    assert [(r.id, r.to_version, r.state.value) for r in automatic] == [(alert.auto_request_id, 2, "SUCCEEDED")]
    assert [(r.actor, r.outcome) for r in rows] == [("modelbot", "acted")]
    assert first.service.auto_rollback() == second.service.auto_rollback() == 0  # decided once, for good


def _v3_for_an_hour_then_firing_for_3_minutes(bot: Bot, clock: Clock) -> None:
    """R1 promotes v3 (v2 becomes the last known good), an hour later the alert fires, 3 minutes go by."""
    assert bot.service.handle_text(Context(Identity(ALICE)), 'promote fraud_detector 3 --reason "r3"').ok
    assert bot.service.handle_text(Context(Identity(BOB)), "approve R1").ok
    clock.advance(hours=1)
    bot.service.alert(firing(clock))
    clock.advance(minutes=3)


def test_nobody_acts_as_modelbot(replicas: tuple[Bot, Bot, Clock]) -> None:
    """An identity named `modelbot` (a console :as, a crafted payload) is refused by the service, and audited."""
    bot = replicas[0]
    reply = bot.service.handle(Context(Identity("modelbot")), commands.Rollback(MODEL, 2, "x", emergency=True))
    assert not reply.ok and "system-actor" in reply.text
    with bot.db.uow(readonly=True) as uow:
        denied = [r for r in uow.audit.iter_all() if r.outcome == "denied"]
        assert uow.requests.list_open() == []
    assert [(r.actor, r.detail.get("rule")) for r in denied] == [("modelbot", "system-actor")]


def test_an_automatic_request_left_approved_by_a_dead_process_is_run(replicas: tuple[Bot, Bot, Clock]) -> None:
    """A replica that opened the automatic request and died before running it: the other one's sweep runs it."""
    first, second, clock = replicas
    _v3_for_an_hour_then_firing_for_3_minutes(first, clock)
    with first.db.uow(readonly=True) as uow:
        alert = uow.alerts.get(1)
    assert alert is not None
    # The first half of an act, as a process that died right after committing it leaves it.
    judged = auto_rollback._judge(first.service.deps, alert, AUTO)
    assert judged.proposal is not None
    request = auto_rollback._open(first.service.deps, alert, judged.proposal)
    assert request is not None and request.state.value == "APPROVED"
    assert second.service.auto_rollback() == 0  # not before a lease period: its own process may be starting it
    clock.advance(seconds=30)
    assert second.service.auto_rollback() == 1
    with second.db.uow(readonly=True) as uow:
        done = uow.requests.get(request.id)
        posts = [m.key for m in uow.outbox.pending() if m.kind == "alert"]
    assert done is not None and done.state.value == "SUCCEEDED"
    assert f"alert:1:outcome:R{request.id}" in posts  # the alert's post shows the outcome of the resumed run


def test_database_away_between_the_decision_and_the_rollout(
    replicas: tuple[Bot, Bot, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away right after the act was committed: nothing is sent to the fleet, the sweep says so in
    the log and tries again; once it is back the same request (not a second one) runs once, and the alert's post
    is queued with its outcome."""
    first, second, clock = replicas
    _v3_for_an_hour_then_firing_for_3_minutes(first, clock)
    deps = first.service.deps
    flaky = FlakyDatabase(deps.db)
    deps.db = flaky
    opened = auto_rollback._open

    def open_then_lose_the_database(*args: object) -> object:
        stored = opened(*args)  # type: ignore[arg-type]
        flaky.down = True
        return stored

    monkeypatch.setattr(auto_rollback, "_open", open_then_lose_the_database)
    fleets = [first.service.deps.fleet, second.service.deps.fleet]
    promoted = sum(f.rollouts for f in fleets)  # type: ignore[attr-defined]  # R1, the promote to v3
    assert first.service.auto_rollback() == 0  # decided and committed, then the claim found no database
    assert sum(f.rollouts for f in fleets) == promoted  # type: ignore[attr-defined]
    with pytest.raises(StoreUnavailable):  # still away: serve's sweep loop logs it and tries again in 5 s
        first.service.auto_rollback()
    flaky.down = False
    monkeypatch.setattr(auto_rollback, "_open", opened)
    clock.advance(seconds=30)
    assert first.service.auto_rollback() + second.service.auto_rollback() == 1
    assert sum(f.rollouts for f in fleets) == promoted + 1  # type: ignore[attr-defined]
    with first.db.uow(readonly=True) as uow:
        automatic = [r for r in uow.requests.emergencies() if r.requester == "modelbot"]
        acted = [r for r in uow.audit.iter_all() if r.action == "auto_rollback"]
        posts = [m.key for m in uow.outbox.pending() if m.kind == "alert"]
    assert [(r.to_version, r.state.value) for r in automatic] == [(2, "SUCCEEDED")]
    assert [r.outcome for r in acted] == ["acted"]
    assert f"alert:1:outcome:R{automatic[0].id}" in posts


def _webhook(clock: Clock, fingerprint: str, status: str, starts_at: str) -> bytes:
    alert = {
        "status": status,
        "labels": {"alertname": "FraudScoreDrift", "model": MODEL},
        "annotations": {"summary": f"PSI high ({fingerprint})"},
        "startsAt": starts_at,
        "fingerprint": fingerprint,
    }
    if status == "resolved":
        alert["endsAt"] = clock().isoformat()
    return json.dumps({"version": "4", "alerts": [alert]}).encode()


def test_the_same_alerts_reaching_both_replicas_at_once_are_recorded_and_posted_once(
    replicas: tuple[Bot, Bot, Clock],
) -> None:
    """Alertmanager behind a load balancer with two bot replicas (or sent to both): 20 alerts delivered to both at
    the same moment, then their resolutions likewise: each alert is one row, audited once firing and once resolved,
    its post queued once and updated once, and the audit chain verifies."""
    first, second, clock = replicas
    starts_at = clock().isoformat()
    fingerprints = [f"fp-{i:02d}" for i in range(20)]
    for status in ("firing", "resolved"):
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def deliver(
            bot: Bot, status: str = status, barrier: threading.Barrier = barrier, errors: list[BaseException] = errors
        ) -> None:
            try:
                for fingerprint in fingerprints:
                    barrier.wait(10)  # both replicas take each notification at the same moment
                    assert bot.service.alert(_webhook(clock, fingerprint, status, starts_at)).queued == 1
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=deliver, args=(bot,)) for bot in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        clock.advance(minutes=1)

    with first.db.uow(readonly=True) as uow:  # ids may have gaps (PostgreSQL spends one on the losing insert)
        stored = [a for a in map(uow.alerts.get, range(1, 100)) if a is not None]
        rows = [r for r in uow.audit.iter_all() if r.action == "alert"]
        posts = sorted(m.key or "" for m in uow.outbox.pending() if m.kind == "alert")
    assert sorted(a.notice.fingerprint for a in stored) == fingerprints and not [a for a in stored if a.firing]
    assert sorted(r.outcome for r in rows) == ["firing"] * 20 + ["resolved"] * 20
    assert posts == sorted(f"alert:{a.id}:{why}" for a in stored for why in ("posted", "resolved"))
    assert audit_export.verify(first.db).ok


def test_an_automatic_rollback_whose_process_died_mid_rollout_is_recovered_and_posted(
    replicas: tuple[Bot, Bot, Clock],
) -> None:
    """The replica running the automatic rollback dies mid-rollout (request EXECUTING, its operation open, the lease
    held): once the lease lapses the recovery sweep closes it truthfully, the alert's post is queued with
    that outcome in the same transaction, and no second automatic rollback follows for the same alert."""
    first, second, clock = replicas
    _v3_for_an_hour_then_firing_for_3_minutes(first, clock)
    deps = first.service.deps
    with first.db.uow(readonly=True) as uow:
        alert = uow.alerts.get(1)
    assert alert is not None
    judged = auto_rollback._judge(deps, alert, AUTO)
    assert judged.proposal is not None
    request = auto_rollback._open(deps, alert, judged.proposal)
    assert request is not None
    dead = "crashed-host:1:dead00"
    with first.db.uow() as uow:  # claimed by a process that died before its first reload
        claimed = uow.requests.get_for_update(request.id)
        assert claimed is not None
        uow.requests.save(replace(claimed, state=RequestState.EXECUTING), claimed.version)
        before = uow.desired.load().model(MODEL)
        uow.operations.start(request.id, MODEL, clock(), holder=dead, before=before)
        assert uow.fleet_lock.acquire(dead, clock(), timedelta(seconds=deps.lease_s))
        uow.commit()
    clock.advance(seconds=deps.lease_s + 1)
    first.service.recover()  # a restarted process (each bot here has its own fake fleet: first's is the real one)
    with first.db.uow(readonly=True) as uow:
        done = uow.requests.get(request.id)
        posts = [m.key for m in uow.outbox.pending() if m.kind == "alert"]
        recovered = [r for r in uow.audit.iter_all() if r.outcome == "recovered"]
    assert done is not None and done.state is RequestState.FAILED
    assert [r.request_id for r in recovered] == [request.id]
    assert f"alert:1:outcome:R{request.id}" in posts
    assert first.service.auto_rollback() == second.service.auto_rollback() == 0  # the alert was acted on: once


def test_the_bot_invited_to_an_incident_channel_posts_the_alerts_that_never_landed(
    replicas: tuple[Bot, Bot, Clock],
) -> None:
    """Two firing alerts whose posts were given up (the bot not in the incident channel) and one resolved: the bot
    added to that channel queues the firing ones' posts, once however often Slack says so; another channel, or an
    alert whose post landed, gets nothing."""
    bot, _, clock = replicas
    channel = bot.service.deps.settings.models[MODEL].incident_channel
    assert channel
    starts_at = clock().isoformat()
    for fingerprint in ("fp-a", "fp-b", "fp-c"):
        assert bot.service.alert(_webhook(clock, fingerprint, "firing", starts_at)).queued == 1
    assert bot.service.alert(_webhook(clock, "fp-c", "resolved", starts_at)).queued == 1
    with bot.db.uow() as uow:  # what the outbox does after Slack's not_in_channel, three times
        for message in uow.outbox.pending():
            if message.kind == "alert":
                uow.outbox.give_up(message.id, clock(), "not_in_channel")
        uow.alerts.set_post(2, channel, "1.000002")  # fp-b's post landed (the bot was briefly in the channel)
        uow.commit()
    assert bot.service.bot_joined("C0ELSEWHERE") == ([], [])
    assert bot.service.bot_joined(channel) == ([], [1])
    assert bot.service.bot_joined(channel) == ([], [1])  # said again: the same message, not a new one
    with bot.db.uow(readonly=True) as uow:
        posts = sorted(m.key or "" for m in uow.outbox.pending() if m.kind == "alert")
    assert posts == [f"alert:1:rejoined:{channel}"]
