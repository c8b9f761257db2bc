"""TF/absl status values as the emulator passes them around, and their conversion to gRPC statuses."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from bot.serving.protos import tf_error_codes_pb2

Code = tf_error_codes_pb2.Code

# ToGRPCStatus (model_servers/grpc_status_util.cc) cuts longer messages and appends this marker.
MESSAGE_LIMIT = 1024
TRUNCATION_MARKER = "...TRUNCATED"

_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


@dataclass(frozen=True)
class Status:
    """An absl::Status: a tensorflow.error.Code number and a message (empty when OK)."""

    code: int = Code.OK
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.code == Code.OK

    def to_string(self) -> str:
        """absl::Status::ToString(), e.g. "NOT_FOUND: Could not find ..." (used inside other messages)."""
        return "OK" if self.ok else f"{Code.Name(self.code)}: {self.message}"


OK = Status()


class TfError(Exception):
    """A non-OK status raised through the emulator; services turn it into the gRPC status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.status = Status(code, message)


def grpc_code(code: int) -> grpc.StatusCode:
    """The gRPC code with the same number: TF Serving casts one to the other unchanged."""
    return _GRPC_CODES.get(code, grpc.StatusCode.UNKNOWN)


def grpc_details(message: str) -> str:
    """The message as ToGRPCStatus sends it: at most 1024 characters, then the truncation marker."""
    if len(message) > MESSAGE_LIMIT:
        return message[:MESSAGE_LIMIT] + TRUNCATION_MARKER
    return message
