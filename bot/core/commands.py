"""One command class per user intent. `ACTION` is the permission name checked by policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Command:
    ACTION: ClassVar[str] = ""

    @property
    def model(self) -> str | None:
        return getattr(self, "model_name", None)


@dataclass(frozen=True)
class Help(Command):
    ACTION: ClassVar[str] = "help"
    verb: str | None = None


@dataclass(frozen=True)
class ListModels(Command):
    ACTION: ClassVar[str] = "list"


@dataclass(frozen=True)
class Versions(Command):
    ACTION: ClassVar[str] = "versions"
    model_name: str


@dataclass(frozen=True)
class Status(Command):
    ACTION: ClassVar[str] = "status"
    model_name: str


@dataclass(frozen=True)
class Promote(Command):
    ACTION: ClassVar[str] = "promote"
    model_name: str
    version: int
    label: str = "stable"
    reason: str = ""
    dry_run: bool = False


@dataclass(frozen=True)
class Rollback(Command):
    ACTION: ClassVar[str] = "rollback"
    model_name: str
    version: int
    reason: str = ""
    dry_run: bool = False
    emergency: bool = False


@dataclass(frozen=True)
class Approve(Command):
    ACTION: ClassVar[str] = "approve"
    request_id: int


@dataclass(frozen=True)
class Reject(Command):
    ACTION: ClassVar[str] = "reject"
    request_id: int
    reason: str = ""


@dataclass(frozen=True)
class Requests(Command):
    ACTION: ClassVar[str] = "requests"


@dataclass(frozen=True)
class History(Command):
    ACTION: ClassVar[str] = "history"
    model_name: str | None = None
    limit: int = 20


@dataclass(frozen=True)
class Resync(Command):
    """Re-send the desired state to the replicas that drifted from it; needs the `rollback` permission."""

    ACTION: ClassVar[str] = "rollback"
    model_name: str


@dataclass(frozen=True)
class Whoami(Command):
    ACTION: ClassVar[str] = "whoami"


VERBS: dict[str, type[Command]] = {
    "help": Help,
    "list": ListModels,
    "versions": Versions,
    "status": Status,
    "promote": Promote,
    "rollback": Rollback,
    "approve": Approve,
    "reject": Reject,
    "requests": Requests,
    "history": History,
    "whoami": Whoami,
    "resync": Resync,
}

# Emergency rollbacks skip the second person; they need this extra permission (incident commanders).
EMERGENCY_ACTION = "rollback_emergency"
ALL_ACTIONS = frozenset([*(cls.ACTION for cls in VERBS.values()), EMERGENCY_ACTION])


def format_request_id(request_id: int) -> str:
    return f"R{request_id}"
