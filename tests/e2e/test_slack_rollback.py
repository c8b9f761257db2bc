"""The Slack story end to end: a signed `/model rollback`, the card, refused clicks, the approval, the fleet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.devstack_support import spec, wait_until
from tests.e2e.stack import (
    ALICE,
    AUDIT,
    BOB,
    CAROL,
    FRAUD_INCIDENT,
    MODEL,
    OPS,
    ROLLBACK,
    Stack,
)


def _texts(blocks: list[dict[str, Any]]) -> str:
    """All text of a message's blocks, for assertions on what the card says."""
    parts: list[str] = []
    for block in blocks:
        for key in ("text",):
            if isinstance(block.get(key), dict):
                parts.append(block[key]["text"])
        parts += [f["text"] for f in block.get("fields", [])]
        parts += [e.get("text", "") for e in block.get("elements", []) if isinstance(e.get("text"), str)]
    return "\n".join(parts)


def test_rollback_through_slack_reaches_every_replica(devstack_stack: Callable[..., Stack], tfs: Any) -> None:
    """alice's signed rollback posts a card; her and carol's clicks are refused; bob's click rolls the fleet to v2."""
    stack = devstack_stack(loaded=(3,), devstack_load_seconds=1.0)  # a cold rollback: v2 must load first
    fake, driver = stack.fake, stack.driver

    ack = driver.slash_command(ROLLBACK, ALICE)
    assert ack.status == 200 and ack.elapsed < 3, ack
    assert ack.json()["response_type"] == "ephemeral"

    card = stack.card(OPS)
    ts = card.response["ts"]
    buttons = stack.card_blocks(card)[-1]
    assert buttons["type"] == "actions"
    assert [(e["action_id"], e["value"]) for e in buttons["elements"]] == [("approve", "1"), ("reject", "1")]
    assert "INC-481 false positives" in _texts(stack.card_blocks(card))
    assert "R1" in fake.wait_for("hooks")[0].body["text"]

    assert driver.click("approve", "1", ALICE, OPS, ts).status == 200
    own = fake.wait_for("chat.postEphemeral", user=ALICE)[0].body
    assert own["channel"] == OPS and ("two-person" in own["text"] or "Denied" in own["text"]), own["text"]

    assert driver.click("approve", "1", CAROL, OPS, ts).status == 200
    carol = fake.wait_for("chat.postEphemeral", user=CAROL)[0].body["text"]
    assert "U02BOB" in carol, carol  # the refusal names who can approve
    assert stack.request(1).state.value == "PENDING"

    assert driver.click("approve", "1", BOB, OPS, ts).status == 200
    wait_until(lambda: stack.request(1).state.value == "SUCCEEDED", 60, "the rollout")
    stack.settled()

    updates = [_texts(c.body["blocks"]) for c in fake.calls_to("chat.update", channel=OPS, ts=ts)]
    assert any("Rolling out" in text for text in updates), "the card never showed the running rollout"
    assert any("Progress" in text for text in updates), "the card never showed live per-replica progress"
    final = fake.messages[(OPS, ts)]["blocks"]
    assert "SUCCEEDED" in _texts(final) and all(b["type"] != "actions" for b in final)

    for target in stack.dev.targets if stack.dev else ():
        served = tfs(target).metadata(spec(MODEL, label="stable")).model_spec.version.value
        assert served == 2, f"{target} serves v{served} as stable"

    rows = stack.audit_rows()
    posts = [c.body["text"] for c in fake.calls_to("chat.postMessage", channel=AUDIT)]
    assert [p.split()[0] for p in posts] == [f"#{r.seq}" for r in rows]
    incidents = fake.calls_to("chat.postMessage", channel=FRAUD_INCIDENT)
    assert len(incidents) == 1 and "SUCCEEDED" in incidents[0].body["text"]
