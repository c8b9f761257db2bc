"""`modelbot audit verify` on a long trail: 100,000 chained rows on SQLite and PostgreSQL (goal: under 1 s each, in
constant memory). PostgreSQL is skipped when MODELBOT_TEST_POSTGRES_URL is unset.

The trail is written with one bulk insert per chunk, its hashes computed by bot.core.audit's `seal`, so it is a
valid chain; `verify` is then timed (median of 3) and run once more under tracemalloc for its peak memory.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bot.core.audit import GENESIS, AuditEntry, canonical_json, seal
from bot.store import audit_export
from bot.store.database import Database
from bot.store.tables import AUDIT_HEAD_ID, audit_head, audit_log

ROWS = 100_000
CHUNK = 5_000
RUNS = 3
GOAL_S = 1.0
POSTGRES_ENV = "MODELBOT_TEST_POSTGRES_URL"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ACTIONS = (("rollback", "requested"), ("approve", "approved"), ("execute", "executing"), ("execute", "succeeded"))


def run(rows: int = ROWS, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fill each backend with `rows` rows and time `audit_export.verify`; one result row per backend."""
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        for backend in ("sqlite", "postgres"):
            with _fresh_url(backend, Path(tmp)) as url:
                if url is None:
                    results.append({"backend": backend, "skipped": f"{POSTGRES_ENV} is not set"})
                    continue
                results.append(_measure(backend, url, rows, log))
    return {"rows": results, "lines": [_line(r) for r in results]}


def _measure(backend: str, url: str, rows: int, log: Callable[[str], None]) -> dict[str, Any]:
    db = Database(url)
    db.upgrade()
    started = time.perf_counter()
    fill(db, rows)
    log(f"audit verify: {backend} filled with {rows:,} rows in {time.perf_counter() - started:.1f} s")
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        result = audit_export.verify(db)
        times.append(time.perf_counter() - started)
        if not result.ok or result.checked != rows:
            raise AssertionError(f"{backend}: the filled trail does not verify: {result}")
    tracemalloc.start()
    audit_export.verify(db)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    db.engine.dispose()
    median = statistics.median(times)
    return {
        "backend": backend,
        "rows": rows,
        "verify_s_median": round(median, 3),
        "verify_s_runs": [round(t, 3) for t in times],
        "peak_mb": round(peak / 2**20, 2),
        "goal_s": GOAL_S,
        "met": median < GOAL_S,
    }


def fill(db: Database, rows: int) -> None:
    """Append `rows` valid, realistic rows in bulk (no per-row head lock) and move the head to the last one."""
    prev = GENESIS
    seq = 0
    with db.engine.begin() as conn:
        while seq < rows:
            batch = []
            for _ in range(min(CHUNK, rows - seq)):
                seq += 1
                entry = seal(_entry(seq, prev))
                prev = entry.hash
                batch.append({**entry.content(), "at": entry.at, "detail": canonical_json(entry.detail)})
                batch[-1].update(prev_hash=entry.prev_hash, hash=entry.hash)
            conn.execute(sa.insert(audit_log), batch)
        conn.execute(sa.update(audit_head).where(audit_head.c.id == AUDIT_HEAD_ID).values(seq=seq, hash=prev))


def _entry(seq: int, prev_hash: str) -> AuditEntry:
    request = seq // 4 + 1
    action, outcome = ACTIONS[seq % 4]
    return AuditEntry(
        seq=seq,
        at=T0 + timedelta(seconds=seq, microseconds=seq % 1000),
        actor="U01ALICE" if seq % 2 else "U02BOB",
        action=action,
        outcome=outcome,
        request_id=request,
        model=f"model_{request % 50}",
        detail={
            "from_version": 3,
            "to_version": 2,
            "label": "stable",
            "state": "PENDING",
            "via": "slack",
            "reason": f"INC-{request} false positives ✓",
        },
        prev_hash=prev_hash,
    )


@contextmanager
def _fresh_url(backend: str, tmp: Path) -> Iterator[str | None]:
    """An empty SQLite file, or a fresh PostgreSQL schema dropped afterwards (None when no server is configured)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'audit-bench.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        yield None
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _line(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"{r['backend']:<9} skipped: {r['skipped']}"
    return (
        f"{r['backend']:<9} {r['rows']:>8,} rows  verify {r['verify_s_median']:.3f} s (median of {RUNS})"
        f"  peak {r['peak_mb']:.2f} MB  goal < {GOAL_S:.0f} s -> {'met' if r['met'] else 'NOT met'}"
    )


if __name__ == "__main__":
    for line in run()["lines"]:
        print(line)
