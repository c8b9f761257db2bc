"""An in-memory store for fast use-case tests: `MemoryStore` implements `bot.usecases.ports.Store`.

It mirrors bot/store (the SQLAlchemy store) where the use cases can tell the difference:

- Transactions: a writing unit of work works on a copy of the committed state taken when it begins; `commit()`
  publishes it atomically, leaving the block without commit() discards it. Writers are serialised by one lock
  (like SQLite's BEGIN IMMEDIATE), waiting at most `lock_timeout_s` (then StoreUnavailable); a second writer opened
  in the same thread fails at once (as the SQL store does). A `readonly=True` unit of work reads the last committed
  state without waiting for writers and refuses every write.
- Values are stored as the SQL store stores them (JSON text for payloads, details and extras; aware UTC datetimes,
  naive ones refused), so what reads back is what the SQL store gives back.
- Compare-and-set: `requests.save` on `version` (Conflict / NotFound), one open request per model (Conflict),
  `operations.finish` only when unfinished, the fleet lease taken only when free or lapsed, outbox keys unique,
  alert firings unique and `decide_auto` only from pending, one drift episode per model.
- The audit trail is chained with bot.core.audit's `normalise_detail`, `seal`, `canonical_json` and checked with
  `verify_stored`, exactly as bot/store/audit.py does (one head, queued to the audit channel when there is one).

Not mirrored: row locks inside PostgreSQL (the one writer lock makes every writer exclusive, as on SQLite),
`FOR UPDATE SKIP LOCKED`, migrations, the audit export and what only the command line reads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from bot.core.alerts import FIRING, NEW, REPEAT, RESOLVED, RESOLVED_NOW, AlertNotice, AutoState, StoredAlert
from bot.core.audit import GENESIS, AuditEntry, VerifyResult, canonical_json, normalise_detail, seal, verify_stored
from bot.core.auto_rollback import StableChange
from bot.core.change_request import OPEN_STATES, Approval, ChangeRequest, RequestState
from bot.core.commands import format_request_id
from bot.core.desired import FleetConfig, ModelState
from bot.core.drift import Episode
from bot.core.errors import Conflict, NotFound, StoreUnavailable
from bot.core.fleet import RolloutResult
from bot.core.freeze import ALL_MODELS, Freeze
from bot.core.outbox import OutboxMessage

MAX_ERROR_CHARS = 2000  # as bot/store/outbox.py
NEW_MESSAGE_DUE = datetime(1970, 1, 1, tzinfo=UTC)
EXPIRABLE_STATES = frozenset({RequestState.PENDING, RequestState.APPROVED})
EXECUTED_STATES = frozenset({RequestState.SUCCEEDED, RequestState.PARTIAL, RequestState.FAILED})
CHANGED_OUTCOMES = frozenset({RequestState.SUCCEEDED.value, RequestState.PARTIAL.value})

Row = dict[str, Any]
TABLES = ("requests", "approvals", "operations", "op_replicas", "audit", "outbox", "freezes", "alerts", "registry")


def _utc(at: datetime | None) -> datetime | None:
    """What a UtcDateTime column gives back: aware UTC; naive values are refused as the store refuses them."""
    if at is None:
        return None
    if at.tzinfo is None:
        raise ValueError("the store only accepts timezone-aware datetimes")
    return at.astimezone(UTC)


def _aware(at: datetime) -> datetime:
    value = _utc(at)
    assert value is not None
    return value


class _Data:
    """Every table: rows are dicts whose values are immutable (str, int, datetime, tuple), so copying a row's dict
    copies the row. `ids` holds each table's next id; `meta` the single-row tables."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[int, Row]] = {name: {} for name in TABLES}
        self.ids: dict[str, int] = dict.fromkeys(TABLES, 1)
        self.desired: dict[str, str] = {}  # model name -> ModelState.to_dict() JSON
        self.drift: dict[str, Row] = {}
        self.meta: Row = {
            "revision": 0,
            "head": (0, GENESIS),
            "lock_holder": None,
            "lock_acquired_at": None,
            "lock_expires_at": None,
        }

    def copy(self) -> _Data:
        new = _Data.__new__(_Data)
        new.tables = {name: {k: dict(v) for k, v in rows.items()} for name, rows in self.tables.items()}
        new.ids = dict(self.ids)
        new.desired = dict(self.desired)
        new.drift = {k: dict(v) for k, v in self.drift.items()}
        new.meta = dict(self.meta)
        return new

    def insert(self, table: str, row: Row) -> int:
        row_id = self.ids[table]
        self.ids[table] = row_id + 1
        self.tables[table][row_id] = {**row, "id": row_id}
        return row_id


