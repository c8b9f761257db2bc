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
    """Problems first, then a summary; `show_all` lists every model (paged), `prefix` filters by name."""

    ACTION: ClassVar[str] = "list"
    prefix: str = ""
    show_all: bool = False
    page: int = 1


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
class Cancel(Command):
    """The requester withdraws their own pending request. Allowed to whoever may make the change it asks for
    (the service checks `promote`/`rollback` for the request's model); only the requester succeeds."""

    ACTION: ClassVar[str] = "cancel"  # CANCEL_ACTION: derived from promote/rollback, see below
    request_id: int


@dataclass(frozen=True)
class Review(Command):
    """An approver acknowledges an emergency's retro-review."""

    ACTION: ClassVar[str] = "approve"
    request_id: int


@dataclass(frozen=True)
class Freeze(Command):
    """Refuse promote/rollback of a model (or every model: `model_name` "*") until unfrozen or `for_s` passes."""

    ACTION: ClassVar[str] = "freeze"
    model_name: str
    reason: str = ""
    for_s: int | None = None


@dataclass(frozen=True)
class Unfreeze(Command):
    ACTION: ClassVar[str] = "freeze"
    model_name: str


@dataclass(frozen=True)
class Resync(Command):
    """Re-send the desired state to the replicas that drifted from it; needs the `rollback` permission."""

    ACTION: ClassVar[str] = "rollback"
    model_name: str


@dataclass(frozen=True)
class Explain(Command):
    """The short story of one request: who asked, who approved, what each replica did, chain verified."""

    ACTION: ClassVar[str] = "history"
    request_id: int


@dataclass(frozen=True)
class Smoke(Command):
    """Send the model's golden request to one version on every replica (read-only: the `versions` permission)."""

    ACTION: ClassVar[str] = "versions"
    model_name: str
    version: int


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
    "freeze": Freeze,
    "unfreeze": Unfreeze,
    "cancel": Cancel,
    "review": Review,
    "explain": Explain,
    "smoke": Smoke,
}

# Emergency rollbacks skip the second person; they need this extra permission (incident commanders).
EMERGENCY_ACTION = "rollback_emergency"
# Not granted by roles: whoever may make a change (promote or rollback) may withdraw their own request.
CANCEL_ACTION = "cancel"
CHANGE_ACTIONS = frozenset({"promote", "rollback"})
ALL_ACTIONS = frozenset([*(cls.ACTION for cls in VERBS.values() if cls.ACTION != CANCEL_ACTION), EMERGENCY_ACTION])


def permission_of(command: Command) -> str:
    """The permission policy checks for `command`: its ACTION, except that an emergency rollback needs
    `rollback_emergency` (and only that: DESIGN's incident commander may hold it without `rollback`)."""
    if isinstance(command, Rollback) and command.emergency:
        return EMERGENCY_ACTION
    return command.ACTION


def cancel_permission(request_action: str | None) -> str:
    """The permission `/model cancel` is checked against: the action of the request it withdraws (promote or
    rollback); `rollback` when the request is unknown (the use case then refuses the id)."""
    return request_action if request_action is not None else "rollback"


def format_request_id(request_id: int) -> str:
    return f"R{request_id}"
