"""Endpoint abuse: what forged and oversized requests to `POST /slack/events` cost the running bot (issue 7).

The bot runs in this process as `modelbot serve` does (cheroot, the guard, bolt) on loopback with SQLite
and its background work idle; another process plays the attacker: 50 forged 10 MB bodies (half with a
Content-Length, half chunked) and 1,000 small forged requests (bad signature, non-numeric and stale
timestamps, `payload=` that is not JSON), 8 at a time. Reported: answers by status (no 500 allowed), log
bytes per forged request (every record at DEBUG), the server's peak RSS during the batch (VmHWM, reset
before it; goal < 200 MB), and what one request holds at most (tracemalloc peak of one in-process call: a
real click, a forged 1 MiB body, and signed 1 MiB bodies: plain, all percent-escapes, a JSON list of {}).

    python -m bench.endpoint_abuse       # prints the figures as JSON
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BIG_BODIES = 50
BIG_BYTES = 10 * 1024 * 1024
SMALL_REQUESTS = 1000
CONCURRENCY = 8
GOAL_PEAK_RSS_MB = 200.0
QUIET = {"outbox_options": {"poll_s": 3600.0}, "expiry_every_s": 3600.0}


def run(log: Any = None) -> dict[str, Any]:
    """Start the bot, let the client process fire the batch, measure; the figures and table rows."""
    from bench.slack_ack import _fake_slack  # noqa: PLC0415 - the fake Web API in its own process
    from tests.e2e.abuse import all_logs  # noqa: PLC0415 - the loopback harness of the tests
    from tests.e2e.stack import USERS, start_server  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp, _fake_slack(USERS) as slack_base:
        server = start_server(Path(tmp), f"sqlite:///{tmp}/bench.db", f"{slack_base}/api/", **QUIET)
        try:
            rss_before = _rss_mb("VmRSS")
            reset = _reset_peak_rss()
            with all_logs() as logs:
                statuses, elapsed = _client(server.port)
            peak = _rss_mb("VmHWM") if reset else None
            rss_after = _rss_mb("VmRSS")
            with all_logs():  # bolt's one-line warning about the unhandled click goes here, not to stderr
                per_request = _per_request_peaks(server.router())
        finally:
            server.stop(drain_s=10)
            server.bot.close()
    forged = sum(statuses.values())
    result = {
        "name": "endpoint_abuse",
        "requests": forged,
        "big_bodies": BIG_BODIES,
        "big_body_mb": BIG_BYTES / 2**20,
        "statuses": dict(sorted(statuses.items())),
        "status_500": statuses.get("500", 0),
        "elapsed_s": round(elapsed, 2),
        "log_bytes": logs.size,
        "log_bytes_per_forged_request": round(logs.size / forged, 1),
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak,
        "rss_after_mb": rss_after,
        "goal_peak_rss_mb": GOAL_PEAK_RSS_MB,
        "per_request_peak_kib": per_request,
    }
    result["met"] = result["status_500"] == 0 and (peak is None or peak < GOAL_PEAK_RSS_MB)
    result["rows"] = rows(result)
    if log:
        for row in result["rows"]:
            log(row)
    return result


def rows(r: dict[str, Any]) -> list[str]:
    statuses = ", ".join(f"{status} x {n}" for status, n in r["statuses"].items())
    peak = "n/a (cannot reset VmHWM)" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.1f} MB"
    verdict = "met" if r["met"] else "NOT met"
    per = r["per_request_peak_kib"]
    return [
        f"{'answers':<28} {statuses}  (500: {r['status_500']}; status 0 = connection closed before an answer)",
        f"{'log bytes per forged request':<28} {r['log_bytes_per_forged_request']:.1f}"
        f"  ({r['log_bytes']} bytes for {r['requests']} requests)",
        f"{'server RSS':<28} before {r['rss_before_mb']:.1f} MB, peak during batch {peak}, after"
        f" {r['rss_after_mb']:.1f} MB (goal peak < {r['goal_peak_rss_mb']:.0f} MB) -> {verdict}",
        f"{'one request holds at most':<28} "
        + ", ".join(f"{name} {kib / 1024:.2f} MiB" for name, kib in per.items())
        + " (tracemalloc peak)",
    ]


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: clear_refs 5), so the peak is the batch's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _per_request_peaks(app: Any) -> dict[str, float]:
    """tracemalloc peak (KiB) of one in-process call of the router, per kind of body."""
    from bot.frontends.http.router import MAX_BODY_BYTES  # noqa: PLC0415
    from tests.e2e.abuse import slack_headers, wsgi_post  # noqa: PLC0415
    from tests.e2e.slack_driver import SlackDriver  # noqa: PLC0415
    from tests.e2e.stack import SECRET  # noqa: PLC0415

    click = SlackDriver("", SECRET, lambda: "http://127.0.0.1:9/hooks/1").block_action_body("x", "1", "U1", "C1", "1.1")
    plain = b"a=" + b"b" * (MAX_BODY_BYTES - 2)
    escapes = b"a=" + b"%41" * ((MAX_BODY_BYTES - 2) // 3)  # urllib's unquote splits at every "%"
    objects = b"payload=[" + b"{}," * ((MAX_BODY_BYTES - 12) // 3) + b"{}]"  # the most Python objects per byte
    cases = {  # (body, signed, status): none of them reaches a listener
        "Slack click (signed, unhandled action)": (click.encode(), True, 404),
        "forged 1 MiB": (plain, False, 401),
        "signed 1 MiB form": (plain, True, 400),
        "signed 1 MiB of %XX": (escapes, True, 400),
        "signed 1 MiB JSON of {}s": (objects, True, 400),
    }
    peaks = {}
    for name, (body, signed, expected) in cases.items():
        tracemalloc.start()
        status, _ = wsgi_post(app, body, slack_headers(SECRET if signed else None, body))
        peaks[name] = round(tracemalloc.get_traced_memory()[1] / 1024, 1)
        tracemalloc.stop()
        assert status == expected, (name, status)
    return peaks


def _client(port: int) -> tuple[Counter[str], float]:
    """The attacker in its own process (its 10 MB bodies do not count against the server's RSS)."""
    job = json.dumps({"port": port, "big": BIG_BODIES, "small": SMALL_REQUESTS, "concurrency": CONCURRENCY})
    proc = subprocess.run(
        [sys.executable, "-m", "bench.endpoint_abuse", "--client"],
        input=job,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    out = json.loads(proc.stdout)
    return Counter(out["statuses"]), float(out["elapsed_s"])


def _client_main() -> None:
    from tests.e2e.abuse import send, slack_headers  # noqa: PLC0415

    job = json.loads(sys.stdin.read())
    port = job["port"]
    big = b"payload=" + b"x" * BIG_BYTES
    command = b"command=%2Fmodel&user_id=U1&text=whoami"

    def forged(i: int) -> tuple[bytes, dict[str, str], bool]:
        if i < job["big"]:
            return big, slack_headers(None, big), i % 2 == 1
        kind = i % 4
        if kind == 0:
            return command, slack_headers(None, command), False
        if kind == 1:
            return command, {**slack_headers(None, command), "X-Slack-Request-Timestamp": "not-a-number"}, False
        if kind == 2:
            return command, slack_headers("any", command, timestamp=str(int(time.time()) - 3600)), False
        body = b"payload=%7Bnot-json"
        return body, slack_headers(None, body), False

    def fire(i: int) -> str:
        body, headers, chunked = forged(i)
        return str(send(port, body, headers, chunked=chunked).status)

    started = time.perf_counter()
    with ThreadPoolExecutor(job["concurrency"]) as pool:
        statuses = Counter(pool.map(fire, range(job["big"] + job["small"])))
    print(json.dumps({"statuses": statuses, "elapsed_s": time.perf_counter() - started}))


if __name__ == "__main__":
    if "--client" in sys.argv:
        _client_main()
    else:
        print(json.dumps(run(log=lambda row: print(row, file=sys.stderr)), indent=2))
