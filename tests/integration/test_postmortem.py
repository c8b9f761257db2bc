"""Postmortem evidence: `modelbot audit export --request R1` and `/model explain R1` tell one request's story."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.core.audit import AuditEntry
from bot.core.postmortem import RequestStory
from bot.texts import postmortem
from bot.usecases.postmortem import load_story
from tests.service_harness import ALICE, BOB, Harness, make_harness

REPO = Path(__file__).resolve().parents[2]
SECTIONS = (
    "## Summary",
    "## Plan",
    "## Pre-flight and signature",
    "## Timeline (UTC)",
    "## Rollout per replica",
    "## Hash-chain proof",
)


def modelbot(*args: str, db_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=REPO,
        env={**os.environ, "MODELBOT_DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def story_db(tmp_path: Path, db_url: str) -> Iterator[Harness]:
    """A database where R1 was requested, approved and rolled out to every replica (R2 is another request)."""
    h = make_harness(tmp_path, db_url)
    h.say(ALICE, 'rollback fraud_detector 2 --reason "INC-9 false positives"')
    h.clock.advance(minutes=3)
    assert h.say(BOB, "approve R1").ok
    h.clock.advance(minutes=5)
    h.say(ALICE, 'promote fraud_detector 3 --reason "fixed"')  # rows of another request must stay out of R1's story
    yield h
    h.bot.close()


def _audit_rows(h: Harness, request_id: int) -> list[AuditEntry]:
    with h.bot.service.deps.db.uow(readonly=True) as uow:
        return [e for e in uow.audit.iter_all() if e.request_id == request_id]


def _story(h: Harness) -> RequestStory:
    return load_story(h.bot.service.deps.db, 1, h.bot.policy)


def test_story_rows_are_exactly_the_requests_audit_rows(story_db: Harness) -> None:
    """The story's timeline is every audit row of R1 and no other, with the same seq, hash, actor, action, outcome."""
    story = _story(story_db)
    key = [(e.seq, e.hash, e.actor, e.action, e.outcome) for e in story.rows]
    assert key == [(e.seq, e.hash, e.actor, e.action, e.outcome) for e in _audit_rows(story_db, 1)]
    assert [(e.action, e.outcome) for e in story.rows] == [
        ("rollback", "requested"),
        ("approve", "approved"),
        ("execute", "executing"),
        ("execute", "succeeded"),
    ]


def test_markdown_has_every_section_and_the_facts(story_db: Harness) -> None:
    """The markdown names requester, approver with roles, reason, plan, signature, replicas, each row and its hash."""
    story = _story(story_db)
    text = postmortem.markdown(story)
    for section in SECTIONS:
        assert section in text
    assert "U01ALICE (approver, operator, viewer)" in text
    assert "U02BOB (approver, viewer) at 2026-11-27 12:03:00 UTC" in text
    assert "INC-9 false positives" in text and story.request.dry_run_plan in text
    assert "signature compatible" in text
    for replica in ("r1", "r2", "r3"):
        assert f"`{replica}`: ok at verify, serving v2" in text
    for entry in story.rows:
        assert f"| #{entry.seq} |" in text and entry.hash in text
    assert "Whole chain: verified" in text and story.head[1] in text


def test_json_round_trips_the_same_facts(story_db: Harness) -> None:
    """The JSON parses, and its timeline rebuilds the very audit entries; approvers, outcome and proof agree."""
    story = _story(story_db)
    data = json.loads(postmortem.as_json(story))
    assert [AuditEntry.from_dict(row) for row in data["timeline"]] == list(story.rows)
    assert data["request"] == "R1" and data["state"] == "SUCCEEDED" and data["reason"] == "INC-9 false positives"
    assert data["approvers"] == [
        {"user": BOB, "at": "2026-11-27T12:03:00.000000+00:00", "roles": ["approver", "viewer"]}
    ]
    assert data["requester"]["user"] == ALICE
    assert [r["replica"] for r in data["operations"][0]["replicas"]] == ["r1", "r2", "r3"]
    assert data["operations"][0]["outcome"] == "SUCCEEDED"
    assert data["chain"]["verified"] is True and data["chain"]["head_seq"] == story.head[0]
    assert [r["seq"] for r in data["chain"]["rows"]] == [e.seq for e in story.rows]


