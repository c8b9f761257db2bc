"""Reject with a reason, and `/model rollback` without `--reason`, go through modals."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from tests.devstack_support import wait_until
from tests.e2e.stack import ALICE, BOB, MODEL, OPS, ROLLBACK, Stack


def _inputs(view: dict[str, object]) -> dict[str, object]:
    blocks = view["blocks"]
    assert isinstance(blocks, list)
    return {b["block_id"]: b["element"].get("initial_value") for b in blocks}


def test_reject_asks_for_a_reason_and_updates_the_card(fake_stack: Stack) -> None:
    """bob's Reject opens a modal with his click's trigger_id; his reason ends up on the card, buttons gone."""
    stack, driver = fake_stack, fake_stack.driver
    assert driver.slash_command(ROLLBACK, ALICE).status == 200
    ts = stack.card(OPS).response["ts"]
    click = driver.block_action_body("reject", "1", BOB, OPS, ts)
    trigger = json.loads(parse_qs(click)["payload"][0])["trigger_id"]
    assert driver.post(click).status == 200
    opened = stack.fake.wait_for("views.open", 1)[0].body
    assert opened["trigger_id"] == trigger
    view = opened["view"]
    assert view["callback_id"] == "reject_reason" and list(_inputs(view)) == ["reason"]

    empty = driver.submit_view("reject_reason", BOB, {"reason": "  "}, view["private_metadata"])
    assert empty.status == 200 and empty.json()["response_action"] == "errors"
    done = driver.submit_view("reject_reason", BOB, {"reason": "not during the freeze"}, view["private_metadata"])
    assert done.status == 200 and done.body == ""
    wait_until(lambda: stack.request(1).state.value == "REJECTED", 10, "the rejection")
    stack.settled()
    card = stack.fake.messages[(OPS, ts)]
    text = json.dumps(card["blocks"])
    assert "Rejected" in text and "not during the freeze" in text and "<@U02BOB>" in text
    assert all(b["type"] != "actions" for b in card["blocks"])


def test_rollback_without_reason_opens_a_prefilled_modal(fake_stack: Stack) -> None:
    """`/model rollback fraud_detector 2` opens a modal with model and version filled in; submitting it requests."""
    stack, driver = fake_stack, fake_stack.driver
    ack = driver.slash_command(f"rollback {MODEL} 2", ALICE)
    assert ack.status == 200 and ack.body == ""
    view = stack.fake.wait_for("views.open", 1)[0].body["view"]
    assert view["callback_id"] == "rollback_reason"
    assert _inputs(view) == {"model": MODEL, "version": "2", "reason": None}

    bad = driver.submit_view(
        "rollback_reason", ALICE, {"model": MODEL, "version": "two", "reason": "x"}, view["private_metadata"]
    )
    assert bad.status == 200 and "version" in bad.json()["errors"]
    values = {"model": MODEL, "version": "2", "reason": 'INC-481 "false" positives'}
    assert driver.submit_view("rollback_reason", ALICE, values, view["private_metadata"]).status == 200
    card = stack.card(OPS)
    assert "R1" in card.body["text"]
    assert stack.request(1).reason == 'INC-481 "false" positives' and stack.request(1).requester == ALICE
    assert "R1" in stack.fake.wait_for("hooks", 1)[0].body["text"]  # answered on the command's response_url
