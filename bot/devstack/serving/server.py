"""Start-up and run loop of the emulated model server (model_servers/server.cc BuildAndStart)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path
from types import FrameType

import grpc
from google.protobuf import text_format  # type: ignore[import-untyped]  # protobuf ships no stubs

from bot.devstack.serving.core import ServerCore
from bot.devstack.serving.flags import ServerFlags
from bot.devstack.serving.manager import AspiredVersionsManager, LoadOptions
from bot.devstack.serving.monitor import StateMonitor
from bot.devstack.serving.services import ModelService, PredictionService
from bot.devstack.serving.status import TfError
from bot.devstack.serving.tls import server_credentials
from bot.serving.protos import tfs_apis_pb2, tfs_apis_pb2_grpc

log = logging.getLogger("devstack.server")

READY_LINE = "devstack: serving on port {port}"
_MAX_MESSAGE = 2**31 - 1  # builder.SetMaxMessageSize(INT32_MAX)
# Each hung reload holds one worker until shutdown, so leave plenty of room behind one.
_WORKERS = 64


class StartupError(Exception):
    """The server cannot start; the message says why (the real server exits the same way)."""


def read_config_file(path: str) -> tfs_apis_pb2.ModelServerConfig:
    """A text-format ModelServerConfig; raises OSError or text_format.ParseError."""
    config = tfs_apis_pb2.ModelServerConfig()
    text_format.Parse(Path(path).read_text(), config)
    return config


def initial_config(flags: ServerFlags) -> tfs_apis_pb2.ModelServerConfig:
    if flags.model_config_file:
        try:
            return read_config_file(flags.model_config_file)
        except (OSError, text_format.ParseError) as error:
            raise StartupError(f"cannot read --model_config_file {flags.model_config_file}: {error}") from error
    if not flags.model_base_path:
        raise StartupError("Both server_options.model_base_path and server_options.model_config_file are empty!")
    # BuildSingleModelConfig
    config = tfs_apis_pb2.ModelServerConfig()
    config.model_config_list.config.add(
        name=flags.model_name, base_path=flags.model_base_path, model_platform="tensorflow"
    )
    return config


def poll_config_file(core: ServerCore, path: str, interval: float, stopping: threading.Event) -> None:
    """Re-read the file and reload unconditionally every interval (the first time at once), last writer wins."""
    while not stopping.is_set():
        try:
            config = read_config_file(path)
        except (OSError, text_format.ParseError) as error:
            log.error("Failed to read ModelServerConfig file: %s", error)
        else:
            try:
                core.reload_config(config)
            except TfError as error:
                log.error("PollFilesystemAndReloadConfig failed to ReloadConfig: %s", error.status.message)
        stopping.wait(interval)


def watch_parent(pid: int, stopping: threading.Event) -> None:
    """Stop when the launching process has gone (its children are reparented, so our parent pid changes)."""
    while not stopping.wait(0.5):
        if os.getppid() != pid:
            log.warning("parent process %d is gone; shutting down", pid)
            stopping.set()


def _grpc_server(flags: ServerFlags, core: ServerCore, monitor: StateMonitor) -> tuple[grpc.Server, int]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="devstack-rpc"),
        options=[
            ("grpc.so_reuseport", 0),  # a taken port must fail, not be silently shared with another replica
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
        ],
    )
    tfs_apis_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core, monitor), server)  # type: ignore[no-untyped-call]
    offsets = {(model, version): amount for model, version, amount in flags.devstack_predict_offset}
    prediction = PredictionService(core, offsets, flags.devstack_predict_delay_seconds)
    tfs_apis_pb2_grpc.add_PredictionServiceServicer_to_server(prediction, server)  # type: ignore[no-untyped-call]
    try:
        credentials = server_credentials(flags.ssl_config_file)
    except (OSError, text_format.ParseError) as error:
        raise StartupError(f"cannot read --ssl_config_file {flags.ssl_config_file}: {error}") from error
    address = f"{flags.host}:{flags.port}"
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as error:
        raise StartupError(f"cannot listen on {address}: {error}") from error
    if port == 0:
        raise StartupError(f"cannot listen on {address}")
    return server, port


def run(flags: ServerFlags) -> int:
    """Load the initial config (waiting for its models, as upstream), then serve until SIGTERM or SIGINT."""
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        # A handler runs on the main thread between two bytecodes, possibly while that thread holds the Event's
        # (non-reentrant) lock: inside set() for an earlier signal, or inside stopping.wait() below. Calling set()
        # here could then wait for itself forever. So: no further stop signals (we are stopping already), and
        # the set() is done by another thread, which simply waits its turn for the lock.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Thread(target=stopping.set, name="devstack-stop", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if flags.devstack_parent_pid:
        threading.Thread(target=watch_parent, args=(flags.devstack_parent_pid, stopping), daemon=True).start()
    monitor = StateMonitor()
    load_options = LoadOptions(
        load_seconds=flags.devstack_load_seconds,
        max_num_load_retries=flags.max_num_load_retries,
        retry_interval_seconds=flags.load_retry_interval_seconds,
        tags=flags.tags,
        stalled=flags.devstack_stall,
    )
    manager = AspiredVersionsManager(monitor, load_options, flags.devstack_manage_interval_seconds, stopping)
    core = ServerCore(
        monitor,
        manager,
        file_system_poll_wait_seconds=flags.file_system_poll_wait_seconds,
        allow_version_labels_for_unavailable_models=flags.allow_version_labels_for_unavailable_models,
        stopping=stopping,
        request_logger=flags.devstack_request_logger,
        platforms=flags.devstack_platforms,
        dump_config=flags.devstack_dump_config,
    )
    try:
        config = initial_config(flags)
        manager.start()
        core.reload_config(config)
        core.delay_reloads(flags.devstack_reload_delay_seconds)  # the initial load is never delayed
        server, port = _grpc_server(flags, core, monitor)
    except (StartupError, TfError) as error:
        stopping.set()
        print(f"devstack: cannot start: {error}", file=sys.stderr, flush=True)
        return 1
    if flags.model_config_file_poll_wait_seconds > 0 and flags.model_config_file:
        poller = threading.Thread(
            target=poll_config_file,
            args=(core, flags.model_config_file, flags.model_config_file_poll_wait_seconds, stopping),
            name="devstack-config-poll",
            daemon=True,
        )
        poller.start()
    server.start()
    print(READY_LINE.format(port=port), flush=True)
    while not stopping.wait(0.5):
        pass
    server.stop(grace=0.5).wait()
    return 0