class MemoryStore:
    """The database, in memory: `uow(readonly=...)` and `ping()` as `bot.usecases.ports.Store` asks.

    `audit_channel`: when set, every audit row is also queued in the outbox (kind "audit"), like
    `Database(audit_channel=...)`. `down`: while true, every new unit of work and ping fails with StoreUnavailable."""

    def __init__(self, *, audit_channel: str | None = None, lock_timeout_s: float = 30.0) -> None:
        self.audit_channel = audit_channel
        self.lock_timeout_s = lock_timeout_s
        self.down = False
        self.committed = _Data()  # replaced, never changed in place: a reader's snapshot stays as it was
        self.write_lock = threading.Lock()
        self.writers = threading.local()
        self.commits = 0

    def uow(self, *, readonly: bool = False) -> MemoryUnitOfWork:
        """A new unit of work (one transaction)."""
        return MemoryUnitOfWork(self, readonly=readonly)

    def ping(self) -> None:
        """Raise StoreUnavailable while `down`."""
        if self.down:
            raise StoreUnavailable("the in-memory database is down (test)")

    def check_schema(self) -> None:
        """Readiness: an in-memory store has no migrations, so it is ready whenever it answers."""
        self.ping()

    def publish(self, data: _Data) -> None:
        self.committed = data
        self.commits += 1


class MemoryUnitOfWork:
    """One transaction over a MemoryStore; repositories as attributes, like bot.store.unit_of_work.UnitOfWork."""

    requests: MemoryRequests
    desired: MemoryDesired
    registry: MemoryRegistry
    operations: MemoryOperations
    audit: MemoryAudit
    outbox: MemoryOutbox
    fleet_lock: MemoryFleetLock
    drift: MemoryDrift
    freezes: MemoryFreezes
    alerts: MemoryAlerts

    def __init__(self, store: MemoryStore, *, readonly: bool = False) -> None:
        self._store = store
        self.readonly = readonly
        self._entered = False
        self._open = False
        self._locked = False
        self._work: _Data | None = None

    def __enter__(self) -> Self:
        if self._entered:
            raise RuntimeError("a unit of work can be entered only once")
        self._entered = True
        self._store.ping()
        if not self.readonly:
            if getattr(self._store.writers, "open", False):
                raise RuntimeError("a writing unit of work is already open in this thread (it would wait forever)")
            if not self._store.write_lock.acquire(timeout=self._store.lock_timeout_s):
                raise StoreUnavailable("the in-memory database is locked by another writer (timeout)")
            self._locked = True
            self._store.writers.open = True
        self._begin()
        self._open = True
        self.outbox = MemoryOutbox(self)
        self.requests = MemoryRequests(self)
        self.desired = MemoryDesired(self)
        self.registry = MemoryRegistry(self)
        self.operations = MemoryOperations(self)
        self.audit = MemoryAudit(self, self.outbox, self._store.audit_channel)
        self.fleet_lock = MemoryFleetLock(self)
        self.drift = MemoryDrift(self)
        self.freezes = MemoryFreezes(self)
        self.alerts = MemoryAlerts(self)
        return self

    def _begin(self) -> None:
        committed = self._store.committed
        self._work = committed if self.readonly else committed.copy()

    def data(self, *, write: bool = False) -> _Data:
        """The transaction's state (for the repositories); `write`: refused in a readonly unit of work."""
        if not self._open or self._work is None:
            raise RuntimeError("this unit of work is closed; start a new one")
        if write and self.readonly:
            raise RuntimeError("cannot write in a readonly unit of work (db.uow(readonly=True))")
        return self._work

    def commit(self) -> None:
        """Publish every change of this unit of work atomically; later changes form a new transaction."""
        if not self._open or self._work is None:
            raise RuntimeError("commit() outside the unit of work's `with` block")
        if self.readonly:
            return
        self._store.publish(self._work)
        self._work = self._work.copy()

    def rollback(self) -> None:
        """Discard every uncommitted change (also done on leaving without commit)."""
        if self._open:
            self._begin()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._open:
            return
        self._open = False
        self._work = None
        if self._locked:
            self._locked = False
            self._store.writers.open = False
            self._store.write_lock.release()


class _Repo:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    def _read(self) -> _Data:
        return self._uow.data()

    def _write(self) -> _Data:
        return self._uow.data(write=True)


# --- requests -----------------------------------------------------------------------------------------------


