"""`modelbot demo`: a local TF Serving fleet (emulated) over mTLS, demo models, SQLite, and the console."""

from __future__ import annotations

import socket
import sys
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.devstack.certs import make_certs
from bot.devstack.fleet import DevFleet
from bot.devstack.savedmodels import ensure_demo_models
from bot.devstack.smoke_files import write_golden_files
from bot.frontends.console import Console, interactive_lines
from bot.serving.config_proto import to_text, write_model_config_file
from bot.settings import ModelSettings, Settings, SmokeTest, load_settings
from bot.store import audit_export
from bot.wiring import build_bot

DEMO_STABLE = 3


def run_demo(script: Path | None = None, replicas: int = 3, story: bool = True) -> int:
    settings = load_settings()
    devstack = settings.serving.tls.ca_cert.parent.parent
    say(f"modelbot demo: preparing {devstack}/ (certificates, demo models, {replicas}-replica fleet) ...")
    make_certs(settings.serving.tls.ca_cert.parent)
    model = settings.models["fraud_detector"]
    ensure_demo_models(Path(model.base_path).parent)
    settings, model = _with_smoke_test(settings, devstack)
    initial = FleetConfig(
        (
            ModelState(
                name=model.name,
                base_path=model.base_path,
                policy=VersionPolicy.specific([DEMO_STABLE]),
                labels=((model.label, DEMO_STABLE),),
            ),
        )
    )
    if settings.serving.model_config_file:
        write_model_config_file(settings.serving.model_config_file, initial)
    db_path = devstack / "demo.db"
    db_path.unlink(missing_ok=True)
    ports = _ports(settings, replicas)
    with DevFleet(
        replicas,
        Path(model.base_path).parent,
        make_certs(settings.serving.tls.ca_cert.parent),
        to_text(initial),
        ports=ports,
        allow_version_labels_for_unavailable_models=True,
        workdir=_fleet_dir(settings),
        file_system_poll_wait_seconds=0.5,
        devstack_load_seconds=1.5,
        devstack_manage_interval_seconds=0.1,
    ) as fleet:
        settings = replace(settings, serving=replace(settings.serving, targets=tuple(fleet.targets)))
        say(f"fleet up: {', '.join(fleet.targets)} (mTLS, client certificate required); database {db_path}")
        bot = build_bot(settings, db_url=f"sqlite:///{db_path}")
        try:
            console = Console(bot.service, "U01ALICE", extra={"audit": lambda args: _audit(bot)})
            # Refusals are part of the story (self-approval, no role), so failed commands do not fail the demo.
            if script is not None:
                console.run(script.read_text().splitlines(), echo=True)
                return 0
            if story:
                console.run(files("bot.devstack").joinpath("demo_story.txt").read_text().splitlines(), echo=True)
            if sys.stdin.isatty():
                say("\nYour turn. Try /model help, :as U02BOB, :click approve R2, :quit")
                console.run(interactive_lines())
            return 0
        finally:
            bot.close()


def _with_smoke_test(settings: Settings, devstack: Path) -> tuple[Settings, ModelSettings]:
    """Golden files for the demo model (expected scores from the emulator's formula); used as its smoke_test
    unless modelbot.yaml configures one."""
    request, expect = write_golden_files(devstack / "smoke")
    model = settings.models["fraud_detector"]
    smoke = model.smoke_test or SmokeTest(request, expect)
    if model.smoke_test is None:
        model = replace(model, smoke_test=smoke)
        settings = replace(settings, models={**settings.models, model.name: model})
    say(f"smoke test: every rollout sends {smoke.request.name} to the target and expects {smoke.expect}")
    return settings, model


def _fleet_dir(settings: Settings) -> Path:
    """The replicas read the model_config_file the bot writes, as a real deployment should."""
    mcf = settings.serving.model_config_file
    directory = (
        mcf.parent
        if mcf is not None and mcf.name == "models.config"
        else settings.serving.tls.ca_cert.parent.parent / "serving"
    )
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _audit(bot: object) -> str:
    result = audit_export.verify(bot.db)  # type: ignore[attr-defined]
    if result.ok:
        return f"audit verify: OK, {result.checked} rows, hash chain intact"
    return f"audit verify: BROKEN at #{result.first_bad_seq}: {result.problem}"


def _ports(settings: Settings, replicas: int) -> list[int]:
    """The ports modelbot.yaml names when they are free, else free ones (the demo then says which)."""
    wanted = [int(t.rsplit(":", 1)[1]) for t in settings.serving.targets if ":" in t][:replicas]
    if len(wanted) == replicas and all(_free(p) for p in wanted):
        return wanted
    return [_free_port() for _ in range(replicas)]


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def say(text: str) -> None:
    print(text, flush=True)
