"""Requests nobody decides expire on their own, and their card says so."""

from __future__ import annotations

import json
from pathlib import Path

from tests.devstack_support import wait_until
from tests.e2e.fake_slack import FakeSlack
from tests.e2e.stack import ALICE, OPS, ROLLBACK, start_stack, stop_stack
from tests.service_harness import Clock


def test_unanswered_request_expires_and_its_card_loses_the_buttons(
    tmp_path: Path, db_url: str, fake_slack: FakeSlack
) -> None:
    """Past the approval TTL the sweep marks the request EXPIRED and the card drops its buttons, untouched by users."""
    clock = Clock()
    stack = start_stack(tmp_path, db_url, fake_slack, clock=clock, expiry_every_s=0.05)
    try:
        assert stack.driver.slash_command(ROLLBACK, ALICE).status == 200
        ts = stack.card(OPS).response["ts"]
        assert stack.request(1).state.value == "PENDING"
        clock.advance(minutes=31)  # permissions.yaml: approval_ttl 30m
        wait_until(lambda: stack.request(1).state.value == "EXPIRED", 10, "the expiry sweep")
        stack.settled()
        card = stack.fake.messages[(OPS, ts)]
        assert "Expired" in json.dumps(card["blocks"]) and all(b["type"] != "actions" for b in card["blocks"])
        assert [r.outcome for r in stack.audit_rows() if r.action == "expire"] == ["expired"]
    finally:
        stop_stack(stack)
