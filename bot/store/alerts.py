"""Alert firings: recorded once per (source, fingerprint, start), resolved in place, decided once for
`auto_rollback` (a compare-and-set on `auto_state`), plus the facts an automatic rollback is judged on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy import exc as sa_exc

from bot.core.alerts import FIRING, NEW, REPEAT, RESOLVED, RESOLVED_NOW, AlertNotice, AutoState, StoredAlert
from bot.core.auto_rollback import StableChange
from bot.core.change_request import RequestState
from bot.store.tables import alerts, audit_log, operations, requests
from bot.store.tx import Tx

CHANGED_STATES = (RequestState.SUCCEEDED.value, RequestState.PARTIAL.value)


class AlertRepository:
    """Alert rows; every method works inside the caller's transaction."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def record(self, notice: AlertNotice, at: datetime, auto: AutoState | None) -> tuple[StoredAlert, str]:
        """Store one notification: NEW (a firing, or a resolution, not seen before; `auto` is its auto-rollback
        state), RESOLVED_NOW (a known firing resolved) or REPEAT (nothing new). Two replicas recording the same
        notification at once: one inserts, the other sees REPEAT."""
        existing = self._find(notice)
        if existing is None:
            values = _insert_values(notice, at, auto)
            try:
                with self._tx.savepoint():
                    alert_id = self._tx.insert_id(insert(alerts), values)
            except sa_exc.IntegrityError:
                existing = self._find(notice)
                if existing is None:
                    raise
            else:
                stored = self.get(alert_id)
                assert stored is not None
                return stored, NEW
        return self._again(existing, notice, at)

    def _again(self, existing: StoredAlert, notice: AlertNotice, at: datetime) -> tuple[StoredAlert, str]:
        values: dict[str, Any] = {"last_seen": at, "notifications": alerts.c.notifications + 1}
        resolving = notice.status == RESOLVED and existing.firing
        if resolving:
            values |= {"status": RESOLVED, "resolved_at": at}
            if existing.auto_state is AutoState.PENDING:
                values["auto_state"] = AutoState.SKIPPED.value
        statement = update(alerts).where(alerts.c.id == existing.id)
        if resolving:  # only one replica resolves it (and posts the update)
            statement = statement.where(alerts.c.status == FIRING)
        done = self._tx.execute(statement.values(**values)).rowcount == 1
        stored = self.get(existing.id)
        assert stored is not None
        return stored, RESOLVED_NOW if resolving and done else REPEAT

    def get(self, alert_id: int) -> StoredAlert | None:
        """One alert, or None."""
        row = self._tx.execute(select(alerts).where(alerts.c.id == alert_id)).first()
        return None if row is None else _alert(row)

    def set_post(self, alert_id: int, channel: str, ts: str) -> None:
        """Remember where the incident post went, so later changes update it in place."""
        self._tx.execute(update(alerts).where(alerts.c.id == alert_id).values(post_channel=channel, post_ts=ts))

    def pending_auto(self, limit: int = 100) -> list[StoredAlert]:
        """Firing alerts whose auto-rollback is still to be decided, oldest first."""
        statement = (
            select(alerts)
            .where(alerts.c.auto_state == AutoState.PENDING.value, alerts.c.status == FIRING)
            .order_by(alerts.c.id)
            .limit(limit)
        )
        return [_alert(row) for row in self._tx.execute(statement)]

    def firing_unposted(self, limit: int = 100) -> list[StoredAlert]:
        """Firing alerts whose incident post never landed (the bot was not in the channel), oldest first."""
        unposted = select(alerts).where(alerts.c.status == FIRING, alerts.c.post_ts.is_(None))
        return [_alert(row) for row in self._tx.execute(unposted.order_by(alerts.c.id).limit(limit))]

    def decide_auto(
        self, alert_id: int, state: AutoState, at: datetime, *, reason: str = "", request_id: int | None = None
    ) -> bool:
        """Compare-and-set PENDING -> `state`; False when someone (another replica) decided first."""
        statement = (
            update(alerts)
            .where(alerts.c.id == alert_id, alerts.c.auto_state == AutoState.PENDING.value)
            .values(auto_state=state.value, auto_reason=reason, auto_request_id=request_id, auto_at=at)
        )
        return self._tx.execute(statement).rowcount == 1

    def acted_unexecuted(self, created_before: datetime) -> list[int]:
        """Requests an automatic rollback opened that are still APPROVED (their process died before running them)."""
        statement = (
            select(requests.c.id)
            .join(alerts, alerts.c.auto_request_id == requests.c.id)
            .where(alerts.c.auto_state == AutoState.ACTED.value, requests.c.state == RequestState.APPROVED.value)
            .where(requests.c.created_at <= created_before)
            .order_by(requests.c.id)
        )
        return [int(row.id) for row in self._tx.execute(statement)]

    def acted_since(self, model: str, since: datetime) -> int:
        """Automatic rollbacks of `model` decided at or after `since`."""
        statement = (
            select(func.count())
            .select_from(alerts)
            .where(alerts.c.model == model, alerts.c.auto_state == AutoState.ACTED.value, alerts.c.auto_at >= since)
        )
        return int(self._tx.execute(statement).scalar_one())

    def last_change_at(self, model: str) -> datetime | None:
        """When `model` last changed on the fleet: the newest rollout's end (its start while it runs)."""
        moment = func.coalesce(operations.c.finished_at, operations.c.started_at)
        found: datetime | None = self._tx.execute(
            select(func.max(moment)).where(operations.c.model == model)
        ).scalar_one()
        return found

    def stable_timeline(self, model: str, label: str) -> list[StableChange]:
        """The bot's record of which version held `label` since when, oldest first: the version adopted at bootstrap
        (the first change's from-version), then every rollout that moved the label (succeeded or partial), each
        marked when it was a rollback."""
        rows = self._tx.execute(
            select(operations.c.finished_at, requests.c.from_version, requests.c.to_version, requests.c.action)
            .join(requests, requests.c.id == operations.c.request_id)
            .where(requests.c.model == model, requests.c.label == label, operations.c.finished_at.is_not(None))
            .where(operations.c.outcome.in_(CHANGED_STATES))
            .order_by(operations.c.finished_at)
        ).all()
        adopted_at = self.bootstrap_at()
        timeline = []
        if rows and adopted_at is not None and rows[0].from_version is not None:
            timeline.append(StableChange(adopted_at, int(rows[0].from_version)))
        timeline += [StableChange(row.finished_at, int(row.to_version), row.action == "rollback") for row in rows]
        return timeline

    def bootstrap_at(self) -> datetime | None:
        """When the bot adopted the fleet (its first bootstrap audit row)."""
        found: datetime | None = self._tx.execute(
            select(func.min(audit_log.c.at)).where(audit_log.c.action == "bootstrap")
        ).scalar_one()
        return found

    def _find(self, notice: AlertNotice) -> StoredAlert | None:
        row = self._tx.execute(
            select(alerts).where(
                alerts.c.source == notice.source,
                alerts.c.fingerprint == notice.fingerprint,
                alerts.c.starts_key == notice.starts_key,
            )
        ).first()
        return None if row is None else _alert(row)


