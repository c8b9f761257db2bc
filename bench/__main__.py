"""`python -m bench`: every benchmark, a table on stdout, and bench/results.json."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from bench import (
    audit_verify,
    endpoint_abuse,
    footprint,
    list_scale,
    rollout_latency,
    service_overhead,
    slack_ack,
    smoke_latency,
)

RESULTS = Path(__file__).resolve().parent / "results.json"
GOAL_FLOOR_RATIO_AT_10 = 1.3
GOAL_SCALING_50_VS_1 = 1.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--replicas", default="1,10,50", help="comma-separated replica counts (default 1,10,50)")
    parser.add_argument("--warm-runs", type=int, default=30)
    parser.add_argument("--cold-runs", type=int, default=7)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.replicas.split(",") if n]
    # The ack benchmark runs first, on a quiet machine: after the 50-replica rollouts, dozens of exiting
    # emulator processes would still be competing for the 2 cores.
    ack = slack_ack.run(log=lambda s: print(s, file=sys.stderr))
    observability = slack_ack.run_overhead(log=lambda s: print(s, file=sys.stderr))
    abuse = endpoint_abuse.run(log=lambda s: print(s, file=sys.stderr))  # also wants a quiet machine (peak RSS)
    rows = rollout_latency.run(counts, args.warm_runs, args.cold_runs, log=lambda s: print(s, file=sys.stderr))
    smoke = smoke_latency.run(args.warm_runs, log=lambda s: print(s, file=sys.stderr))
    smoke_1000 = smoke_latency.run(10, log=lambda s: print(s, file=sys.stderr), others=999)
    footprint_rows = footprint.run()
    service = service_overhead.run()
    listing = list_scale.run()
    audit = audit_verify.run(log=lambda s: print(s, file=sys.stderr))
    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "emulator_knobs": rollout_latency.KNOBS,
        "status_poll_interval_s": rollout_latency.POLL_S,
        "rollout": rows,
        "smoke_test": smoke,
        "smoke_test_1000_models": smoke_1000,
        "goals": goals(rows),
        "footprint": footprint_rows,
        "slack_ack": ack,
        "slack_ack_observability_overhead": observability,
        "endpoint_abuse": abuse,
        "service_overhead": service,
        "list_scale": listing,
        "audit_verify": audit["rows"],
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(table(rows, footprint_rows, results["goals"]))
    print("\ngolden-request smoke test: warm rollback with it vs without it (median, request -> verified)")
    print(smoke_latency.line(smoke))
    print(smoke_latency.line(smoke_1000))
    print(f"\nthrough the service (SQLite, request -> approve -> verified)\n  {service['row']}")
    print(f"\n{listing['row']}")
    print("\nslack ack latency, 50 concurrent signed /model commands (goal p99 < 100 ms)")
    print(f"  {ack['row']}\n  {ack['back_to_back']['row']}")
    print("\nslack ack latency: cost of metrics and JSON logging (ratios to metrics off + text logs)")
    print("\n".join(f"  {row}" for row in observability["rows"]))
    print(f"\nPOST /slack/events abused: {abuse['requests']} forged requests ({abuse['big_bodies']} of 10 MB)")
    print("\n".join(f"  {row}" for row in abuse["rows"]))
    print("\naudit verify, 100,000 rows (goal < 1 s each, constant memory)")
    print("\n".join(f"  {line}" for line in audit["lines"]))
    print(f"\nwrote {args.output}")
    return 0


def goals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by = {(r["replicas"], r["kind"]): r for r in rows}
    out: dict[str, Any] = {}
    for kind in ("warm", "cold"):
        if (10, kind) in by:
            ratio = by[(10, kind)]["ratio_verified"]
            out[f"{kind}_bot_vs_floor_at_10"] = {"ratio": ratio, "goal": GOAL_FLOOR_RATIO_AT_10, "met": ratio <= 1.3}
        if (50, kind) in by and (1, kind) in by:
            bot = by[(50, kind)]["bot_verified_ms"] / by[(1, kind)]["bot_verified_ms"]
            floor = by[(50, kind)]["floor_verified_ms"] / by[(1, kind)]["floor_verified_ms"]
            out[f"{kind}_50_vs_1"] = {
                "bot": round(bot, 2),
                "floor": round(floor, 2),
                "goal": GOAL_SCALING_50_VS_1,
                "met": bot <= GOAL_SCALING_50_VS_1,
            }
    return out


def table(rows: list[dict[str, Any]], footprint_rows: list[dict[str, Any]], goal: dict[str, Any]) -> str:
    lines = [
        "rollback latency, request -> every replica verified (median; total call incl. trim in brackets)",
        f"{'replicas':>8} {'kind':>5} {'runs':>4} {'bot ms':>16} {'floor ms':>16} {'bot/floor':>9}",
    ]
    for r in rows:
        bot = f"{r['bot_verified_ms']:.1f} ({r['bot_total_ms']:.1f})"
        floor = f"{r['floor_verified_ms']:.1f} ({r['floor_total_ms']:.1f})"
        lines.append(
            f"{r['replicas']:>8} {r['kind']:>5} {r['runs']:>4} {bot:>16} {floor:>16} {r['ratio_verified']:>9.2f}"
        )
    lines.append("\ngoals")
    for name, g in goal.items():
        figures = ", ".join(f"{k}={v}" for k, v in g.items() if k not in ("met",))
        lines.append(f"  {name:<26} {figures}  -> {'met' if g['met'] else 'NOT met'}")
    lines.append("\nimport footprint (fresh interpreter, median)")
    for f in footprint_rows:
        if "error" in f:
            lines.append(f"  {f['side']:<26} error: {f['error']}")
        else:
            lines.append(
                f"  {f['side']:<26} import {f['import_ms']:>7.1f} ms  RSS {f['rss_mb']:>6.1f} MB"
                f"  tensorflow loaded: {f['tensorflow_loaded']}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
