"""Slack ack latency: bursts of concurrent signed `/model` slash commands against the running app.

The bot runs as `modelbot serve` does (cheroot, bolt, the worker pool, the outbox) on loopback with an
in-memory fleet and SQLite. Slack's side runs in two other processes, as it would be elsewhere: the fake
Web API (which also takes the response_url answers), and the client that fires each burst at once (a
barrier releases all threads together) and times every HTTP round trip until Slack would see the 200.
Slack gives up after 3 s; the goal is p99 < 100 ms at 50 concurrent commands.

Two figures: bursts spaced PAUSE_S apart (50 commands arrive at a bot that is not busy: the goal), and
bursts back to back (each arrives while the previous 50 are still being worked on: a stress figure).

    python -m bench.slack_ack            # prints the figures as JSON
    python -m bench.slack_ack --overhead # the cost of metrics and JSON logging on ack latency, side by side
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CONCURRENCY = 50
BURSTS = 6  # the first one warms caches (users.info, user groups) and is not counted
PAUSE_S = 1.0
GOAL_P99_MS = 100.0
TEXTS = ("status fraud_detector", "list", "whoami", "help", "requests")


def run(concurrency: int = CONCURRENCY, bursts: int = BURSTS, log: Any = None) -> dict[str, Any]:
    """Start the bot, fire the bursts (spaced, then back to back); the figures and a table row for each."""
    from tests.e2e.stack import SECRET, USERS, start_server  # noqa: PLC0415 - the loopback harness of the e2e tests

    with tempfile.TemporaryDirectory() as tmp, _fake_slack(USERS) as slack_base:
        # Production settings: the outbox's default poll, the thread count of `serve`.
        server = start_server(Path(tmp), f"sqlite:///{tmp}/bench.db", f"{slack_base}/api/", outbox_options={})
        try:
            hooks = [f"{slack_base}/hooks/{i}" for i in range(2 * concurrency * bursts)]
            url = f"http://127.0.0.1:{server.port}/slack/events"
            spaced = _client(url, SECRET, concurrency, bursts, PAUSE_S, hooks[: concurrency * bursts])
            stressed = _client(url, SECRET, concurrency, bursts, 0.0, hooks[concurrency * bursts :])
            server_ack = server.metrics.render()
        finally:
            server.stop(drain_s=60)
            server.bot.close()
    result = _figures(sorted(spaced[concurrency:]), concurrency, bursts - 1, f"{PAUSE_S:g} s apart")  # no warm-up
    result["back_to_back"] = _figures(sorted(stressed), concurrency, bursts, "back to back", goal=False)
    result["server_histogram"] = [line for line in server_ack.splitlines() if line.startswith("modelbot_slack_ack")]
    if log:
        log(result["row"])
        log(result["back_to_back"]["row"])
    return result


OVERHEAD_ROUNDS = 4  # each round runs every configuration once, in a rotated order (noise hits all alike)
OVERHEAD_BURSTS = 2  # bursts per configuration per round


def run_overhead(
    concurrency: int = CONCURRENCY, bursts: int = OVERHEAD_BURSTS, rounds: int = OVERHEAD_ROUNDS, log: Any = None
) -> dict[str, Any]:
    """Ack latency of the same spaced bursts under three set-ups on one server, interleaved round by round (the
    order rotates each round, so drift of a noisy machine is shared): metrics off and text logs (the baseline),
    metrics on and text logs, metrics on and JSON logs (what `serve` runs); p50/p99 ratios to the baseline. A warm-up
    burst before the first round is not counted."""
    import logging  # noqa: PLC0415

    from bot.logging_setup import Redactor, _TextFormatter, json_formatter  # noqa: PLC0415
    from tests.e2e.stack import SECRET, USERS, start_server  # noqa: PLC0415

    configs = [("metrics off, text logs", False, "text"), ("metrics on, text logs", True, "text")]
    configs.append(("metrics on, JSON logs", True, "json"))
    samples: dict[str, list[float]] = {label: [] for label, _, _ in configs}
    root = logging.getLogger()
    with tempfile.TemporaryDirectory() as tmp, _fake_slack(USERS) as slack_base:
        server = start_server(Path(tmp), f"sqlite:///{tmp}/bench.db", f"{slack_base}/api/", outbox_options={})
        recorders = {name: getattr(server.metrics, name) for name in ("ack", "command", "rollout")}
        hooks = iter(f"{slack_base}/hooks/{i}" for i in range((len(configs) * bursts * rounds + 1) * concurrency))
        url = f"http://127.0.0.1:{server.port}/slack/events"

        def measure(metrics_on: bool, fmt: str, n_bursts: int) -> list[float]:
            for name, real in recorders.items():
                setattr(server.metrics, name, real if metrics_on else (lambda *a, **k: None))
            handler = logging.FileHandler(Path(tmp) / f"{fmt}.log")
            handler.setFormatter(json_formatter(Redactor()) if fmt == "json" else _TextFormatter(Redactor()))
            root.addHandler(handler)
            try:
                return _client(
                    url, SECRET, concurrency, n_bursts, PAUSE_S, [next(hooks) for _ in range(concurrency * n_bursts)]
                )
            finally:
                root.removeHandler(handler)
                handler.close()

        level = root.level
        root.setLevel(logging.INFO)
        try:
            measure(True, "json", 1)  # warm-up
            for turn in range(rounds):
                for label, metrics_on, fmt in configs[turn % len(configs) :] + configs[: turn % len(configs)]:
                    samples[label] += measure(metrics_on, fmt, bursts)
        finally:
            root.setLevel(level)
            server.stop(drain_s=60)
            server.bot.close()
    figures = {
        label: _figures(sorted(ms), concurrency, bursts * rounds, label, goal=False) for label, ms in samples.items()
    }
    base = figures[configs[0][0]]
    rows = []
    for label, fig in figures.items():
        fig["p50_ratio"] = round(fig["p50_ms"] / base["p50_ms"], 2)
        fig["p99_ratio"] = round(fig["p99_ms"] / base["p99_ms"], 2)
        rows.append(
            f"{label:<24} p50 {fig['p50_ms']:6.1f} ms (x{fig['p50_ratio']:.2f})  p99 {fig['p99_ms']:6.1f} ms"
            f" (x{fig['p99_ratio']:.2f})  [{rounds} interleaved rounds]"
        )
    if log:
        for row in rows:
            log(row)
    return {"name": "slack_ack_observability_overhead", "configs": figures, "rows": rows}


def _figures(ms: list[float], concurrency: int, bursts: int, spacing: str, goal: bool = True) -> dict[str, Any]:
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    met = p99 < GOAL_P99_MS
    verdict = f"(goal p99 < {GOAL_P99_MS:.0f} ms) -> {'met' if met else 'NOT met'}" if goal else "(stress figure)"
    row = (
        f"slack ack, {concurrency} concurrent signed commands x {bursts} bursts {spacing}: p50 {p50:.1f} ms,"
        f" p99 {p99:.1f} ms, max {ms[-1]:.1f} ms {verdict}"
    )
    return {
        "name": "slack_ack",
        "concurrency": concurrency,
        "bursts": bursts,
        "spacing": spacing,
        "requests": len(ms),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(ms[-1], 2),
        "goal_p99_ms": GOAL_P99_MS,
        "met": met,
        "row": row,
    }


@contextmanager
def _fake_slack(users: tuple[str, ...]) -> Iterator[str]:
    """The fake Slack Web API in its own process; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.fake_slack", *users],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)