class MemoryRequests(_Repo):
    """Change requests: one open request per model, compare-and-set on `version` (bot/store/requests.py)."""

    def add(self, req: ChangeRequest) -> ChangeRequest:
        data = self._write()
        if req.state.is_open:
            existing = self.open_for_model(req.model)
            if existing is not None:
                raise _already_open(existing)
        request_id = data.insert("requests", _columns(req, req.version))
        self._insert_approvals(data, request_id, req.approvals, known=set())
        return replace(req, id=request_id)

    def get(self, request_id: int) -> ChangeRequest | None:
        row = self._read().tables["requests"].get(request_id)
        return None if row is None else self._request(row)

    def get_for_update(self, request_id: int) -> ChangeRequest | None:
        return self.get(request_id)  # a writer holds the one lock already

    def save(self, req: ChangeRequest, expected_version: int) -> ChangeRequest:
        data = self._write()
        label = format_request_id(req.id)
        row = data.tables["requests"].get(req.id)
        if row is None:
            raise NotFound(f"{label} does not exist")
        if row["version"] != expected_version:
            raise Conflict(f"{label} changed while you were deciding; try again")
        values = _columns(req, expected_version + 1)
        del values["created_at"]
        if values["open_model"] is not None and any(
            other["open_model"] == values["open_model"] and rid != req.id
            for rid, other in data.tables["requests"].items()
        ):
            raise Conflict(f"{req.model} already has another open request")
        known = {a["user_id"] for a in data.tables["approvals"].values() if a["request_id"] == req.id}
        if len({a.user_id for a in req.approvals if a.user_id not in known}) != len(
            [a for a in req.approvals if a.user_id not in known]
        ):
            raise Conflict(f"{label} changed while you were deciding; try again")
        row.update(values)
        self._insert_approvals(data, req.id, req.approvals, known)
        return replace(req, version=expected_version + 1)

    def open_for_model(self, model: str) -> ChangeRequest | None:
        found = self._where(lambda r: r["open_model"] == model)
        return found[0] if found else None

    def emergencies(self) -> list[ChangeRequest]:
        return self._where(lambda r: bool(r["emergency"]))

    def list_open(self) -> list[ChangeRequest]:
        return self._where(lambda r: r["open_model"] is not None)

    def recent_executed(self, limit: int = 10) -> list[ChangeRequest]:
        executed = {s.value for s in EXECUTED_STATES}
        return list(reversed(self._where(lambda r: r["state"] in executed)))[:limit]

    def list_due_for_expiry(self, now: datetime) -> list[ChangeRequest]:
        expirable, now = {s.value for s in EXPIRABLE_STATES}, _aware(now)
        return self._where(lambda r: r["state"] in expirable and r["expires_at"] <= now)

    def set_card(self, request_id: int, channel: str, ts: str) -> None:
        row = self._write().tables["requests"].get(request_id)
        if row is not None:
            row.update(card_channel=channel, card_ts=ts)

    def get_card(self, request_id: int) -> tuple[str, str] | None:
        row = self._read().tables["requests"].get(request_id)
        if row is None or row["card_channel"] is None or row["card_ts"] is None:
            return None
        return (row["card_channel"], row["card_ts"])

    def _where(self, keep: Callable[[Row], bool]) -> list[ChangeRequest]:
        rows = self._read().tables["requests"]
        return [self._request(rows[rid]) for rid in sorted(rows) if keep(rows[rid])]

    def _request(self, row: Row) -> ChangeRequest:
        approvals = self._read().tables["approvals"]
        mine = tuple(
            Approval(user_id=a["user_id"], at=a["at"])
            for _, a in sorted(approvals.items())
            if a["request_id"] == row["id"]
        )
        return ChangeRequest(
            id=row["id"],
            action=row["action"],
            model=row["model"],
            from_version=row["from_version"],
            to_version=row["to_version"],
            label=row["label"],
            reason=row["reason"],
            requester=row["requester"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            required_approvals=row["required_approvals"],
            approver_roles=frozenset(json.loads(row["approver_roles"])),
            digest=row["digest"],
            model_generation=row["model_generation"],
            state=RequestState(row["state"]),
            approvals=mine,
            emergency=row["emergency"],
            dry_run_plan=row["dry_run_plan"],
            decided_by=row["decided_by"],
            decision_reason=row["decision_reason"],
            version=row["version"],
            extra=json.loads(row["extra"]),
        )

    @staticmethod
    def _insert_approvals(data: _Data, request_id: int, new: Sequence[Approval], known: set[str]) -> None:
        for a in new:
            if a.user_id not in known:
                data.insert("approvals", {"request_id": request_id, "user_id": a.user_id, "at": _utc(a.at)})
                known = known | {a.user_id}


def _already_open(existing: ChangeRequest) -> Conflict:
    # The same sentence as bot/store/requests.py (a use case may show it).
    rid = format_request_id(existing.id)
    if existing.state is RequestState.EXECUTING:
        how = "it is executing now; wait for its outcome"
    else:
        how = (
            f"{existing.requester} can withdraw it with `/model cancel {rid}`, an approver can `/model reject {rid}`,"
            " and an incident commander's `--emergency` rollback supersedes it"
        )
    return Conflict(
        f"{rid} ({existing.state.value.lower()}, by {existing.requester}) is already open for {existing.model}: {how}"
    )


def _columns(req: ChangeRequest, version: int) -> Row:
    return {
        "action": req.action,
        "model": req.model,
        "open_model": req.model if req.state in OPEN_STATES else None,
        "from_version": req.from_version,
        "to_version": req.to_version,
        "label": req.label,
        "reason": req.reason,
        "requester": req.requester,
        "created_at": _utc(req.created_at),
        "expires_at": _utc(req.expires_at),
        "required_approvals": req.required_approvals,
        "approver_roles": json.dumps(sorted(req.approver_roles)),
        "digest": req.digest,
        "model_generation": req.model_generation,
        "state": req.state.value,
        "emergency": req.emergency,
        "dry_run_plan": req.dry_run_plan,
        "decided_by": req.decided_by,
        "decision_reason": req.decision_reason,
        "version": version,
        "extra": json.dumps(req.extra, sort_keys=True, default=str),
        "card_channel": None,
        "card_ts": None,
    }


# --- desired state and registry --------------------------------------------------------------------------------


class MemoryDesired(_Repo):
    """The whole desired config (bot/store/desired.py): None until saved once."""

    def load(self) -> FleetConfig | None:
        data = self._read()
        if not data.meta["revision"]:
            return None
        return FleetConfig(
            models=tuple(ModelState.from_dict(json.loads(data.desired[n])) for n in sorted(data.desired))
        )

    def save(self, config: FleetConfig) -> None:
        data = self._write()
        data.meta["revision"] += 1
        data.desired = {m.name: json.dumps(m.to_dict(), sort_keys=True) for m in config.models}

    def get(self, model: str) -> ModelState | None:
        state = self._read().desired.get(model)
        return None if state is None else ModelState.from_dict(json.loads(state))

    def revision(self) -> int:
        """How many times the desired config was saved (0 = never bootstrapped)."""
        return int(self._read().meta["revision"])


class MemoryRegistry(_Repo):
    """Metrics and a note per (model, version) (bot/store/registry.py)."""

    def record(
        self, model: str, version: int, metrics: dict[str, float | str], note: str, actor: str, at: datetime
    ) -> None:
        """Record (or replace) the metadata of one model version."""
        data = self._write()
        values = {"metrics": json.dumps(metrics, sort_keys=True), "note": note, "actor": actor, "at": _utc(at)}
        for row in data.tables["registry"].values():
            if row["model"] == model and row["version"] == version:
                row.update(values)
                return
        data.insert("registry", {"model": model, "version": version, **values})

    def for_model(self, model: str) -> dict[int, dict[str, Any]]:
        rows = [r for r in self._read().tables["registry"].values() if r["model"] == model]
        return {
            r["version"]: {
                **{k: r[k] for k in ("model", "version", "note", "actor", "at")},
                "metrics": json.loads(r["metrics"]),
            }
            for r in sorted(rows, key=lambda r: int(r["version"]))
        }


# --- operations -------------------------------------------------------------------------------------------------


class MemoryOperations(_Repo):
    """Rollout operations, finished exactly once (bot/store/operations.py)."""

    def start(
        self,
        request_id: int | None,
        model: str,
        at: datetime,
        *,
        holder: str | None = None,
        before: ModelState | None = None,
    ) -> int:
        row = {
            "request_id": request_id,
            "model": model,
            "holder": holder,
            "started_at": _utc(at),
            "finished_at": None,
            "outcome": None,
            "message": None,
            "phases_run": None,
            "elapsed_s": None,
            "before_state": json.dumps(before.to_dict() if before else None, sort_keys=True),
        }
        return self._write().insert("operations", row)

    def finish(self, op_id: int, result: RolloutResult, at: datetime) -> bool:
        data = self._write()
        row = data.tables["operations"].get(op_id)
        if row is None or row["finished_at"] is not None:
            return False
        row.update(
            finished_at=_utc(at),
            outcome=result.outcome.value,
            message=result.message,
            phases_run=json.dumps(list(result.phases_run)),
            elapsed_s=result.elapsed_s,
        )
        for r in result.replicas:
            data.insert(
                "op_replicas",
                {
                    "operation_id": op_id,
                    "replica": r.replica,
                    "ok": r.ok,
                    "phase": r.phase,
                    "detail": r.detail,
                    "served_version": r.served_version,
                },
            )
        return True

    def get(self, op_id: int) -> dict[str, Any] | None:
        """One operation (same shape as `for_request` items), or None."""
        found = self._where(lambda r: r["id"] == op_id)
        return found[0] if found else None

    def for_request(self, request_id: int) -> list[dict[str, Any]]:
        return self._where(lambda r: r["request_id"] == request_id)

    def any_unfinished(self) -> bool:
        return any(r["finished_at"] is None for r in self._read().tables["operations"].values())

    def unfinished(self) -> list[dict[str, Any]]:
        return self._where(lambda r: r["finished_at"] is None)

    def before_state(self, op_id: int) -> tuple[bool, ModelState | None]:
        row = self._read().tables["operations"].get(op_id)
        if row is None or row["before_state"] is None:
            return False, None
        raw = json.loads(row["before_state"])
        return True, (ModelState.from_dict(raw) if raw else None)

    def _where(self, keep: Callable[[Row], bool]) -> list[dict[str, Any]]:
        data = self._read()
        ops = data.tables["operations"]
        replicas = data.tables["op_replicas"]
        found = []
        for op_id in sorted(ops):
            row = ops[op_id]
            if not keep(row):
                continue
            found.append(
                {
                    **{k: row[k] for k in ("id", "request_id", "model", "holder", "started_at", "finished_at")},
                    **{k: row[k] for k in ("outcome", "message", "elapsed_s")},
                    "phases_run": json.loads(row["phases_run"]) if row["phases_run"] else [],
                    "replicas": [
                        {k: r[k] for k in ("replica", "ok", "phase", "detail", "served_version")}
                        for _, r in sorted(replicas.items())
                        if r["operation_id"] == op_id
                    ],
                }
            )
        return found


# --- audit --------------------------------------------------------------------------------------------------------


class MemoryAudit(_Repo):
    """The hash-chained trail, appended under the one head as bot/store/audit.py does."""

    def __init__(self, uow: MemoryUnitOfWork, outbox: MemoryOutbox, channel: str | None) -> None:
        super().__init__(uow)
        self._outbox = outbox
        self._channel = channel

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
        data = self._write()
        head_seq, head_hash = data.meta["head"]
        entry = seal(
            AuditEntry(
                seq=head_seq + 1,
                at=_aware(at),
                actor=actor,
                action=action,
                outcome=outcome,
                request_id=request_id,
                model=model,
                detail=normalise_detail(detail),
                prev_hash=head_hash,
            )
        )
        row = (
            entry.seq,
            entry.at,
            entry.actor,
            entry.action,
            entry.outcome,
            entry.request_id,
            entry.model,
            canonical_json(entry.detail),
            entry.prev_hash,
            entry.hash,
        )
        data.tables["audit"][entry.seq] = {"row": row, "request_id": request_id, "model": model, "action": action}
        data.meta["head"] = (entry.seq, entry.hash)
        if self._channel:
            self._outbox.enqueue(
                "audit", self._channel, entry.to_dict(), key=f"audit:{entry.seq}", at=at, fresh_key=True
            )
        return entry

    def recent(self, model: str | None = None, limit: int = 20) -> list[AuditEntry]:
        rows = self._read().tables["audit"]
        found = [
            _entry(rows[s]["row"]) for s in sorted(rows, reverse=True) if model is None or rows[s]["model"] == model
        ]
        return found[:limit]

    def for_request(self, request_id: int) -> list[AuditEntry]:
        rows = self._read().tables["audit"]
        return [_entry(rows[s]["row"]) for s in sorted(rows) if rows[s]["request_id"] == request_id]

    def iter_rows(self) -> Iterator[tuple[Any, ...]]:
        """Every row as stored (detail as its canonical JSON text), in seq order."""
        rows = self._read().tables["audit"]
        for seq in sorted(rows):
            yield rows[seq]["row"]

    def iter_all(self) -> Iterator[AuditEntry]:
        """Every row in seq order."""
        for row in self.iter_rows():
            yield _entry(row)

    def verify(self) -> VerifyResult:
        head = self.head()
        return verify_stored(self.iter_rows(), _entry, head=head)

    def head(self) -> tuple[int, str]:
        seq, hash_ = self._read().meta["head"]
        return int(seq), str(hash_)

    def tamper(self, seq: int, **changes: Any) -> None:
        """Tests only: overwrite stored columns of one row (actor, outcome, detail text...), as an attacker with
        database access would; the chain must then fail to verify."""
        columns = ("seq", "at", "actor", "action", "outcome", "request_id", "model", "detail", "prev_hash", "hash")
        record = self._write().tables["audit"][seq]
        values = dict(zip(columns, record["row"], strict=True)) | changes
        record["row"] = tuple(values[c] for c in columns)


def _entry(row: Sequence[Any]) -> AuditEntry:
    seq, at, actor, action, outcome, request_id, model, detail, prev_hash, hash_ = row
    try:
        value = json.loads(detail)
    except ValueError:
        value = None
    return AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        outcome=outcome,
        request_id=request_id,
        model=model,
        detail=value if isinstance(value, dict) else {"unreadable_detail": detail},
        prev_hash=prev_hash,
        hash=hash_,
    )