def _insert_values(notice: AlertNotice, at: datetime, auto: AutoState | None) -> dict[str, Any]:
    resolved = notice.status == RESOLVED
    return {
        "source": notice.source,
        "fingerprint": notice.fingerprint,
        "starts_key": notice.starts_key,
        "model": notice.model,
        "alertname": notice.alertname,
        "status": RESOLVED if resolved else FIRING,
        "summary": notice.summary,
        "link": notice.link,
        "firing_since": min(notice.firing_since or at, at),  # a start in the future (clock skew) counts from now
        "first_seen": at,
        "last_seen": at,
        "notifications": 1,
        "resolved_at": at if resolved else None,
        "auto_state": None if resolved or auto is None else auto.value,
        "auto_reason": "",
    }


def _alert(row: Row[Any]) -> StoredAlert:
    notice = AlertNotice(
        source=row.source,
        fingerprint=row.fingerprint,
        starts_key=row.starts_key,
        status=row.status,
        model=row.model,
        alertname=row.alertname,
        summary=row.summary,
        link=row.link,
        firing_since=row.firing_since,
    )
    return StoredAlert(
        id=row.id,
        notice=notice,
        firing_since=row.firing_since,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        notifications=row.notifications,
        status=row.status,
        resolved_at=row.resolved_at,
        post=(row.post_channel, row.post_ts) if row.post_channel and row.post_ts else None,
        auto_state=AutoState(row.auto_state) if row.auto_state else None,
        auto_reason=row.auto_reason,
        auto_request_id=row.auto_request_id,
        auto_at=row.auto_at,
    )