def _client(url: str, secret: str, concurrency: int, bursts: int, pause_s: float, hooks: list[str]) -> list[float]:
    """Run the bursts from a separate process, so the client does not share the bot's interpreter."""
    job = json.dumps(
        {"url": url, "secret": secret, "concurrency": concurrency, "bursts": bursts, "pause_s": pause_s, "hooks": hooks}
    )
    proc = subprocess.run(
        [sys.executable, "-m", "bench.slack_ack", "--client"],
        input=job,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    samples: list[float] = json.loads(proc.stdout)
    return samples


def _client_main() -> None:
    from tests.e2e.slack_driver import SlackDriver  # noqa: PLC0415

    job = json.loads(sys.stdin.read())
    hooks = iter(job["hooks"])
    driver = SlackDriver(job["url"], job["secret"], lambda: next(hooks))
    samples: list[float] = []
    for _ in range(job["bursts"]):
        samples += _burst(driver, job["concurrency"])
        time.sleep(job["pause_s"])
    print(json.dumps(samples))


def _burst(driver: Any, concurrency: int) -> list[float]:
    bodies = [driver.slash_command_body(TEXTS[i % len(TEXTS)], "U01ALICE") for i in range(concurrency)]
    gate = threading.Barrier(concurrency)
    out: list[float] = [0.0] * concurrency
    errors: list[str] = []

    def fire(i: int) -> None:
        gate.wait()
        result = driver.post(bodies[i])
        if result.status != 200:
            errors.append(f"HTTP {result.status}: {result.body[:200]}")
        out[i] = result.elapsed * 1000

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} of {concurrency} commands failed, e.g. {errors[0]}")
    return out


if __name__ == "__main__":
    if "--client" in sys.argv:
        _client_main()
    elif "--overhead" in sys.argv:
        print(json.dumps(run_overhead(log=lambda row: print(row, file=sys.stderr)), indent=2))
    else:
        print(json.dumps(run(log=lambda row: print(row, file=sys.stderr)), indent=2))
