"""Replica targets (static and dns:///) and gRPC error conversion in bot/serving."""

from __future__ import annotations

import socket
from typing import Any

import grpc
import pytest

from bot.core.errors import ConfigError, ServingError
from bot.serving.errors import describe, from_rpc_error, is_deadline
from bot.serving.targets import Targets


class FakeResolver:
    """getaddrinfo stand-in whose answers a test can change between calls."""

    def __init__(self, answers: dict[str, list[tuple[int, str]]]) -> None:
        self.answers = answers
        self.calls = 0

    def __call__(self, host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        self.calls += 1
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(family, socket.SOCK_STREAM, 6, "", (ip, port)) for family, ip in self.answers[host]]


def test_static_targets_in_order() -> None:
    """Static host:port targets are the replicas, in configured order, without duplicates."""
    targets = Targets(["a:8500", "b:8500", "a:8500"], FakeResolver({}))
    assert targets.replicas() == ("a:8500", "b:8500")


def test_dns_target_resolves_every_address_each_time() -> None:
    """Every A/AAAA address is a replica, re-resolved on each call (pods come and go)."""
    resolver = FakeResolver({"tfs": [(socket.AF_INET, "10.0.0.2"), (socket.AF_INET6, "fd00::1")]})
    targets = Targets(["dns:///tfs:8500"], resolver)
    assert targets.replicas() == ("10.0.0.2:8500", "[fd00::1]:8500")
    resolver.answers["tfs"].append((socket.AF_INET, "10.0.0.3"))
    assert targets.replicas() == ("10.0.0.2:8500", "10.0.0.3:8500", "[fd00::1]:8500")
    assert resolver.calls == 2
    assert targets.tls_name("10.0.0.3:8500") == "tfs"  # the certificate is issued for the service name


def test_unresolvable_name_is_a_serving_error() -> None:
    """A DNS name that does not resolve fails loudly instead of meaning "a fleet of zero replicas"."""
    with pytest.raises(ServingError, match="cannot resolve dns:///gone:8500"):
        Targets(["dns:///gone:8500"], FakeResolver({})).replicas()


def test_malformed_targets_are_listed() -> None:
    """Every malformed target is reported at once."""
    with pytest.raises(ConfigError) as err:
        Targets(["nohost", "dns:///x:http", "h:99999"], FakeResolver({}))
    assert len(err.value.problems) == 3


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_tf_serving_message_and_code_are_kept() -> None:
    """The gRPC code name and TF Serving's own message survive the conversion."""
    message = "Request to assign label to version 9 of model fd, which is not currently available for inference"
    error = from_rpc_error(FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, message), "r1:8500")
    assert (str(error), error.code, error.replica) == (message, "FAILED_PRECONDITION", "r1:8500")
    assert describe(error) == f"FAILED_PRECONDITION: {message}"


def test_handshake_failure_says_what_to_check() -> None:
    """A TLS failure becomes a sentence about certificates, keeping gRPC's words."""
    details = "failed to connect to all addresses; last error: UNKNOWN: Ssl handshake failed: SSL_ERROR_SSL"
    error = from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, details), "r1:8500")
    assert error.code == "UNAVAILABLE"
    assert "client certificate" in str(error) and details in str(error)


def test_deadline_is_recognised() -> None:
    """DEADLINE_EXCEEDED is singled out: on a reload it does not mean failure."""
    assert is_deadline(from_rpc_error(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"), "r"))
    assert not is_deadline(from_rpc_error(FakeRpcError(grpc.StatusCode.NOT_FOUND, "x"), "r"))
