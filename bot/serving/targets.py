"""Which replicas make up the fleet: a static "host:port" list and/or `dns:///name:port` names.

A headless Kubernetes service resolves to one address per pod, and every pod is a separate TF Serving
with its own config (reference/tfserving.md §9.9), so every resolved A/AAAA address is a replica of its own.
Names are resolved again on every `replicas()` call: pods come and go.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.errors import ConfigError, ServingError

DNS_SCHEME = "dns:///"
Resolver = Callable[..., list[tuple[Any, ...]]]


@dataclass(frozen=True)
class _DnsName:
    host: str
    port: int


class Targets:
    """Resolves the configured targets to replica addresses ("host:port", "[v6]:port")."""

    def __init__(self, specs: Sequence[str], resolver: Resolver = socket.getaddrinfo) -> None:
        problems: list[str] = []
        self._static: list[str] = []
        self._names: list[_DnsName] = []
        for spec in specs:
            self._add(spec.strip(), problems)
        if problems:
            raise ConfigError("serving.targets", problems)
        self._resolve = resolver
        self._tls_names: dict[str, str] = {}

    def replicas(self) -> tuple[str, ...]:
        """Static targets first, then every address each DNS name resolves to now; duplicates removed."""
        found = dict.fromkeys(self._static)
        for name in self._names:
            for address in self._lookup(name):
                found.setdefault(address)
                self._tls_names[address] = name.host
        return tuple(found)

    def tls_name(self, replica: str) -> str | None:
        """The DNS name a resolved address came from: what its server certificate is issued for."""
        return self._tls_names.get(replica)

    def _add(self, spec: str, problems: list[str]) -> None:
        rest = spec.removeprefix(DNS_SCHEME)
        host, sep, port = rest.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            problems.append(f"{spec!r}: expected host:port or {DNS_SCHEME}name:port")
        elif spec.startswith(DNS_SCHEME):
            self._names.append(_DnsName(host.strip("[]"), int(port)))
        else:
            self._static.append(spec)

    def _lookup(self, name: _DnsName) -> list[str]:
        try:
            infos = self._resolve(name.host, name.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ServingError(
                f"cannot resolve {DNS_SCHEME}{name.host}:{name.port}: {exc}", code="UNAVAILABLE"
            ) from None
        addresses = []
        for family, *_, sockaddr in infos:
            ip = str(sockaddr[0])
            addresses.append(f"[{ip}]:{name.port}" if family == socket.AF_INET6 else f"{ip}:{name.port}")
        return sorted(set(addresses))