# --- outbox -------------------------------------------------------------------------------------------------------


class MemoryOutbox(_Repo):
    """Durable Slack messages, unique keys, one head per channel (bot/store/outbox.py)."""

    def __init__(self, uow: MemoryUnitOfWork) -> None:
        super().__init__(uow)
        self._cards: set[int] = set()

    def enqueue(
        self,
        kind: str,
        channel: str,
        payload: dict[str, Any],
        key: str | None = None,
        *,
        at: datetime | None = None,
        fresh_key: bool = False,
        due_at: datetime | None = None,
    ) -> int:
        data = self._write()
        if key is not None:
            existing = self._id_for_key(key)
            if existing is not None:
                if fresh_key:  # the SQL store's unique index would refuse it
                    raise RuntimeError(f"outbox key {key!r} is not fresh")
                return existing
        row = {
            "kind": kind,
            "channel": channel,
            "payload": json.dumps(payload, sort_keys=True, default=str),
            "key": key,
            "created_at": _utc(at) or datetime.now(UTC),
            "next_attempt_at": _utc(due_at) or NEW_MESSAGE_DUE,
            "attempts": 0,
            "last_attempt_at": None,
            "last_error": None,
            "claimed_by": None,
            "claimed_until": None,
            "delivered_at": None,
            "abandoned_at": None,
            "response": None,
        }
        return data.insert("outbox", row)

    def enqueue_card(self, channel: str, request_id: int, state: str) -> None:
        if request_id in self._cards:
            return
        self._cards.add(request_id)
        self.enqueue("card", channel, {"request_id": request_id, "state": state})

    def due(self, now: datetime, limit: int = 50) -> list[OutboxMessage]:
        now = _aware(now)
        rows = self._write().tables["outbox"]  # PostgreSQL locks them (FOR UPDATE): never in a readonly uow
        heads: dict[str, int] = {}
        for mid in sorted(rows):
            r = rows[mid]
            if _pending(r) and (r["attempts"] > 0 or r["next_attempt_at"] <= now):
                heads.setdefault(r["channel"], mid)
        found = [
            _message(rows[mid])
            for mid in sorted(heads.values())
            if rows[mid]["next_attempt_at"] <= now
            and (rows[mid]["claimed_until"] is None or rows[mid]["claimed_until"] <= now)
        ]
        return found[:limit]

    def claim(self, message_id: int, holder: str, now: datetime, lease: timedelta) -> bool:
        now = _aware(now)
        row = self._write().tables["outbox"].get(message_id)
        if row is None or not _pending(row):
            return False
        if not (row["claimed_until"] is None or row["claimed_until"] <= now or row["claimed_by"] == holder):
            return False
        row.update(claimed_by=holder, claimed_until=now + lease)
        return True

    def mark_delivered(self, message_id: int, at: datetime, response: dict[str, Any]) -> None:
        self._settle(message_id, at, delivered_at=_utc(at), response=json.dumps(response, sort_keys=True, default=str))

    def mark_failed(self, message_id: int, at: datetime, error: str, retry_at: datetime) -> None:
        self._settle(message_id, at, last_error=error[:MAX_ERROR_CHARS], next_attempt_at=_utc(retry_at))

    def give_up(self, message_id: int, at: datetime, error: str) -> None:
        self._settle(message_id, at, last_error=error[:MAX_ERROR_CHARS], abandoned_at=_utc(at))

    def pending(self, channel: str | None = None, limit: int = 100) -> list[OutboxMessage]:
        """Undelivered, not given-up messages (of one channel, if given) in id order (tests and operators)."""
        rows = self._read().tables["outbox"]
        found = [
            _message(rows[m])
            for m in sorted(rows)
            if _pending(rows[m]) and (channel is None or rows[m]["channel"] == channel)
        ]
        return found[:limit]

    def pending_count(self) -> int:
        return sum(1 for r in self._read().tables["outbox"].values() if _pending(r))

    def oldest_pending_created_at(self) -> datetime | None:
        return min((r["created_at"] for r in self._read().tables["outbox"].values() if _pending(r)), default=None)

    def get(self, message_id: int) -> OutboxMessage | None:
        """One message, or None."""
        row = self._read().tables["outbox"].get(message_id)
        return None if row is None else _message(row)

    def _settle(self, message_id: int, at: datetime, **values: Any) -> None:
        row = self._write().tables["outbox"].get(message_id)
        if row is not None:
            row.update(
                attempts=row["attempts"] + 1, last_attempt_at=_utc(at), claimed_by=None, claimed_until=None, **values
            )

    def _id_for_key(self, key: str) -> int | None:
        for mid, row in self._read().tables["outbox"].items():
            if row["key"] == key:
                return mid
        return None


