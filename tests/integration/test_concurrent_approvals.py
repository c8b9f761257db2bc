"""Exactly one execution per request, enforced by the database across processes."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.core.change_request import RequestState
from bot.store import audit_export
from tests.service_harness import ALICE, Clock, make_harness

REPO = Path(__file__).resolve().parents[2]


def test_twenty_concurrent_approvals_from_two_processes_execute_once(tmp_path: Path, db_url: str) -> None:
    """20 approvers (10 threads in each of 2 processes) click at once: one reload round, one operation."""
    h = make_harness(tmp_path, db_url, clock=Clock(datetime.now(UTC)))  # workers use the real clock
    assert h.say(ALICE, 'rollback fraud_detector 2 --reason "INC-1"').request_id == 1
    start_at = time.time() + 3.0  # both processes are up and waiting by then
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.approver_worker",
                db_url,
                str(tmp_path),
                str(i * 10),
                "10",
                str(start_at),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=120) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    replies = [line for out, _ in outputs for line in out.splitlines() if line.startswith("U9")]
    assert len(replies) == 20
    assert sum("ok=True" in r for r in replies) == 1, replies
    assert (tmp_path / "rollouts.log").read_text().count("rollout") == 1
    with h.bot.db.uow() as uow:
        assert uow.requests.get(1).state is RequestState.SUCCEEDED
        assert len(uow.operations.for_request(1)) == 1
    assert audit_export.verify(h.bot.db).ok
    h.bot.close()
