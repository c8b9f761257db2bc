"""Import time and RSS: the bot's serving path vs. tensorflow_serving.apis, each in a fresh interpreter.

Runs alternate between the two sides and medians are reported, so machine noise lands on both.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import Any

PROBE = """
import json, sys, time
t0 = time.perf_counter()
for name in sys.argv[1:]:
    __import__(name)
elapsed = time.perf_counter() - t0
rss_kb = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmRSS:")))
tf = any(m == "tensorflow" or m.startswith("tensorflow.") for m in sys.modules)
print(json.dumps({"import_s": elapsed, "rss_mb": rss_kb / 1024, "tensorflow_loaded": tf}))
"""

SIDES = {
    "bot serving path": ["bot.serving.fleet", "bot.serving.discovery", "bot.serving.config_proto"],
    "tensorflow_serving.apis": [
        "tensorflow_serving.apis.model_service_pb2_grpc",
        "tensorflow_serving.apis.prediction_service_pb2_grpc",
    ],
}


def _probe(modules: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *modules], capture_output=True, text=True, timeout=300, check=False
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run(repeats: int = 5) -> list[dict[str, Any]]:
    samples: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    for i in range(repeats):
        order = list(SIDES) if i % 2 == 0 else list(reversed(SIDES))
        for side in order:
            samples[side].append(_probe(SIDES[side]))
    rows = []
    for side, runs in samples.items():
        ok = [r for r in runs if "error" not in r]
        if not ok:
            rows.append({"side": side, "error": runs[0].get("error", "failed")})
            continue
        rows.append(
            {
                "side": side,
                "import_ms": round(statistics.median(r["import_s"] for r in ok) * 1000, 1),
                "rss_mb": round(statistics.median(r["rss_mb"] for r in ok), 1),
                "tensorflow_loaded": any(r["tensorflow_loaded"] for r in ok),
                "runs": len(ok),
            }
        )
    return rows
