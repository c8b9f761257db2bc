"""Requests Slack did not sign (or signed too long ago) are refused before anything happens."""

from __future__ import annotations

import time

from tests.e2e.stack import ALICE, BOB, OPS, ROLLBACK, Stack

LOOKUPS = {"users.info", "usergroups.list", "usergroups.users.list"}


def test_forged_and_stale_requests_get_401_and_change_nothing(fake_stack: Stack) -> None:
    """A forged signature and a timestamp older than five minutes get 401: no audit row, no Web API call."""
    stack, driver = fake_stack, fake_stack.driver
    stack.settled()
    rows_before, calls_before = len(stack.audit_rows()), len(stack.fake.calls)

    command = driver.slash_command_body(ROLLBACK, ALICE)
    forged = driver.post(command, signature="v0=" + "0" * 64)
    stale = driver.post(command, timestamp=int(time.time()) - 301)
    click = driver.block_action_body("approve", "1", BOB, OPS, "1700000000.000001")
    forged_click = driver.post(click, signature="v0=" + "1" * 64)
    unsigned_alert = stack.get("/alerts")  # GET on a POST route: no way in without the token either

    assert [forged.status, stale.status, forged_click.status] == [401, 401, 401]
    assert unsigned_alert.status == 405
    # A signed command afterwards is answered: anything the refused ones had started would have shown by now.
    assert driver.slash_command("whoami", ALICE).status == 200
    hooks = stack.fake.wait_for("hooks", 1)
    stack.settled()
    assert "U01ALICE" in hooks[0].body["text"]
    new_calls = [c.method for c in stack.fake.calls[calls_before:] if c.method not in LOOKUPS]
    assert new_calls == ["hooks"], new_calls
    assert len(stack.audit_rows()) == rows_before


def test_signed_request_from_five_minutes_ago_is_still_accepted(fake_stack: Stack) -> None:
    """The replay window is Slack's 300 s: a request signed 290 s ago is answered (so the 401 above is the window)."""
    reply = fake_stack.driver.slash_command("whoami", ALICE, timestamp=int(time.time()) - 290)
    assert reply.status == 200
    assert "U01ALICE" in fake_stack.fake.wait_for("hooks", 1)[0].body["text"]


def test_deactivated_and_bot_accounts_cannot_act(fake_stack: Stack) -> None:
    """users.info decides: a deactivated account is refused outright, a bot account may not approve."""
    stack, fake = fake_stack, fake_stack.fake
    fake.add_user("U05GONE", deleted=True)
    fake.add_user("U06BOT", is_bot=True)
    assert stack.driver.slash_command("whoami", "U05GONE").status == 200
    assert "Deactivated" in fake.wait_for("hooks", 1)[0].body["text"]
    assert stack.driver.slash_command(ROLLBACK, ALICE).status == 200
    ts = stack.card(OPS).response["ts"]
    assert stack.driver.click("approve", "1", "U06BOT", OPS, ts).status == 200
    refusal = fake.wait_for("chat.postEphemeral", 1, user="U06BOT")[0].body["text"]
    assert "bot" in refusal.lower(), refusal
    assert stack.request(1).state.value == "PENDING"