def test_chain_proof_links_and_verifies(story_db: Harness) -> None:
    """The proof's rows each chain to the row before them in the trail, and the whole chain verifies to the head."""
    story = _story(story_db)
    with story_db.bot.service.deps.db.uow(readonly=True) as uow:
        by_seq = {e.seq: e for e in uow.audit.iter_all()}
        head = uow.audit.head()
    assert _audit_rows(story_db, 2)  # the other request's rows are in the chain too
    assert story.rows[0].seq > 1
    assert all(entry.prev_hash == by_seq[entry.seq - 1].hash for entry in story.rows)
    assert story.chain.ok and story.chain.checked == len(by_seq) and story.head == head


def test_tampered_row_shows_in_the_story(story_db: Harness) -> None:
    """After someone edits one of R1's rows, the story says the chain is broken at that row."""
    seq = _story(story_db).rows[1].seq
    with story_db.bot.service.deps.db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_log SET actor = 'U666MALLORY' WHERE seq = :s"), {"s": seq})
    story = _story(story_db)
    assert not story.chain.ok and story.chain.first_bad_seq == seq
    assert f"BROKEN at row #{seq}" in postmortem.markdown(story)
    assert f"Audit chain verified: NO, broken at row #{seq}" in postmortem.explain(story)


def test_cli_exports_markdown_and_json(story_db: Harness, db_url: str) -> None:
    """The real CLI prints the markdown story by default and parseable JSON with --format json."""
    md = modelbot("audit", "export", "--request", "R1", db_url=db_url)
    assert md.returncode == 0, md.stderr
    assert all(section in md.stdout for section in SECTIONS)
    js = modelbot("audit", "export", "--request", "r1", "--format", "json", db_url=db_url)
    assert js.returncode == 0, js.stderr
    assert json.loads(js.stdout)["timeline"] == [e.to_dict() for e in _story(story_db).rows]


def test_cli_unknown_request_exits_1(story_db: Harness, db_url: str) -> None:
    """An unknown request id is a clear one-line error and exit 1, without a traceback."""
    result = modelbot("audit", "export", "--request", "R99", db_url=db_url)
    assert result.returncode == 1
    assert "R99 does not exist" in result.stderr and "Traceback" not in result.stderr
    bad = modelbot("audit", "export", "--request", "R1", "--format", "csv", db_url=db_url)
    assert bad.returncode == 1 and "--format markdown|json" in bad.stderr


def test_explain_through_the_service(story_db: Harness) -> None:
    """`/model explain R1` gives the short story: who asked and why, who approved, one line per replica, verified."""
    reply = story_db.say(BOB, "explain R1")
    assert reply.ok, reply.text
    lines = reply.text.splitlines()
    assert lines[0].startswith("R1: U01ALICE asked to rollback fraud_detector v3 -> v2")
    assert "INC-9 false positives" in lines[0]
    assert "Approved by: U02BOB (approver, viewer)" in reply.text
    assert [line.strip() for line in lines if line.startswith("  r")] == [
        f"{r}: ok at verify, serving v2" for r in ("r1", "r2", "r3")
    ]
    assert "Outcome: SUCCEEDED" in reply.text and "Audit chain verified: yes" in reply.text


def test_explain_unknown_request_and_permission(story_db: Harness) -> None:
    """An unknown id gets a friendly error, and someone without `history` is denied."""
    missing = story_db.say(BOB, "explain R42")
    assert not missing.ok and "R42 does not exist" in missing.text
    denied = story_db.say("U09NOBODY", "explain R1")
    assert not denied.ok and "Denied" in denied.text
