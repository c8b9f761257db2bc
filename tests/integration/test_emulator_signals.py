"""The emulator's signal handling: SIGTERM (or SIGINT) stops it, however many of them arrive and however fast."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.devstack_support import FAST_KNOBS, config_text, model_entry, wait_until

READY = "devstack: serving on port"
EXIT_S = 10.0  # a stopping emulator exits within about a second (0.5 s poll + 0.5 s gRPC grace)
SIGNALLING_S = 2.0  # signals sent back to back for this long (or until it exits): some arrive mid-handler


@pytest.fixture
def emulator(demo_models: Path, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """One plaintext emulator process serving fraud_detector v1, ready; killed at teardown if still running."""
    config = tmp_path / "models.config"
    config.write_text(config_text(model_entry(base_path=str(demo_models), versions=[1])))
    out = tmp_path / "emulator.out"
    knobs = [f"--{name}={value}" for name, value in FAST_KNOBS.items()]
    with out.open("wb") as stdout, (tmp_path / "emulator.log").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.devstack.serving", "--port=0", f"--model_config_file={config}", *knobs],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        wait_until(lambda: READY in out.read_text() or process.poll() is not None or None, 60, "the emulator ready")
        assert process.poll() is None, (tmp_path / "emulator.log").read_text()[-2000:]
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_burst_of_stop_signals_stops_the_emulator(emulator: subprocess.Popen[bytes], signum: int) -> None:
    """Stop signals sent back to back (some arriving while an earlier one is being handled) still end the process,
    cleanly and soon."""
    started = time.monotonic()
    sent = 0
    while emulator.poll() is None and time.monotonic() - started < SIGNALLING_S:
        emulator.send_signal(signum)
        sent += 1
    try:
        code = emulator.wait(EXIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the emulator was still running {EXIT_S:.0f}s after {sent} signals (a deadlocked handler)")
    assert code == 0, f"exit code {code} after {sent} signals"
