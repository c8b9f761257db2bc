"""The audit trail table: appends are serialised on one locked head row, so the chain cannot fork."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy import exc as sa_exc

from bot.core.audit import AuditEntry, VerifyResult, canonical_json, normalise_detail, seal, verify_stored
from bot.store.outbox import OutboxRepository
from bot.store.tables import AUDIT_HEAD_ID, audit_head, audit_log
from bot.store.tx import Tx

PAGE = 500  # rows fetched at a time when streaming the whole trail (measured: faster and smaller than 2000)


_INSERT = insert(audit_log)
_ALL_ROWS = (
    select(
        audit_log.c.seq,
        audit_log.c.at,
        audit_log.c.actor,
        audit_log.c.action,
        audit_log.c.outcome,
        audit_log.c.request_id,
        audit_log.c.model,
        audit_log.c.detail,
        audit_log.c.prev_hash,
        audit_log.c.hash,
    )
    .order_by(audit_log.c.seq)
    .execution_options(yield_per=PAGE)  # implies stream_results: rows arrive as they are read
)
_MOVE_HEAD = update(audit_head).where(audit_head.c.id == AUDIT_HEAD_ID)


class AuditRepository:
    """Append-only, hash-chained audit rows (see bot/core/audit.py for the chain itself)."""

    def __init__(self, tx: Tx, outbox: OutboxRepository, audit_channel: str | None) -> None:
        self._tx = tx
        self._outbox = outbox
        self._channel = audit_channel

    def append(
        self,
        *,
        at: datetime,
        actor: str,
        action: str,
        outcome: str,
        request_id: int | None,
        model: str | None,
        detail: Mapping[str, Any],
    ) -> AuditEntry:
        """Append one row chained to the newest one, in this transaction; also queue it for the
        audit channel (outbox kind "audit") when the Database has one. `detail` must be JSON-able
        (datetimes, enums and sets are converted); it is returned as it will read back."""
        head = self._tx.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == AUDIT_HEAD_ID).with_for_update()
        ).one()
        entry = seal(
            AuditEntry(
                seq=head.seq + 1,
                at=at,
                actor=actor,
                action=action,
                outcome=outcome,
                request_id=request_id,
                model=model,
                detail=normalise_detail(detail),
                prev_hash=head.hash,
            )
        )
        row = {
            "seq": entry.seq,
            "at": entry.at,
            "actor": entry.actor,
            "action": entry.action,
            "outcome": entry.outcome,
            "request_id": entry.request_id,
            "model": entry.model,
            "detail": canonical_json(entry.detail),
            "prev_hash": entry.prev_hash,
            "hash": entry.hash,
        }
        self._tx.execute(_INSERT, row)  # values as parameters: cached statements on the hot path
        self._tx.execute(_MOVE_HEAD, {"seq": entry.seq, "hash": entry.hash})
        if self._channel:
            # The sequence number was allocated under the head row's lock: its key cannot exist yet.
            self._outbox.enqueue(
                "audit", self._channel, entry.to_dict(), key=f"audit:{entry.seq}", at=at, fresh_key=True
            )
        return entry

    def recent(self, model: str | None = None, limit: int = 20) -> list[AuditEntry]:
        """The newest `limit` rows (of one model, if given), newest first."""
        statement = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
        if model is not None:
            statement = statement.where(audit_log.c.model == model)
        return [_entry(row) for row in self._tx.execute(statement)]

    def for_request(self, request_id: int) -> list[AuditEntry]:
        """Every row about one request, oldest first."""
        statement = select(audit_log).where(audit_log.c.request_id == request_id).order_by(audit_log.c.seq)
        return [_entry(row) for row in self._tx.execute(statement)]

    def iter_all(self) -> Iterator[AuditEntry]:
        """Every row in seq order, streamed (constant memory)."""
        for row in self.iter_rows():
            yield _entry(row)

    def iter_rows(self) -> Iterator[Row[Any]]:
        """Every row in seq order as stored (detail as its JSON text), in the column order of `verify_stored`:
        one query streamed `PAGE` rows at a time (a server-side cursor on PostgreSQL, fetchmany on SQLite)."""
        result = self._tx.execute(_ALL_ROWS)
        try:
            for page in result.partitions():
                yield from page
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            raise self._tx.db.unavailable(exc) from exc
        finally:
            result.close()

    def verify(self) -> VerifyResult:
        """Check the whole chain against the head row (bot.core.audit.verify_stored), streaming the rows."""
        head = self.head()  # read first, as before: rows appended after it show as a head mismatch, never missed
        return verify_stored(self.iter_rows(), _entry, head=head)

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest row as recorded in the head row ((0, GENESIS) when empty)."""
        row = self._tx.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == AUDIT_HEAD_ID)
        ).one()
        return int(row.seq), str(row.hash)


def _entry(row: Sequence[Any]) -> AuditEntry:
    """A row of audit_log in its column order (select(audit_log) and `_ALL_ROWS` both give that order)."""
    seq, at, actor, action, outcome, request_id, model, detail, prev_hash, hash_ = row
    return AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        outcome=outcome,
        request_id=request_id,
        model=model,
        detail=_detail(detail),
        prev_hash=prev_hash,
        hash=hash_,
    )


def _detail(text: str) -> dict[str, Any]:
    # A row edited into invalid JSON must still reach verify_chain, which then reports its seq.
    try:
        value = json.loads(text)
    except ValueError:
        return {"unreadable_detail": text}
    return value if isinstance(value, dict) else {"unreadable_detail": text}
