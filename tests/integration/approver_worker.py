"""Worker process for test_concurrent_approvals: N threads approve R1 at the same instant."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from bot.core import commands
from bot.core.policy import Identity
from bot.usecases.context import Context
from bot.wiring import build_bot
from tests.fakes import FakeCatalog, FakeFleet
from tests.service_harness import demo_policy, demo_settings, initial_config


def main(db_url: str, tmp: str, first_user: int, count: int, start_at: float) -> None:
    rollouts_file = Path(tmp) / "rollouts.log"
    settings = demo_settings(Path(tmp))
    fleet = FakeFleet(on_rollout=lambda: _append(rollouts_file))
    fleet.sent.append(initial_config(settings.models["fraud_detector"].base_path))
    bot = build_bot(settings, demo_policy(), db_url, fleet=fleet, catalog=FakeCatalog())
    replies: list[str] = []

    def approve(user: str) -> None:
        time.sleep(max(0.0, start_at - time.time()))
        ctx = Context(Identity(user, frozenset({"S0MLONCALL"})), frontend="test")
        reply = bot.service.handle(ctx, commands.Approve(1))
        replies.append(f"{user} ok={reply.ok} {reply.text.splitlines()[0]}")

    threads = [threading.Thread(target=approve, args=(f"U9{first_user + i:03d}",)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bot.close()
    print("\n".join(replies))


def _append(path: Path) -> None:
    with path.open("a") as f:
        f.write("rollout\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
