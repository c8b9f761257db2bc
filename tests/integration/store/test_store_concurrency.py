"""Real OS processes racing on one database: the audit chain never forks and exactly one CAS wins."""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.core.change_request import RequestState
from bot.core.errors import Conflict
from bot.store import Database, audit_export
from tests.integration.store.conftest import AUDIT_CHANNEL, T0

SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter: no engine or socket inherited by fork
APPENDS_PER_PROCESS = 50
REQUESTS = 20


def _append_worker(url: str, actor: str, barrier: Any) -> None:
    db = Database(url, audit_channel=AUDIT_CHANNEL)
    db.ping()
    barrier.wait()
    for i in range(APPENDS_PER_PROCESS):
        with db.uow() as uow:
            uow.audit.append(
                at=T0, actor=actor, action="append", outcome="ok", request_id=None, model=None, detail={"i": i}
            )
            uow.commit()
    db.dispose()


def _transition_worker(url: str, name: str, ids: list[int], locked: bool, barrier: Any, out: str) -> None:
    """For each request: wait for the other process, then try APPROVED -> EXECUTING."""
    db = Database(url)
    results = []
    for request_id in ids:
        if locked:  # the service's way: lock, check the state, save, all in one transaction
            barrier.wait()
            with db.uow() as uow:
                req = uow.requests.get_for_update(request_id)
                assert req is not None
                if req.state is not RequestState.APPROVED:
                    results.append((request_id, "already"))
                    continue
                uow.requests.save(replace(req, state=RequestState.EXECUTING), req.version)
                uow.commit()
                results.append((request_id, "won"))
            continue
        with db.uow(readonly=True) as uow:  # both read the same version, then race to save it
            req = uow.requests.get(request_id)
        assert req is not None and req.state is RequestState.APPROVED
        barrier.wait()
        try:
            with db.uow() as uow:
                uow.requests.save(replace(req, state=RequestState.EXECUTING), req.version)
                uow.commit()
            results.append((request_id, "won"))
        except Conflict:
            results.append((request_id, "conflict"))
    Path(out).write_text(json.dumps({"name": name, "results": results}))
    db.dispose()


def _lock_worker(url: str, name: str, barrier: Any, out: str) -> None:
    db = Database(url)
    db.ping()
    barrier.wait()
    with db.uow() as uow:
        won = uow.fleet_lock.acquire(name, T0, timedelta(minutes=5))
        uow.commit()
    Path(out).write_text(json.dumps(won))
    db.dispose()


def _upgrade_worker(url: str, barrier: Any) -> None:
    db = Database(url)
    barrier.wait()
    db.upgrade()
    db.dispose()


def _run(workers: list[tuple[Any, ...]], target: Any) -> None:
    processes = [SPAWN.Process(target=target, args=args) for args in workers]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * len(processes)


def test_two_processes_appending_keep_one_valid_chain(db: Database, db_url: str) -> None:
    """2 processes x 50 appends at once leave 100 rows in one valid chain, each queued once for the channel."""
    barrier = SPAWN.Barrier(2, timeout=60)
    _run([(db_url, "P1", barrier), (db_url, "P2", barrier)], _append_worker)
    result = audit_export.verify(db)
    assert result.ok, result.problem
    assert result.checked == 2 * APPENDS_PER_PROCESS
    with db.uow(readonly=True) as uow:
        entries = list(uow.audit.iter_all())
        assert uow.outbox.pending_count() == 2 * APPENDS_PER_PROCESS
    assert Counter(e.actor for e in entries) == {"P1": APPENDS_PER_PROCESS, "P2": APPENDS_PER_PROCESS}
    assert [e.seq for e in entries] == list(range(1, 2 * APPENDS_PER_PROCESS + 1))


def _approved_requests(db: Database, make_request: Any) -> list[int]:
    with db.uow() as uow:
        ids = [
            uow.requests.add(make_request(model=f"model_{i}", state=RequestState.APPROVED)).id for i in range(REQUESTS)
        ]
        uow.commit()
    return ids


def _transition_race(db: Database, db_url: str, make_request: Any, tmp_path: Path, locked: bool) -> list[Any]:
    ids = _approved_requests(db, make_request)
    barrier = SPAWN.Barrier(2, timeout=60)
    outs = [str(tmp_path / f"{name}.json") for name in ("P1", "P2")]
    _run(
        [(db_url, name, ids, locked, barrier, out) for name, out in zip(("P1", "P2"), outs, strict=True)],
        _transition_worker,
    )
    results = [tuple(r) for out in outs for r in json.loads(Path(out).read_text())["results"]]
    wins = Counter(request_id for request_id, outcome in results if outcome == "won")
    assert wins == dict.fromkeys(ids, 1)
    with db.uow(readonly=True) as uow:
        assert all(uow.requests.get(i).state is RequestState.EXECUTING for i in ids)
        assert all(uow.requests.get(i).version == 1 for i in ids)
    return results


def test_concurrent_cas_transitions_have_exactly_one_winner(
    db: Database, db_url: str, make_request, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """20 requests, each moved APPROVED -> EXECUTING by 2 processes from the same read: one wins, one conflicts."""
    results = _transition_race(db, db_url, make_request, tmp_path, locked=False)
    assert Counter(outcome for _, outcome in results) == {"won": REQUESTS, "conflict": REQUESTS}


def test_concurrent_locked_transitions_have_exactly_one_winner(
    db: Database, db_url: str, make_request, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The same race through get_for_update (as the service does): the loser sees EXECUTING and stops."""
    results = _transition_race(db, db_url, make_request, tmp_path, locked=True)
    assert Counter(outcome for _, outcome in results) == {"won": REQUESTS, "already": REQUESTS}


def test_two_processes_acquiring_the_fleet_lock_get_one_lease(db: Database, db_url: str, tmp_path: Path) -> None:
    """Two processes acquiring the free fleet lock at the same instant: exactly one gets it."""
    barrier = SPAWN.Barrier(2, timeout=60)
    outs = [str(tmp_path / f"{name}.json") for name in ("P1", "P2")]
    _run([(db_url, name, barrier, out) for name, out in zip(("P1", "P2"), outs, strict=True)], _lock_worker)
    assert sorted(json.loads(Path(out).read_text()) for out in outs) == [False, True]


def test_two_processes_upgrading_a_fresh_database_at_once_both_succeed(db_url: str) -> None:
    """Two processes starting on an empty database migrate it once; neither fails on the other's tables."""
    barrier = SPAWN.Barrier(2, timeout=60)
    _run([(db_url, barrier), (db_url, barrier)], _upgrade_worker)
    db = Database(db_url)
    with db.uow(readonly=True) as uow:
        assert uow.audit.head() == (0, "0" * 64)
        assert uow.desired.load() is None
    db.dispose()