def _pending(row: Row) -> bool:
    return row["delivered_at"] is None and row["abandoned_at"] is None


def _message(row: Row) -> OutboxMessage:
    return OutboxMessage(
        id=row["id"],
        kind=row["kind"],
        channel=row["channel"],
        payload=json.loads(row["payload"]),
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"],
        attempts=row["attempts"],
        key=row["key"],
        last_error=row["last_error"],
        last_attempt_at=row["last_attempt_at"],
        delivered_at=row["delivered_at"],
        abandoned_at=row["abandoned_at"],
        response=json.loads(row["response"]) if row["response"] else None,
    )


# --- fleet lease, drift, freezes ----------------------------------------------------------------------------------


class MemoryFleetLock(_Repo):
    """The fleet-wide rollout lease (bot/store/fleet_lock.py): taken only when free or lapsed, not re-entrant."""

    def acquire(self, holder: str, now: datetime, ttl: timedelta) -> bool:
        meta, now = self._write().meta, _aware(now)
        if meta["lock_holder"] is not None and meta["lock_expires_at"] > now:
            return False
        meta.update(lock_holder=holder, lock_acquired_at=now, lock_expires_at=now + ttl)
        return True

    def renew(self, holder: str, now: datetime, ttl: timedelta) -> bool:
        meta = self._write().meta
        if meta["lock_holder"] != holder:
            return False
        meta["lock_expires_at"] = _aware(now) + ttl
        return True

    def release(self, holder: str) -> bool:
        meta = self._write().meta
        if meta["lock_holder"] != holder:
            return False
        meta.update(lock_holder=None, lock_acquired_at=None, lock_expires_at=None)
        return True

    def holder(self, now: datetime) -> str | None:
        meta = self._read().meta
        if meta["lock_holder"] is None or meta["lock_expires_at"] is None or meta["lock_expires_at"] <= _aware(now):
            return None
        return str(meta["lock_holder"])


