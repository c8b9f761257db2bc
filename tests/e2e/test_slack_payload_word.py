"""Issue 9 item 4: a slash command whose text contains the word `payload` is a slash command.

bolt's own body parser calls any body containing "payload" an interaction, so such a command reached no
listener and Slack got 404 `unhandled request`; the guard classifies on the parsed form instead.
"""

from __future__ import annotations

import json

from tests.e2e.stack import ALICE, MODEL, OPS, Stack


def test_command_mentioning_payload_is_answered_and_runs(fake_stack: Stack) -> None:
    """`/model rollback fraud_detector 2 --reason "payload schema changed"` is acked 200 and posts its card."""
    stack = fake_stack
    ack = stack.driver.slash_command(f'rollback {MODEL} 2 --reason "payload schema changed"', ALICE)
    assert ack.status == 200, ack
    card = stack.card(OPS)
    assert "payload schema changed" in json.dumps(stack.card_blocks(card))
    assert stack.request(1).reason == "payload schema changed"


def test_command_naming_a_payload_model_gets_the_services_answer(fake_stack: Stack) -> None:
    """`/model rollback payload_scorer 1 --reason "x"` is acked 200 and answered by the service, not 404."""
    stack = fake_stack
    ack = stack.driver.slash_command('rollback payload_scorer 1 --reason "x"', ALICE)
    assert ack.status == 200, ack
    reply = stack.fake.wait_for("hooks", 1)[0].body["text"]
    assert "payload_scorer" in reply, reply
