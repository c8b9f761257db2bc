"""`modelbot serve` as a real process against a real devstack fleet (mTLS, separate emulator processes), a fake
Slack Web API on loopback and a real database: what the fault suite kills, stops and cuts off.

`ServeStack.bots[i]` are `modelbot serve` processes sharing one database and one fleet (a second one for the
two-replica races); `view()` reads what every replica serves directly over gRPC, not through the bot.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bot.core.audit import AuditEntry
from bot.core.change_request import ChangeRequest
from bot.core.desired import FleetConfig
from bot.devstack.certs import DevCerts
from bot.devstack.fleet import DevFleet
from bot.devstack.smoke_files import write_golden_files
from bot.store import audit_export
from bot.store.database import Database
from tests.devstack_support import FAST_KNOBS, TfsStubs, config_text, model_entry, open_stubs, spec, wait_until
from tests.e2e.fake_slack import FakeSlack
from tests.e2e.slack_driver import SlackDriver, http
from tests.e2e.stack import ALICE, AUDIT, INCIDENT, SECRET, USERS

REPO = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"modelbot serving on 127\.0\.0\.1:(\d+)")
MODEL = "fraud_detector"
OTHER = "churn"  # a second model (a copy of the demo one) for rollouts that must not overlap across models


class BotProcess:
    """One `modelbot serve` process on a free loopback port, its log in a file."""

    def __init__(self, workdir: Path, env: dict[str, str], name: str) -> None:
        self.workdir, self.env, self.name = workdir, env, name
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.starts = 0

    def start(self) -> BotProcess:
        self.starts += 1
        with self.log.open("a") as err:
            err.write(f"--- start {self.starts}\n")
            err.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"],
                cwd=REPO,
                env=self.env,
                stderr=err,
                stdout=subprocess.DEVNULL,
                text=True,
            )
        self.port = self._await_port()
        return self

    def _await_port(self, timeout_s: float = 60) -> int:
        deadline = time.monotonic() + timeout_s
        marker = f"--- start {self.starts}\n"
        while time.monotonic() < deadline:
            text = self.log.read_text()
            found = LISTENING.search(text[text.rfind(marker) :])
            if found:
                return int(found.group(1))
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not start:\n" + self.log.read_text()[-4000:])

    def kill(self) -> None:
        """SIGKILL: the process vanishes mid-whatever, like an OOM-killed pod."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout_s: float = 90) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def driver(self, response_url: Any) -> SlackDriver:
        return SlackDriver(self.url + "/slack/events", SECRET, response_url)