class MemoryDrift(_Repo):
    """At most one open drift episode per model (bot/store/drift.py)."""

    def open_episodes(self) -> dict[str, Episode]:
        return {m: Episode(m, r["since"], json.loads(r["replicas"])) for m, r in self._read().drift.items()}

    def open(self, model: str, at: datetime, replicas: Mapping[str, Sequence[str]]) -> bool:
        data = self._write()
        if model in data.drift:
            return False
        data.drift[model] = {"since": _utc(at), "checked_at": _utc(at), "replicas": _replicas_json(replicas)}
        return True

    def update(self, model: str, at: datetime, replicas: Mapping[str, Sequence[str]]) -> None:
        row = self._write().drift.get(model)
        if row is not None:
            row.update(checked_at=_utc(at), replicas=_replicas_json(replicas))

    def close(self, model: str) -> bool:
        return self._write().drift.pop(model, None) is not None


def _replicas_json(replicas: Mapping[str, Sequence[str]]) -> str:
    return json.dumps({r: list(v) for r, v in sorted(replicas.items())}, sort_keys=True)


class MemoryFreezes(_Repo):
    """Ad-hoc freezes by model ("*" for all); the newest in force speaks (bot/store/freezes.py)."""

    def add(self, model: str, reason: str, actor: str, at: datetime, until: datetime | None) -> int:
        row = {"model": model, "reason": reason, "actor": actor, "created_at": _utc(at), "until": _utc(until)}
        return self._write().insert("freezes", {**row, "lifted_at": None, "lifted_by": None})

    def active(self, model: str, now: datetime) -> Freeze | None:
        rows = self._read().tables["freezes"]
        for fid in sorted(rows, reverse=True):
            row = rows[fid]
            if row["model"] in {model, ALL_MODELS} and _in_force(row, _aware(now)):
                return Freeze(
                    model, str(row["reason"]), actor=str(row["actor"]), since=row["created_at"], until=row["until"]
                )
        return None

    def lift(self, model: str, actor: str, now: datetime) -> int:
        rows, now = self._write().tables["freezes"], _aware(now)
        lifted = [row for row in rows.values() if row["model"] == model and _in_force(row, now)]
        for row in lifted:
            row.update(lifted_at=now, lifted_by=actor)
        return len(lifted)


