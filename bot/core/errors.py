"""One error hierarchy. Front ends show `str(error)` (already user-facing); tracebacks go to logs only."""

from __future__ import annotations

from collections.abc import Sequence


class ModelbotError(Exception):
    """Base of every error the bot raises on purpose; the message is safe to show a user."""


class UsageError(ModelbotError):
    """A command could not be parsed; `usage` is the usage line of the verb, if known."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.usage = usage


class PermissionDenied(ModelbotError):
    """Policy said no. `rule` names the rule that decided; `who_can` lists roles or members that may."""

    def __init__(self, message: str, rule: str = "", who_can: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.rule = rule
        self.who_can = tuple(who_can)


class NotFound(ModelbotError):
    """An unknown model, version or request."""


class Conflict(ModelbotError):
    """The world moved: an open request exists, the request was already decided, the desired state changed."""


class FleetBusy(Conflict):
    """Another rollout held the fleet for longer than the claim waits: the request stays APPROVED."""


class PreflightFailed(ModelbotError):
    """A rollout was refused before anything was sent to the fleet (missing version, bad signature...)."""


class ServingError(ModelbotError):
    """A TF Serving call failed. Keeps TF Serving's own code name and message, and the replica."""

    def __init__(self, message: str, code: str = "UNKNOWN", replica: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.replica = replica


class ConfigError(ModelbotError):
    """Configuration is invalid; `problems` lists every problem found, not only the first."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"{source}: " + "; ".join(self.problems))


class StoreUnavailable(ModelbotError):
    """The database could not be reached or the transaction failed; nothing was changed."""
