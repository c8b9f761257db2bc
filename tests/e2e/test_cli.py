"""The `modelbot` command line as a user runs it: separate processes, real files, exit codes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from bot.devstack.certs import DevCerts
from tests.service_harness import ALICE, BOB, make_harness

REPO = Path(__file__).resolve().parents[2]


def modelbot(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _db_with_history(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    h = make_harness(tmp_path, url)
    h.say(ALICE, 'rollback fraud_detector 2 --reason "INC-9"')
    h.say(BOB, "approve R1")
    h.bot.close()
    return url


def test_audit_verify_passes_then_names_the_tampered_row(tmp_path: Path) -> None:
    """`audit verify` exits 0 on an intact chain and 1, naming the row, after someone edits a row in the database."""
    url = _db_with_history(tmp_path)
    ok = modelbot("audit", "verify", env={"MODELBOT_DATABASE_URL": url})
    assert ok.returncode == 0 and "OK" in ok.stdout, ok.stderr
    with sqlite3.connect(tmp_path / "bot.db") as conn:
        conn.execute("UPDATE audit_log SET actor = 'U666MALLORY' WHERE seq = 3")
    broken = modelbot("audit", "verify", env={"MODELBOT_DATABASE_URL": url})
    assert broken.returncode == 1
    assert "#3" in broken.stderr


def test_audit_verify_detects_a_deleted_row(tmp_path: Path) -> None:
    """Deleting a row from the middle of the chain is caught."""
    url = _db_with_history(tmp_path)
    with sqlite3.connect(tmp_path / "bot.db") as conn:
        conn.execute("DELETE FROM audit_log WHERE seq = 2")
    broken = modelbot("audit", "verify", env={"MODELBOT_DATABASE_URL": url})
    assert broken.returncode == 1 and "BROKEN" in broken.stderr


def test_audit_export_jsonl_and_csv(tmp_path: Path) -> None:
    """`audit export` writes one JSON object per row, or a CSV with a header and the same rows."""
    url = _db_with_history(tmp_path)
    jsonl = modelbot("audit", "export", "--format", "jsonl", env={"MODELBOT_DATABASE_URL": url})
    rows = [line for line in jsonl.stdout.splitlines() if line.strip()]
    assert jsonl.returncode == 0 and len(rows) >= 5 and rows[0].startswith("{")
    out = tmp_path / "audit.csv"
    csv_run = modelbot("audit", "export", "--format", "csv", "--output", str(out), env={"MODELBOT_DATABASE_URL": url})
    assert csv_run.returncode == 0
    assert len(out.read_text().strip().splitlines()) == len(rows) + 1


def test_check_config_lists_every_problem(tmp_path: Path) -> None:
    """A broken modelbot.yaml and permissions.yaml give exit 1 and one line per problem, no traceback."""
    (tmp_path / "modelbot.yaml").write_text(
        "serving:\n  targets: []\nmodels:\n  m:\n    routing: sideways\n    keep_warm: -1\n"
    )
    (tmp_path / "permissions.yaml").write_text("roles:\n  viewer: [lisst]\nmembers:\n  alice: [viewer]\n")
    result = modelbot("check-config", cwd=tmp_path)
    assert result.returncode == 1
    for needle in ("targets", "ca_cert", "base_path", "routing", "keep_warm", "lisst", "alice"):
        assert needle in result.stderr, (needle, result.stderr)
    assert "Traceback" not in result.stderr


def test_check_config_rejects_bad_yaml(tmp_path: Path) -> None:
    """Unparsable YAML is reported with the file name, not a stack trace."""
    (tmp_path / "modelbot.yaml").write_text("serving: [unclosed\n")
    (tmp_path / "permissions.yaml").write_text("roles: {}\n")
    result = modelbot("check-config", cwd=tmp_path)
    assert result.returncode == 1 and "modelbot.yaml" in result.stderr and "Traceback" not in result.stderr


def test_register_then_versions_shows_the_metrics(tmp_path: Path) -> None:
    """`modelbot register` (no fleet credentials needed) records metrics that `/model versions` then shows."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    env = {"MODELBOT_DATABASE_URL": url, "MODELBOT_CONFIG": str(REPO / "modelbot.yaml")}
    reg = modelbot("register", "fraud_detector", "2", "--metric", "auc=0.917", "--note", "retrained", env=env)
    assert reg.returncode == 0, reg.stderr
    bad = modelbot("register", "fraud_detector", "2", "--metric", "auc", env=env)
    assert bad.returncode == 1 and "KEY=VALUE" in bad.stderr
    unknown = modelbot("register", "fraud_detectr", "2", env=env)
    assert unknown.returncode == 1 and "unknown model" in unknown.stderr
    h = make_harness(tmp_path, url)
    versions = h.say(BOB, "versions fraud_detector").text
    h.bot.close()
    assert "0.917" in versions and "retrained" in versions, versions
    assert modelbot("audit", "verify", env=env).returncode == 0


def _config_with_certs(tmp_path: Path, certs: DevCerts) -> Path:
    """The demo modelbot.yaml, pointing at certificates that exist (a fresh clone has no .devstack/)."""
    config = yaml.safe_load((REPO / "modelbot.yaml").read_text())
    config["serving"]["tls"].update(
        ca_cert=str(certs.ca), client_cert=str(certs.bot_cert), client_key=str(certs.bot_key)
    )
    path = tmp_path / "modelbot.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_console_refuses_to_start_without_fleet_certificates(tmp_path: Path) -> None:
    """Missing client certificates are a clear configuration error naming the file, not a traceback."""
    config = yaml.safe_load((REPO / "modelbot.yaml").read_text())
    config["serving"]["tls"]["ca_cert"] = str(tmp_path / "nowhere" / "ca.pem")
    (tmp_path / "modelbot.yaml").write_text(yaml.safe_dump(config))
    env = {
        "MODELBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "MODELBOT_CONFIG": str(tmp_path / "modelbot.yaml"),
    }
    result = modelbot("console", env=env)
    assert result.returncode == 1 and "ca.pem" in result.stderr and "Traceback" not in result.stderr


def test_console_reads_commands_from_a_pipe(tmp_path: Path, devstack_certs: DevCerts) -> None:
    """`modelbot console` answers each piped line on stdout; a bad command gets usage, not a traceback."""
    url = _db_with_history(tmp_path)
    env = {"MODELBOT_DATABASE_URL": url, "MODELBOT_CONFIG": str(_config_with_certs(tmp_path, devstack_certs))}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--as", "U02BOB"],
        input="/model history\n/model frobnicate\n",
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "execute" in result.stdout
    assert "frobnicate" in result.stdout and "Traceback" not in result.stdout + result.stderr
