"""The approval card's content, gathered for front ends that render one (Slack Block Kit)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.core.change_request import ChangeRequest
from bot.core.errors import NotFound
from bot.usecases.approval_routing import approvers
from bot.usecases.context import Deps


@dataclass(frozen=True)
class CardView:
    request: ChangeRequest
    from_meta: Mapping[str, Any] = field(default_factory=dict)
    to_meta: Mapping[str, Any] = field(default_factory=dict)
    approvers: tuple[str, ...] = ()  # who may approve (roles and members), for the "needs" line
    replicas: tuple[Mapping[str, Any], ...] = ()  # per-replica outcome once executed
    message: str = ""  # the operation's summary once executed


def card_view(deps: Deps, request_id: int) -> CardView:
    with deps.db.uow(readonly=True) as uow:
        req = uow.requests.get(request_id)
        if req is None:
            raise NotFound(f"R{request_id} does not exist")
        registry = uow.registry.for_model(req.model)
        operations = uow.operations.for_request(request_id)
    base_path = deps.settings.models[req.model].base_path if req.model in deps.settings.models else ""

    def meta(version: int | None) -> dict[str, Any]:
        if version is None or not base_path:
            return {}
        return version_metadata(deps.catalog.metadata(base_path, version), registry.get(version))

    last = operations[-1] if operations else {}
    return CardView(
        request=req,
        from_meta=meta(req.from_version),
        to_meta=meta(req.to_version),
        approvers=approvers(deps, req),
        replicas=tuple(last.get("replicas", ())),
        message=str(last.get("message", "")),
    )


def version_metadata(disk: Mapping[str, Any], entry: Mapping[str, Any] | None) -> dict[str, Any]:
    """One view of a version's metadata: metadata.json beside saved_model.pb, overridden by `modelbot register`.

    Returns {"metrics": {...}, "note": str, "at": when registered or exported, "registered_by": actor or ""}.
    """
    metrics: dict[str, Any] = {}
    disk_metrics = disk.get("metrics")
    if isinstance(disk_metrics, Mapping):
        metrics.update(disk_metrics)
    entry = entry or {}
    entry_metrics = entry.get("metrics")
    if isinstance(entry_metrics, Mapping):
        metrics.update(entry_metrics)
    return {
        "metrics": metrics,
        "note": str(entry.get("note") or disk.get("note") or ""),
        "at": entry.get("at") or disk.get("exported_at") or disk.get("created_at") or "",
        "registered_by": str(entry.get("actor") or ""),
    }