@dataclass
class ServeStack:
    workdir: Path
    db_url: str
    fake: FakeSlack
    dev: DevFleet
    certs: DevCerts
    models_root: Path
    bots: list[BotProcess] = field(default_factory=list)
    _stubs: list[TfsStubs] = field(default_factory=list)
    _db: Database | None = None
    _closed: bool = False

    # --- the bot -------------------------------------------------------------------------------------------
    def say(self, text: str, user: str = ALICE, bot: int = 0, *, wait: bool = True, timeout: float = 30) -> str:
        """Send a signed slash command through bot process `bot`; with `wait`, return the bot's reply text
        (for a command that starts a rollout that is its end: use wait=False and wait_state instead)."""
        url = self.fake.response_url()  # a fresh hook URL per command: its replies cannot be confused with others'
        driver = self.bots[bot].driver(self.fake.response_url)
        result = driver.post(driver.slash_command_body(text, user, "C0OPS", response_url=url))
        assert result.status == 200, result.body
        if not wait:
            return ""
        path = urlsplit(url).path

        def replied() -> list[Any] | None:
            return [call for call in self.fake.calls_to("hooks") if call.path == path] or None

        hooks = wait_until(replied, timeout, f"a reply to {text!r}")
        return str(hooks[0].body.get("text", ""))

    def replies(self) -> list[str]:
        """Every text the bot sent to a response_url, oldest first (ephemeral and in-channel replies)."""
        return [str(call.body.get("text", "")) for call in self.fake.calls_to("hooks")]

    # --- the database --------------------------------------------------------------------------------------
    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.db_url)
        return self._db

    def request(self, request_id: int) -> ChangeRequest | None:
        with self.db.uow(readonly=True) as uow:
            return uow.requests.get(request_id)

    def wait_state(self, request_id: int, states: set[str], timeout: float = 120.0) -> ChangeRequest:
        def reached() -> ChangeRequest | None:
            req = self.request(request_id)
            return req if req is not None and req.state.value in states else None

        try:
            return wait_until(reached, timeout, f"R{request_id} in {sorted(states)}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; replies so far: {self.replies()}") from None

    def operations(self, request_id: int) -> list[dict[str, Any]]:
        with self.db.uow(readonly=True) as uow:
            return uow.operations.for_request(request_id)

    def audit(self, request_id: int | None = None) -> list[AuditEntry]:
        with self.db.uow(readonly=True) as uow:
            return uow.audit.for_request(request_id) if request_id is not None else list(uow.audit.iter_all())

    def audit_verifies(self) -> bool:
        return audit_export.verify(self.db).ok

    def desired(self) -> FleetConfig:
        with self.db.uow(readonly=True) as uow:
            return uow.desired.load() or FleetConfig()

    # --- the fleet, read directly ----------------------------------------------------------------------------
    def stubs(self) -> list[TfsStubs]:
        if not self._stubs:
            self._stubs = [open_stubs(t, self.certs, "bot", None, self.models_root) for t in self.dev.targets]
        return self._stubs

    def view(self, model: str = MODEL, label: str = "stable") -> list[int | str]:
        """What `label` resolves to on every replica (the version, or the gRPC error's code name)."""
        seen: list[int | str] = []
        for stubs in self.stubs():
            try:
                seen.append(stubs.metadata(spec(model, label=label)).model_spec.version.value)
            except Exception as exc:  # an error is an observation here
                code = getattr(exc, "code", None)
                seen.append(code().name if callable(code) else type(exc).__name__)
        return seen

    def dev_status(self, model: str = MODEL) -> list[dict[int, str]]:
        """GetModelStatus of `model` on every replica: {version: state name}."""
        return [stubs.status(model, missing_ok=True) for stubs in self.stubs()]

    def loaded(self, model: str = MODEL) -> list[set[int]]:
        return [
            {v for v, s in stubs.status(model, missing_ok=True).items() if s == "AVAILABLE"} for stubs in self.stubs()
        ]

    def consistent(self, model: str = MODEL, label: str = "stable") -> int | None:
        """The version every replica resolves `label` to, if they all agree and it equals the desired state."""
        seen = set(self.view(model, label))
        state = self.desired().model(model)
        if len(seen) == 1 and state is not None and state.label(label) in seen:
            return state.label(label)
        return None

    def close(self) -> None:
        """Stop everything; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        for bot in self.bots:
            bot.kill()
        for stubs in self._stubs:
            stubs.channel.close()
        if self._db is not None:
            self._db.dispose()
        self.dev.close()


def start_serve_stack(
    workdir: Path,
    db_url: str,
    fake: FakeSlack,
    certs: DevCerts,
    demo_models: Path,
    *,
    replicas: int = 3,
    bots: int = 1,
    load_seconds: float = 0.05,
    versions: tuple[int, ...] = (2, 3),
    stable: int = 3,
    second_model: bool = False,
    per_replica: dict[int, dict[str, object]] | None = None,
    converge_timeout_s: float = 120,
    drift_check_interval_s: float = 60,
    env: dict[str, str] | None = None,
    bot_db_url: str | None = None,
    smoke_timeout_s: float | None = None,
) -> ServeStack:
    """A fleet serving fraud_detector `versions` with `stable` (and churn likewise with `second_model`), and
    `bots` serve processes on one database. Loads take `load_seconds` on every replica. `bot_db_url`: the
    URL the serve processes use (e.g. through a tests/faults/tcp_proxy.py that a test cuts), while the test
    keeps reading the same database directly at `db_url`. `smoke_timeout_s`: fraud_detector gets the demo golden
    request as its smoke test (bot/devstack/smoke_files.py), each Predict with this deadline."""
    workdir.mkdir(parents=True)
    models_root = workdir / "models"
    shutil.copytree(demo_models, models_root / MODEL)
    entries = [model_entry(MODEL, versions=versions, labels={"stable": stable})]
    if second_model:
        shutil.copytree(demo_models, models_root / OTHER)
        entries.append(model_entry(OTHER, "{models_root}/" + OTHER, versions=versions, labels={"stable": stable}))
    knobs = {**FAST_KNOBS, "devstack_load_seconds": load_seconds, "allow_version_labels_for_unavailable_models": True}
    dev = DevFleet(
        replicas, models_root, certs, config_text(*entries), workdir=workdir / "fleet", per_replica=per_replica, **knobs
    )
    dev.start()
    for user in USERS:
        fake.add_user(user)
    fake.set_group("S0MLONCALL", [])
    models: dict[str, Any] = {MODEL: {"base_path": str(models_root / MODEL), "keep_warm": 1}}
    if smoke_timeout_s is not None:
        request, expect = write_golden_files(workdir / "smoke")
        golden = {"request": str(request), "expect": str(expect), "tolerance": 1e-4, "timeout_s": smoke_timeout_s}
        models[MODEL]["smoke_test"] = golden
    if second_model:
        models[OTHER] = {"base_path": str(models_root / OTHER), "keep_warm": 1}
    raw = {
        "slack": {"audit_channel": AUDIT, "incident_channel": INCIDENT},
        "serving": {
            "targets": dev.targets,
            "tls": {
                "ca_cert": str(certs.ca),
                "client_cert": str(certs.bot_cert),
                "client_key": str(certs.bot_key),
                "server_name": "tf-serving",
            },
            "model_config_file": str(dev.config_file),  # shared with the replicas, as in deploy/
            "rpc_timeout_s": 5,
            "converge_timeout_s": converge_timeout_s,
            "status_poll_interval_s": 0.05,
            "drift_check_interval_s": drift_check_interval_s,
        },
        "models": models,
    }
    config = workdir / "modelbot.yaml"
    config.write_text(yaml.safe_dump(raw))
    proc_env = {
        **os.environ,
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_APP_TOKEN": "",
        "SLACK_API_URL": fake.api_url,
        "MODELBOT_ALERT_TOKEN": "t",
        "MODELBOT_LOG_LEVEL": "INFO",
        "MODELBOT_DATABASE_URL": bot_db_url or db_url,
        "MODELBOT_CONFIG": str(config),
        "MODELBOT_PERMISSIONS": str(REPO / "permissions.yaml"),
        "NO_PROXY": "127.0.0.1,localhost",
        **(env or {}),
    }
    stack = ServeStack(workdir, db_url, fake, dev, certs, models_root)
    try:
        for i in range(bots):
            stack.bots.append(BotProcess(workdir, proc_env, f"serve-{i}").start())
    except BaseException:
        stack.close()
        raise
    return stack


def elapsed_since(start: float) -> float:
    return round(time.monotonic() - start, 1)


CLOSED = {"SUCCEEDED", "FAILED", "PARTIAL"}


def kill_and_restart(stack: ServeStack, what: str, request_id: int = 1) -> tuple[ChangeRequest, float]:
    """SIGKILL serve-0 at the moment the caller waited for, start it again and wait for the request to be closed
    (by the recovery); returns it and the seconds from the kill, also printed (`what`: where the kill landed)."""
    stack.bots[0].kill()
    killed = time.monotonic()
    stack.bots[0].start()
    closed = stack.wait_state(request_id, CLOSED, timeout=60)
    took = elapsed_since(killed)
    print(f"\nkill during {what} -> R{request_id} closed {closed.state.value} in {took}s after the kill")
    return closed, took


def recovered_detail(stack: ServeStack, request_id: int) -> dict[str, object]:
    """The detail of the request's one `recovered` audit row (what the recovery found and did per replica)."""
    rows = [e for e in stack.audit(request_id) if e.outcome == "recovered"]
    assert len(rows) == 1, [(e.action, e.outcome) for e in stack.audit(request_id)]
    return dict(rows[0].detail)


__all__ = [
    "CLOSED",
    "MODEL",
    "OTHER",
    "BotProcess",
    "ServeStack",
    "elapsed_since",
    "http",
    "kill_and_restart",
    "recovered_detail",
    "start_serve_stack",
]
