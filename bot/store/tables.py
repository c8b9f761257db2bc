"""SQLAlchemy Core tables. The schema itself is created by Alembic (bot/store/migrations); a test
checks that the migrations and these definitions agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# Ids, version numbers, generations and sequence numbers: 64-bit, like TF Serving's int64 versions
# (timestamp-named version directories such as 20240101120000 do not fit 32 bits). BIGINT on
# PostgreSQL; SQLite's INTEGER already holds 64 bits, and keeping that name there keeps an
# autoincrement key the rowid, so SQLite files needed no table rebuild (migration 0002).
Int64 = BigInteger().with_variant(Integer, "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out. SQLite has no time zones, so values are stored as naive UTC
    there and UTC is re-attached on the way out; naive values are refused on the way in."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the store only accepts timezone-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


requests = Table(
    "requests",
    metadata,
    Column("id", Int64, primary_key=True, autoincrement=True),
    Column("action", String(32), nullable=False),
    Column("model", String(200), nullable=False),
    # The model name while the request is open (PENDING/APPROVED/EXECUTING), NULL otherwise:
    # its unique index is what allows at most one open request per model.
    Column("open_model", String(200), nullable=True, unique=True),
    Column("from_version", Int64, nullable=True),
    Column("to_version", Int64, nullable=False),
    Column("label", String(100), nullable=False),
    Column("reason", Text, nullable=False),
    Column("requester", String(100), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
    Column("required_approvals", Integer, nullable=False),
    Column("approver_roles", Text, nullable=False),  # JSON list
    Column("digest", String(64), nullable=False),
    Column("model_generation", Int64, nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("emergency", Boolean, nullable=False),
    Column("dry_run_plan", Text, nullable=False),
    Column("decided_by", String(100), nullable=True),
    Column("decision_reason", Text, nullable=False),
    Column("version", Integer, nullable=False),  # compare-and-set counter
    Column("extra", Text, nullable=False),  # JSON object
    Column("card_channel", String(100), nullable=True),
    Column("card_ts", String(64), nullable=True),
    sqlite_autoincrement=True,  # never reuse a request id
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Int64, primary_key=True, autoincrement=True),
    Column("request_id", Int64, ForeignKey("requests.id"), nullable=False),
    Column("user_id", String(100), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    UniqueConstraint("request_id", "user_id", name="uq_approvals_request_user"),
)

desired_models = Table(
    "desired_models",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("generation", Int64, nullable=False),
    Column("state", Text, nullable=False),  # ModelState.to_dict() as JSON
)

# A single row (id=1, inserted by the migration); revision 0 means "never bootstrapped", which is
# not the same as a bootstrapped fleet that serves no model. Savers lock it.
desired_meta = Table(
    "desired_meta",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", Int64, nullable=False),  # bumped by every save
)

registry = Table(
    "registry",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("version", Int64, primary_key=True, autoincrement=False),
    Column("metrics", Text, nullable=False),  # JSON object
    Column("note", Text, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)

operations = Table(
    "operations",
    metadata,
    Column("id", Int64, primary_key=True, autoincrement=True),
    Column("request_id", Int64, ForeignKey("requests.id"), nullable=True, index=True),
    Column("model", String(200), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True, index=True),  # NULL: running, or left by a dead process
    Column("outcome", String(16), nullable=True),
    Column("message", Text, nullable=True),
    Column("phases_run", Text, nullable=True),  # JSON list
    Column("elapsed_s", Float, nullable=True),
    Column("holder", String(200), nullable=True),  # the fleet-lock holder that ran it (recovery names it)
    Column("before_state", Text, nullable=True),  # JSON ModelState (or null) before it started: what recovery restores
    sqlite_autoincrement=True,
)

operation_replicas = Table(
    "operation_replicas",
    metadata,
    Column("id", Int64, primary_key=True, autoincrement=True),
    Column("operation_id", Int64, ForeignKey("operations.id"), nullable=False, index=True),
    Column("replica", String(300), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("phase", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("served_version", Int64, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Int64, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(64), nullable=False),
    Column("outcome", String(64), nullable=False),
    Column("request_id", Int64, nullable=True, index=True),  # no FK: denials may name unknown ids
    Column("model", String(200), nullable=True, index=True),
    Column("detail", Text, nullable=False),  # canonical JSON, exactly as hashed
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# A single row (id=1) holding the newest seq and hash; appenders lock it, so the chain cannot fork.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Int64, nullable=False),
    Column("hash", String(64), nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Int64, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("channel", String(100), nullable=False, index=True),
    Column("payload", Text, nullable=False),  # JSON object
    Column("key", String(200), nullable=True, unique=True),  # idempotency key
    Column("created_at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_attempt_at", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("claimed_by", String(200), nullable=True),
    Column("claimed_until", UtcDateTime, nullable=True),
    Column("delivered_at", UtcDateTime, nullable=True),
    Column("abandoned_at", UtcDateTime, nullable=True),
    Column("response", Text, nullable=True),  # JSON object
    sqlite_autoincrement=True,
)

# One row per model whose replicas differ from the desired state right now (an open drift episode): the row is
# what makes "posted once per episode" hold across checks and across bot replicas.
drift_episodes = Table(
    "drift_episodes",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("since", UtcDateTime, nullable=False),
    Column("checked_at", UtcDateTime, nullable=False),
    Column("replicas", Text, nullable=False),  # JSON {replica: [what differs, ...]}
)

# Ad-hoc freezes (`/model freeze`): active while not lifted and not past `until`; model "*" freezes every model.
freezes = Table(
    "freezes",
    metadata,
    Column("id", Int64, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False, index=True),
    Column("reason", Text, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("until", UtcDateTime, nullable=True),
    Column("lifted_at", UtcDateTime, nullable=True),
    Column("lifted_by", String(100), nullable=True),
    sqlite_autoincrement=True,
)

# One row per alert firing (source, fingerprint, start): repeated notifications only count on it; it holds the
# incident post's location (updated in place when the alert resolves) and the auto-rollback decision, whose
# compare-and-set on auto_state makes one bot replica act.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Int64, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),
    Column("fingerprint", String(200), nullable=False),
    Column("starts_key", String(64), nullable=False),
    Column("model", String(200), nullable=False, index=True),
    Column("alertname", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("summary", Text, nullable=False),
    Column("link", Text, nullable=False),
    Column("firing_since", UtcDateTime, nullable=False),
    Column("first_seen", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),
    Column("notifications", Integer, nullable=False),
    Column("resolved_at", UtcDateTime, nullable=True),
    Column("post_channel", String(100), nullable=True),
    Column("post_ts", String(64), nullable=True),
    Column("auto_state", String(16), nullable=True, index=True),
    Column("auto_reason", Text, nullable=False),
    Column("auto_request_id", Int64, nullable=True),
    Column("auto_at", UtcDateTime, nullable=True),
    UniqueConstraint("source", "fingerprint", "starts_key", name="uq_alerts_firing"),
    sqlite_autoincrement=True,
)

fleet_lock = Table(
    "fleet_lock",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(200), nullable=True),
    Column("acquired_at", UtcDateTime, nullable=True),
    Column("expires_at", UtcDateTime, nullable=True),
)

FLEET_LOCK_NAME = "fleet"
AUDIT_HEAD_ID = 1
