"""Drift detection under `serve`: a replica restarted without the shared model_config_file is reported once
within one check interval, with a Re-sync button; one click brings it back, verified and audited."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.devstack_support import config_text, model_entry, wait_until
from tests.e2e.stack import ALICE, BOB, INCIDENT
from tests.faults.serve_harness import MODEL, ServeStack, http

INTERVAL_S = 2.0


def test_a_replica_restarted_without_the_config_file_is_reported_and_resynced(
    serve_stack: Callable[..., ServeStack], db_url: str
) -> None:
    """Replica 2 comes back serving only the newest version without labels: one drift post names it (not
    repeated on later checks), /metrics shows it, and one Re-sync click (by an operator) restores it."""
    stack = serve_stack(db_url, versions=(2, 3), drift_check_interval_s=INTERVAL_S)
    stack.dev.restart(2, config_text=config_text(model_entry(MODEL, versions=[3])))
    assert stack.view()[2] != 3  # no `stable` label there any more
    posts = wait_until(
        lambda: stack.fake.calls_to("chat.postMessage", channel=INCIDENT) or None, INTERVAL_S * 4 + 10, "drift post"
    )
    notice = posts[0].body
    assert "DRIFT" in str(notice["text"]) and "127.0.0.1" in str(notice["text"]) and "stable" in str(notice["text"])
    metrics = http(stack.bots[0].url + "/metrics").body
    assert "modelbot_models_drifted 1" in metrics and f'modelbot_replica_drift{{model="{MODEL}"' in metrics
    time.sleep(INTERVAL_S * 2 + 1)  # two more checks: the episode is still open, so nothing is posted again
    assert len([p for p in stack.fake.calls_to("chat.postMessage", channel=INCIDENT) if "DRIFT" in str(p.body)]) == 1
    button = next(b for b in notice["blocks"] if b["type"] == "actions")["elements"][0]
    driver = stack.bots[0].driver(stack.fake.response_url)
    assert driver.click(button["action_id"], button["value"], BOB, INCIDENT, "1.0").status == 200  # approver only
    refusal = wait_until(lambda: stack.fake.calls_to("chat.postEphemeral") or None, 10, "the refusal")
    assert "rollback" in str(refusal[0].body["text"]) and stack.view()[2] != 3
    assert driver.click(button["action_id"], button["value"], ALICE, INCIDENT, "1.0").status == 200
    wait_until(lambda: stack.view() == [3, 3, 3] or None, 30, "the replica re-synced")
    assert stack.consistent() == 3
    rows = wait_until(lambda: [e for e in stack.audit() if e.action == "resync" and e.outcome != "started"] or None)
    assert rows[0].outcome == "succeeded" and rows[0].actor == ALICE
    assert next(e.outcome for e in stack.audit() if e.action == "drift") == "detected"
    assert stack.audit_verifies()
