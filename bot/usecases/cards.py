"""The approval card's content, gathered for front ends that render one (Slack Block Kit)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.core.approvals import ChangeRequest
from bot.core.errors import NotFound
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
        found: dict[str, Any] = dict(deps.catalog.metadata(base_path, version))
        found.update(registry.get(version, {}))
        return found

    last = operations[-1] if operations else {}
    return CardView(
        request=req,
        from_meta=meta(req.from_version),
        to_meta=meta(req.to_version),
        approvers=deps.policy.who_can("approve"),
        replicas=tuple(last.get("replicas", ())),
        message=str(last.get("message", "")),
    )
