"""The floor: the same reloads and polling as a rollout, done with bare gRPC futures and prebuilt requests.

No bot code runs while timing: requests are built beforehand, each replica is driven by callbacks on
gRPC's own threads (reload -> poll -> ...), and phases are barriers exactly like the bot's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from bot.serving.protos import tfs_apis_pb2 as apis
from bot.serving.protos import tfs_apis_pb2_grpc as apis_grpc

TIMEOUT_S = 30.0


@dataclass
class _Stubs:
    model: Any
    prediction: Any


class RawFleet:
    """One mTLS channel per replica, like the bot's, and nothing else."""

    def __init__(self, targets: list[str], ca: bytes, key: bytes, cert: bytes, server_name: str, poll_s: float):
        creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
        options = [("grpc.ssl_target_name_override", server_name)]
        self.channels = [grpc.secure_channel(t, creds, options=options) for t in targets]
        self.stubs = [_Stubs(apis_grpc.ModelServiceStub(c), apis_grpc.PredictionServiceStub(c)) for c in self.channels]
        self.poll_s = poll_s

    def close(self) -> None:
        for channel in self.channels:
            channel.close()

    def reload_all(self, request: apis.ReloadConfigRequest) -> None:
        """Reload every replica (fan-out of futures), wait for all."""
        futures = [s.model.HandleReloadConfigRequest.future(request, timeout=TIMEOUT_S) for s in self.stubs]
        for f in futures:
            f.result()

    def load(self, request: apis.ReloadConfigRequest, status: apis.GetModelStatusRequest) -> None:
        """Phase 1: reload, then poll GetModelStatus(version) until AVAILABLE, per replica; barrier."""

        def start(i: int, done: Callable[[], None]) -> None:
            def polled(f: grpc.Future) -> None:
                if f.result().model_version_status[0].state == apis.ModelVersionStatus.AVAILABLE:
                    done()
                else:
                    threading.Timer(self.poll_s, poll).start()

            def poll(_: object = None) -> None:
                self.stubs[i].model.GetModelStatus.future(status, timeout=TIMEOUT_S).add_done_callback(
                    _ok(polled, poll, self.poll_s)
                )

            self.stubs[i].model.HandleReloadConfigRequest.future(request, timeout=TIMEOUT_S).add_done_callback(poll)

        _all(len(self.stubs), start)

    def switch(self, request: apis.ReloadConfigRequest, verify: apis.GetModelMetadataRequest, target: int) -> None:
        """Phase 2: reload, then GetModelMetadata(label) until it resolves to target, per replica; barrier."""

        def start(i: int, done: Callable[[], None]) -> None:
            def checked(f: grpc.Future) -> None:
                if f.result().model_spec.version.value == target:
                    done()
                else:
                    threading.Timer(self.poll_s, check).start()

            def check(_: object = None) -> None:
                self.stubs[i].prediction.GetModelMetadata.future(verify, timeout=TIMEOUT_S).add_done_callback(
                    _ok(checked, check, self.poll_s)
                )

            self.stubs[i].model.HandleReloadConfigRequest.future(request, timeout=TIMEOUT_S).add_done_callback(check)

        _all(len(self.stubs), start)


def _ok(then: Callable[[grpc.Future], None], retry: Callable[[], None], poll_s: float) -> Callable[[grpc.Future], None]:
    """Call `then`, or retry after poll_s when the call failed with NOT_FOUND (version not seen yet)."""

    def callback(f: grpc.Future) -> None:
        error = f.exception()
        if error is not None and error.code() == grpc.StatusCode.NOT_FOUND:
            threading.Timer(poll_s, retry).start()
        elif error is not None:
            raise error
        else:
            then(f)

    return callback


def _all(n: int, start: Callable[[int, Callable[[], None]], None]) -> None:
    remaining = [n]
    lock, finished = threading.Lock(), threading.Event()

    def done() -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0] == 0:
                finished.set()

    for i in range(n):
        start(i, done)
    if not finished.wait(TIMEOUT_S):
        raise TimeoutError(f"raw floor: {remaining[0]} of {n} replicas did not finish")


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