def _in_force(row: Row, now: datetime) -> bool:
    return row["lifted_at"] is None and (row["until"] is None or row["until"] > now)


# --- alerts -------------------------------------------------------------------------------------------------------


class MemoryAlerts(_Repo):
    """One row per firing, resolved once, auto-rollback decided once (bot/store/alerts.py)."""

    def record(self, notice: AlertNotice, at: datetime, auto: AutoState | None) -> tuple[StoredAlert, str]:
        data, at = self._write(), _aware(at)
        existing = self._find(notice)
        if existing is None:
            resolved = notice.status == RESOLVED
            since = _utc(notice.firing_since) or at
            values: Row = {
                "source": notice.source,
                "fingerprint": notice.fingerprint,
                "starts_key": notice.starts_key,
                "model": notice.model,
                "alertname": notice.alertname,
                "status": RESOLVED if resolved else FIRING,
                "summary": notice.summary,
                "link": notice.link,
                "firing_since": min(since, at),
                "first_seen": at,
                "last_seen": at,
                "notifications": 1,
                "resolved_at": at if resolved else None,
                "post_channel": None,
                "post_ts": None,
                "auto_state": None if resolved or auto is None else auto.value,
                "auto_reason": "",
                "auto_request_id": None,
                "auto_at": None,
            }
            stored = self.get(data.insert("alerts", values))
            assert stored is not None
            return stored, NEW
        row = data.tables["alerts"][existing.id]
        resolving = notice.status == RESOLVED and existing.firing
        done = not resolving or row["status"] == FIRING
        if done:
            row.update(last_seen=at, notifications=row["notifications"] + 1)
            if resolving:
                row.update(status=RESOLVED, resolved_at=at)
                if row["auto_state"] == AutoState.PENDING.value:
                    row["auto_state"] = AutoState.SKIPPED.value
        stored = self.get(existing.id)
        assert stored is not None
        return stored, RESOLVED_NOW if resolving and done else REPEAT

    def get(self, alert_id: int) -> StoredAlert | None:
        row = self._read().tables["alerts"].get(alert_id)
        return None if row is None else _alert(row)

    def set_post(self, alert_id: int, channel: str, ts: str) -> None:
        row = self._write().tables["alerts"].get(alert_id)
        if row is not None:
            row.update(post_channel=channel, post_ts=ts)

    def pending_auto(self, limit: int = 100) -> list[StoredAlert]:
        rows = self._read().tables["alerts"]
        found = [
            _alert(rows[a])
            for a in sorted(rows)
            if rows[a]["auto_state"] == AutoState.PENDING.value and rows[a]["status"] == FIRING
        ]
        return found[:limit]

    def firing_unposted(self, limit: int = 100) -> list[StoredAlert]:
        rows = self._read().tables["alerts"]
        found = [_alert(rows[a]) for a in sorted(rows) if rows[a]["status"] == FIRING and rows[a]["post_ts"] is None]
        return found[:limit]

    def decide_auto(
        self, alert_id: int, state: AutoState, at: datetime, *, reason: str = "", request_id: int | None = None
    ) -> bool:
        row = self._write().tables["alerts"].get(alert_id)
        if row is None or row["auto_state"] != AutoState.PENDING.value:
            return False
        row.update(auto_state=state.value, auto_reason=reason, auto_request_id=request_id, auto_at=_utc(at))
        return True

    def acted_unexecuted(self, created_before: datetime) -> list[int]:
        data, before = self._read(), _aware(created_before)
        requests = data.tables["requests"]
        found = set()
        for alert in data.tables["alerts"].values():
            req = requests.get(alert["auto_request_id"]) if alert["auto_request_id"] is not None else None
            if (
                alert["auto_state"] == AutoState.ACTED.value
                and req is not None
                and req["state"] == RequestState.APPROVED.value
                and req["created_at"] <= before
            ):
                found.add(int(req["id"]))
        return sorted(found)

    def acted_since(self, model: str, since: datetime) -> int:
        since = _aware(since)
        return sum(
            1
            for a in self._read().tables["alerts"].values()
            if a["model"] == model
            and a["auto_state"] == AutoState.ACTED.value
            and a["auto_at"] is not None
            and a["auto_at"] >= since
        )

    def last_change_at(self, model: str) -> datetime | None:
        moments = [
            op["finished_at"] or op["started_at"]
            for op in self._read().tables["operations"].values()
            if op["model"] == model
        ]
        return max(moments, default=None)

    def stable_timeline(self, model: str, label: str) -> list[StableChange]:
        data = self._read()
        requests = data.tables["requests"]
        rows = []
        for op in data.tables["operations"].values():
            req = requests.get(op["request_id"]) if op["request_id"] is not None else None
            if (
                req is not None
                and req["model"] == model
                and req["label"] == label
                and op["finished_at"] is not None
                and op["outcome"] in CHANGED_OUTCOMES
            ):
                rows.append((op["finished_at"], req["from_version"], req["to_version"], req["action"]))
        rows.sort(key=lambda r: r[0])
        adopted_at = self.bootstrap_at()
        timeline = []
        if rows and adopted_at is not None and rows[0][1] is not None:
            timeline.append(StableChange(adopted_at, int(rows[0][1])))
        timeline += [StableChange(finished, int(to), action == "rollback") for finished, _, to, action in rows]
        return timeline

    def bootstrap_at(self) -> datetime | None:
        """When the bot adopted the fleet (its first bootstrap audit row)."""
        found = [r["row"][1] for r in self._read().tables["audit"].values() if r["action"] == "bootstrap"]
        return min(found, default=None)

    def _find(self, notice: AlertNotice) -> StoredAlert | None:
        for row in self._read().tables["alerts"].values():
            if (row["source"], row["fingerprint"], row["starts_key"]) == (
                notice.source,
                notice.fingerprint,
                notice.starts_key,
            ):
                return _alert(row)
        return None


def _alert(row: Row) -> StoredAlert:
    notice = AlertNotice(
        source=row["source"],
        fingerprint=row["fingerprint"],
        starts_key=row["starts_key"],
        status=row["status"],
        model=row["model"],
        alertname=row["alertname"],
        summary=row["summary"],
        link=row["link"],
        firing_since=row["firing_since"],
    )
    return StoredAlert(
        id=row["id"],
        notice=notice,
        firing_since=row["firing_since"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        notifications=row["notifications"],
        status=row["status"],
        resolved_at=row["resolved_at"],
        post=(row["post_channel"], row["post_ts"]) if row["post_channel"] and row["post_ts"] else None,
        auto_state=AutoState(row["auto_state"]) if row["auto_state"] else None,
        auto_reason=row["auto_reason"],
        auto_request_id=row["auto_request_id"],
        auto_at=row["auto_at"],
    )


if TYPE_CHECKING:  # mypy checks here that the in-memory store fits the ports
    from bot.usecases.ports import Store, UnitOfWork

    _STORE: Store = MemoryStore()
    _UOW: UnitOfWork = MemoryUnitOfWork(MemoryStore())
