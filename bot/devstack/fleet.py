"""DevFleet: n emulated TF Serving replicas as real processes on loopback, for the demo and the tests.

    with DevFleet(3, models_root, certs, config_text, file_system_poll_wait_seconds=0.1) as fleet:
        fleet.targets            # ["127.0.0.1:40123", ...]
        fleet.kill(2); fleet.restart(2)

Keyword knobs are emulator flags (`python -m bot.devstack.serving --help`), given to every replica;
`per_replica={i: {...}}` adds or overrides flags for one replica (e.g. `{"devstack_stall": ["m:3"]}`), and its
special key "config_text" gives that replica its own model config file. `dump_configs=True` has every replica
write the config it stores after each reload (`--devstack_dump_config`), read back with `stored_config(i)`:
TF Serving has no call that returns it, and tests must compare what each replica received.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from bot.devstack.certs import DevCerts
from bot.devstack.serving.flags import ServerFlags
from bot.serving.protos import tfs_apis_pb2

_READY = re.compile(rb"devstack: serving on port (\d+)")
_MANAGED_FLAGS = frozenset({"port", "host", "model_config_file", "ssl_config_file", "devstack_parent_pid"})
_KNOWN_FLAGS = frozenset(f.name for f in dataclasses.fields(ServerFlags))
MODELS_ROOT_PLACEHOLDER = "{models_root}"


class DevFleetError(RuntimeError):
    """A replica did not start (its stderr tail is in the message) or was misconfigured."""


def flag_args(knobs: Mapping[str, object]) -> list[str]:
    """Emulator command-line flags for knobs: True -> `--name`, lists repeat the flag, False/None are left out."""
    args: list[str] = []
    for name, value in sorted(knobs.items()):
        if name not in _KNOWN_FLAGS:
            raise DevFleetError(f"unknown emulator flag {name!r}")
        if value is None or value is False:
            continue
        if value is True:
            args.append(f"--{name}")
        elif isinstance(value, list | tuple | set | frozenset):
            args.extend(f"--{name}={item}" for item in sorted(str(v) for v in value))
        else:
            args.append(f"--{name}={value}")
    return args


@dataclasses.dataclass
class _Replica:
    index: int
    port: int  # 0 until the first start reports the port it bound
    config_file: Path
    knobs: dict[str, object]
    process: subprocess.Popen[bytes] | None = None


class DevFleet:
    def __init__(
        self,
        n: int,
        models_root: Path,
        certs: DevCerts | None,
        config_text: str,
        ports: Sequence[int] | None = None,
        *,
        per_replica: Mapping[int, Mapping[str, object]] | None = None,
        workdir: Path | None = None,
        client_verify: bool = True,
        ready_timeout_s: float = 60.0,
        dump_configs: bool = False,
        **knobs: object,
    ) -> None:
        """n replicas serving config_text ("{models_root}" in it becomes models_root's absolute path).

        certs=None runs without TLS; ports=None lets each replica pick a free port (kept across restarts).
        """
        if ports is not None and len(ports) != n:
            raise DevFleetError(f"{n} replicas but {len(ports)} ports")
        for name in set(knobs) | {k for extra in (per_replica or {}).values() for k in extra}:
            if name in _MANAGED_FLAGS:
                raise DevFleetError(f"{name} is set by DevFleet itself")
        self._models_root = models_root.resolve()
        self._certs = certs
        self._client_verify = client_verify
        self._ready_timeout_s = ready_timeout_s
        self._owns_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="devfleet-")) if workdir is None else workdir
        self.config_file = self.workdir / "models.config"
        self.ssl_config_file = self.workdir / "ssl.config" if certs is not None else None
        self._config_text = config_text
        self._replicas: list[_Replica] = []
        for i in range(n):
            own = dict((per_replica or {}).get(i, {}))
            config_file = self.workdir / f"models-{i}.config" if "config_text" in own else self.config_file
            own.pop("config_text", None)
            port = ports[i] if ports is not None else 0
            if dump_configs:
                own.setdefault("devstack_dump_config", str(self._stored_path(i)))
            self._replicas.append(_Replica(i, port, config_file, {**knobs, **own}))
            flag_args(self._replicas[-1].knobs)  # a misspelt knob fails here, before anything starts
        self._replica_configs = {i: str(c["config_text"]) for i, c in (per_replica or {}).items() if "config_text" in c}

    # --- context manager --------------------------------------------------------------------------------
    def __enter__(self) -> DevFleet:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- public API -------------------------------------------------------------------------------------
    @property
    def targets(self) -> list[str]:
        return [f"127.0.0.1:{r.port}" for r in self._replicas]

    @property
    def ports(self) -> list[int]:
        return [r.port for r in self._replicas]

    def config_file_for(self, i: int) -> Path:
        return self._replicas[i].config_file

    def start(self) -> None:
        """Write the config files and start every replica; returns once all printed their ready line."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_config(self._config_text)
        for i, text in self._replica_configs.items():
            self.write_config(text, replica=i)
        if self._certs is not None and self.ssl_config_file is not None:
            _write_atomic(self.ssl_config_file, self._certs.ssl_config_text(self._client_verify), mode=0o600)
        try:
            for replica in self._replicas:
                self._spawn(replica)
            for replica in self._replicas:
                self._await_ready(replica)
        except BaseException:
            self.close()
            raise

    def write_config(self, config_text: str, replica: int | None = None) -> Path:
        """Atomically (re)write the shared model config file, or one replica's own file."""
        path = self.config_file if replica is None else self.workdir / f"models-{replica}.config"
        _write_atomic(path, config_text.replace(MODELS_ROOT_PLACEHOLDER, str(self._models_root)))
        return path

    def is_running(self, i: int) -> bool:
        process = self._replicas[i].process
        return process is not None and process.poll() is None

    def exit_code(self, i: int) -> int | None:
        """The replica's exit code once it has ended, else None."""
        process = self._replicas[i].process
        return None if process is None else process.poll()

    def stop(self, i: int, timeout_s: float = 10.0) -> None:
        """Graceful stop (SIGTERM), killing the replica if it has not exited after timeout_s."""
        process = self._replicas[i].process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill(i)

    def kill(self, i: int) -> None:
        """SIGKILL: the replica vanishes mid-whatever, like a crashed pod."""
        process = self._replicas[i].process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def pause(self, i: int) -> None:
        """SIGSTOP: the replica hangs (accepts connections, answers nothing), like a stalled node."""
        process = self._replicas[i].process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGSTOP)

    def resume(self, i: int) -> None:
        """SIGCONT after pause()."""
        process = self._replicas[i].process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)

    def restart(self, i: int, config_text: str | None = None) -> None:
        """Stop (if running) and start again on the same port with the current config file; with `config_text`,
        from a config file of its own instead (a replica started without the shared model_config_file)."""
        self.stop(i)
        if config_text is not None:
            self._replicas[i].config_file = self.write_config(config_text, replica=i)
        self._spawn(self._replicas[i])
        self._await_ready(self._replicas[i])

    def stored_config(self, i: int) -> tfs_apis_pb2.ModelServerConfig | None:
        """The config replica i stored at its last reload (fleet started with dump_configs=True); None before any."""
        path = Path(str(self._replicas[i].knobs.get("devstack_dump_config", self._stored_path(i))))
        if not path.exists():
            return None
        config = tfs_apis_pb2.ModelServerConfig()
        config.ParseFromString(path.read_bytes())
        return config

    def log(self, i: int) -> str:
        """Everything the replica wrote to stderr so far (its log), across restarts."""
        path = self._log_path(i)
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        for replica in self._replicas:
            if replica.process is not None and replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
        for replica in self._replicas:
            self.stop(replica.index)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- internals --------------------------------------------------------------------------------------
    def _log_path(self, i: int) -> Path:
        return self.workdir / f"replica-{i}.log"

    def _stored_path(self, i: int) -> Path:
        return self.workdir / f"replica-{i}.stored.pb"

    def _out_path(self, i: int) -> Path:
        return self.workdir / f"replica-{i}.out"

    def _spawn(self, replica: _Replica) -> None:
        args = [
            f"--port={replica.port}",
            f"--model_config_file={replica.config_file}",
            f"--devstack_parent_pid={os.getpid()}",
        ]
        if self.ssl_config_file is not None:
            args.append(f"--ssl_config_file={self.ssl_config_file}")
        args += flag_args(replica.knobs)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # Files, not pipes: nobody has to drain them, and the log survives the process for error messages.
        with self._out_path(replica.index).open("wb") as out, self._log_path(replica.index).open("ab") as err:
            replica.process = subprocess.Popen(
                [sys.executable, "-m", "bot.devstack.serving", *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C reaches the launcher, which stops replicas in order
            )

    def _await_ready(self, replica: _Replica) -> None:
        deadline = time.monotonic() + self._ready_timeout_s
        assert replica.process is not None
        while time.monotonic() < deadline:
            match = _READY.search(self._out_path(replica.index).read_bytes())
            if match:
                replica.port = int(match.group(1))
                return
            if replica.process.poll() is not None:
                raise DevFleetError(
                    f"replica {replica.index} exited with code {replica.process.returncode} before it was ready:\n"
                    + self._log_tail(replica.index)
                )
            time.sleep(0.02)
        self.kill(replica.index)
        raise DevFleetError(
            f"replica {replica.index} was not ready after {self._ready_timeout_s:.0f}s:\n"
            + self._log_tail(replica.index)
        )

    def _log_tail(self, i: int, lines: int = 20) -> str:
        return "\n".join(self.log(i).splitlines()[-lines:])


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)
