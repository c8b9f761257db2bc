"""gRPC failures -> `ServingError`, keeping TF Serving's own status code name and message.

TF Serving returns its absl status unchanged as the gRPC status (reference/tfserving.md §1.3), so the code
name (`FAILED_PRECONDITION`, `NOT_FOUND`...) and the details string are exactly what the server said.
"""

from __future__ import annotations

import grpc

from bot.core.errors import ServingError

# Substrings gRPC core puts in the details of a failed TLS handshake (client or server side).
_HANDSHAKE_HINTS = ("handshake", "ssl", "tls", "certificate")


def from_rpc_error(exc: grpc.RpcError, replica: str) -> ServingError:
    """Convert a failed call; a TLS handshake failure keeps its code but gets a sentence saying what to check."""
    code = _code_name(exc)
    details = _details(exc)
    if code == "UNAVAILABLE" and _looks_like_handshake(details):
        message = (
            f"TLS handshake with {replica} failed: the replica refused the bot's client certificate or the "
            f"bot does not trust the replica's certificate (check serving.tls). gRPC said: {details}"
        )
        return ServingError(message, code=code, replica=replica)
    return ServingError(details or f"{code} from {replica}", code=code, replica=replica)


def describe(error: ServingError) -> str:
    """One line for a per-replica report: the code name, then TF Serving's message."""
    return f"{error.code}: {error}"


def is_deadline(error: ServingError) -> bool:
    """A client-side deadline: for a reload this does NOT mean it failed (reference/tfserving.md §1.3)."""
    return error.code == "DEADLINE_EXCEEDED"


def is_unreachable(error: ServingError) -> bool:
    """The replica did not answer at all (down, refused, handshake failed)."""
    return error.code == "UNAVAILABLE"


def _code_name(exc: grpc.RpcError) -> str:
    code = getattr(exc, "code", None)
    value = code() if callable(code) else None
    return value.name if isinstance(value, grpc.StatusCode) else "UNKNOWN"


def _details(exc: grpc.RpcError) -> str:
    details = getattr(exc, "details", None)
    value = details() if callable(details) else None
    return str(value) if value else ""


def _looks_like_handshake(details: str) -> bool:
    lowered = details.lower()
    # With TLS 1.3 the server checks the client certificate after the client thinks the handshake is done,
    # so a refused certificate shows up as the connection closing while connecting.
    refused_while_connecting = "failed to connect" in lowered and "socket closed" in lowered
    return refused_while_connecting or any(hint in lowered for hint in _HANDSHAKE_HINTS)
