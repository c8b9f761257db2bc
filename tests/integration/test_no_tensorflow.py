"""The bot talks to TF Serving without TensorFlow: its own protos, no tensorflow import, a small footprint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bot.devstack.certs import DevCerts
from tests.devstack_support import MODEL, config_text, model_entry

ROOT = Path(__file__).resolve().parents[2]
RSS_LIMIT_MB = 200  # the bot's serving path measured about 60 MB; TensorFlow alone is several hundred

SCRIPT = """
import json, sys, time
args = json.loads(sys.argv[1])
import bot.wiring, bot.cli  # the wiring and front-end entry points, as `modelbot serve` imports them
from pathlib import Path
from bot.core.desired import FleetConfig, ModelState, VersionPolicy
from bot.core.rollout import ChangeSpec, plan_rollout
from bot.serving.fleet import GrpcFleet
from bot.settings import ServingSettings, TlsSettings

tls = TlsSettings(Path(args["ca"]), Path(args["cert"]), Path(args["key"]), "tf-serving")
fleet = GrpcFleet(ServingSettings(targets=tuple(args["targets"]), tls=tls, converge_timeout_s=20))
state = ModelState(name=args["model"], base_path=args["base_path"], policy=VersionPolicy.specific([2, 3]))
base = FleetConfig(models=(state,))
outcome = fleet.rollout(plan_rollout(state, ChangeSpec(args["model"], 1)), base, lambda c: None, lambda e: None)
fleet.close()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_serving", "keras"))
status = open("/proc/self/status").read().splitlines()
rss_kb = int(next(l.split()[1] for l in status if l.startswith("VmRSS:")))
# VmHWM, not ru_maxrss: getrusage counts the parent's size before fork+exec (a big pytest process), VmHWM is
# this program's own high-water mark.
peak_kb = int(next(l.split()[1] for l in status if l.startswith("VmHWM:")))
print(json.dumps({"outcome": outcome.outcome.value, "message": outcome.message, "tensorflow_modules": loaded,
                  "rss_mb": rss_kb / 1024, "peak_rss_mb": peak_kb / 1024}))
"""


def test_rollout_without_tensorflow(fleet: Any, devstack_certs: DevCerts, demo_models: Path) -> None:
    """A fresh process imports the bot, rolls a 2-replica fleet back, and never imports tensorflow."""
    dev = fleet(config_text(model_entry(versions=[2, 3])), 2)
    args = {
        "targets": dev.targets,
        "ca": str(devstack_certs.ca),
        "cert": str(devstack_certs.bot_cert),
        "key": str(devstack_certs.bot_key),
        "model": MODEL,
        "base_path": str(demo_models),
    }
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\nbot process after a rollout: RSS {report['rss_mb']:.1f} MB (peak {report['peak_rss_mb']:.1f} MB)")
    assert report["outcome"] == "SUCCEEDED", report["message"]
    assert report["tensorflow_modules"] == []
    assert report["peak_rss_mb"] < RSS_LIMIT_MB
