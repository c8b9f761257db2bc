"""The whole bot running on loopback for e2e tests: `Server` (cheroot) + fake Slack Web API + a fleet.

`start_stack(...)` wires real settings, the demo policy, a real database and either a devstack fleet of
emulator replicas over mTLS (`dev=`) or the in-memory FakeFleet; `Stack` holds everything a test asserts on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.core.audit import AuditEntry
from bot.core.change_request import ChangeRequest
from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.core.ports import Fleet
from bot.devstack.certs import DevCerts
from bot.devstack.fleet import DevFleet
from bot.frontends.server import Server
from bot.frontends.slack.app import SlackEnv
from bot.serving.config_proto import write_model_config_file
from bot.settings import Settings, parse_settings
from bot.wiring import Bot, build_bot
from tests.devstack_support import wait_until
from tests.e2e.fake_slack import Call, FakeSlack
from tests.e2e.slack_driver import SlackDriver, http
from tests.fakes import FakeCatalog, FakeFleet
from tests.service_harness import demo_policy

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ALERT_TOKEN = "alert-t0ken"
ALICE, BOB, CAROL, DAVE = "U01ALICE", "U02BOB", "U03CAROL", "U04DAVE"
USERS = (ALICE, BOB, CAROL, DAVE)
OPS, AUDIT, INCIDENT, FRAUD_INCIDENT = "C0OPS", "C0AUDIT", "C0INCIDENT", "C0FRAUDINC"
MODEL = "fraud_detector"
ROLLBACK = 'rollback fraud_detector 2 --reason "INC-481 false positives"'
FAST_OUTBOX = {"poll_s": 0.05, "backoff_s": 0.05, "max_backoff_s": 0.5}


def settings_for(tmp_path: Path, base_path: str, targets: tuple[str, ...], certs: DevCerts | None) -> Settings:
    tls: dict[str, Any] = {"ca_cert": str(tmp_path / "ca.pem")}
    if certs is not None:
        tls = {
            "ca_cert": str(certs.ca),
            "client_cert": str(certs.bot_cert),
            "client_key": str(certs.bot_key),
            "server_name": "tf-serving",
        }
    raw = {
        "slack": {"audit_channel": AUDIT, "incident_channel": INCIDENT},
        "serving": {
            "targets": list(targets),
            "tls": tls,
            "model_config_file": str(tmp_path / "models.config"),
            "rpc_timeout_s": 5,
            "converge_timeout_s": 30,
            "status_poll_interval_s": 0.02,
        },
        "models": {
            MODEL: {"base_path": base_path, "routing": "labels", "keep_warm": 1, "incident_channel": FRAUD_INCIDENT}
        },
    }
    return parse_settings(raw, tmp_path / "modelbot.yaml")


@dataclass
class Stack:
    fake: FakeSlack
    server: Server
    bot: Bot
    driver: SlackDriver
    dev: DevFleet | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def get(self, path: str) -> Any:
        return http(self.url + path)

    def request(self, request_id: int) -> ChangeRequest:
        with self.bot.db.uow(readonly=True) as uow:
            found = uow.requests.get(request_id)
        assert found is not None
        return found

    def audit_rows(self) -> list[AuditEntry]:
        with self.bot.db.uow(readonly=True) as uow:
            return list(uow.audit.iter_all())

    def operations(self, request_id: int) -> list[dict[str, Any]]:
        with self.bot.db.uow(readonly=True) as uow:
            return uow.operations.for_request(request_id)

    def pending(self) -> int:
        with self.bot.db.uow(readonly=True) as uow:
            return uow.outbox.pending_count()

    def settled(self, timeout: float = 20.0) -> None:
        """Wait until no Slack work is running and the outbox is empty."""
        wait_until(lambda: self.server.slack.workers.pending == 0 and self.pending() == 0, timeout, "outbox drained")

    def card(self, channel: str = OPS, timeout: float = 10.0) -> Call:
        """The first approval card posted in `channel` (its ts is in .response)."""
        return self.fake.wait_for("chat.postMessage", 1, timeout, channel=channel)[0]

    def card_blocks(self, card: Call) -> list[dict[str, Any]]:
        return list(self.fake.messages[(card.response["channel"], card.response["ts"])]["blocks"])


def start_stack(
    tmp_path: Path,
    db_url: str,
    fake: FakeSlack,
    dev: DevFleet | None = None,
    certs: DevCerts | None = None,
    base_path: str = "/models/fraud_detector",
    initial: FleetConfig | None = None,
    **server_options: Any,
) -> Stack:
    """Start the bot (HTTP mode) against `fake`; with `dev` it drives that devstack fleet, else a FakeFleet."""
    for user in USERS:
        fake.add_user(user)
    fake.set_group("S0MLONCALL", [])
    server = start_server(tmp_path, db_url, fake.api_url, dev, certs, base_path, initial, **server_options)
    driver = SlackDriver(f"http://127.0.0.1:{server.port}/slack/events", SECRET, fake.response_url)
    return Stack(fake=fake, server=server, bot=server.bot, driver=driver, dev=dev)


def start_server(
    tmp_path: Path,
    db_url: str,
    api_url: str,
    dev: DevFleet | None = None,
    certs: DevCerts | None = None,
    base_path: str = "/models/fraud_detector",
    initial: FleetConfig | None = None,
    **server_options: Any,
) -> Server:
    """The bot as `modelbot serve` runs it, on 127.0.0.1 and a free port, using the Slack Web API at `api_url`."""
    targets = tuple(dev.targets) if dev else ("fake:1", "fake:2", "fake:3")
    settings = settings_for(tmp_path, base_path, targets, certs)
    configure = server_options.pop("configure", None)  # Settings -> Settings: a test's own model options
    if configure is not None:
        settings = configure(settings)
    initial = initial or FleetConfig(
        (ModelState(MODEL, base_path, policy=VersionPolicy.specific([2, 3]), labels=(("stable", 3),)),)
    )
    fleet: Fleet | None = None
    catalog = None
    if dev is None:
        fake_fleet = FakeFleet()
        fake_fleet.sent.append(initial)
        fleet, catalog = fake_fleet, FakeCatalog()
    assert settings.serving.model_config_file is not None
    write_model_config_file(settings.serving.model_config_file, initial)
    clock = {"clock": server_options.pop("clock")} if "clock" in server_options else {}
    bot = build_bot(settings, demo_policy(), db_url, fleet=fleet, catalog=catalog, **clock)
    env = SlackEnv(bot_token="xoxb-test", signing_secret=SECRET, app_token="", api_url=api_url)
    options = {"alert_token": ALERT_TOKEN, "outbox_options": FAST_OUTBOX, **server_options}
    server = Server(bot, env, host="127.0.0.1", port=0, **options)
    server.start()
    return server


def stop_stack(stack: Stack) -> None:
    stack.server.stop(drain_s=10)
    stack.bot.close()
