"""FileSystemStoragePathSource: which version directories each model aspires to, polled periodically.

Mirrors sources/storage_path/file_system_storage_path_source.cc: numeric children only, one missing base path
aborts the whole poll, an empty aspired list is still emitted (and unloads the model).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.devstack.serving.status import Code, Status, TfError
from bot.serving.protos import tfs_apis_pb2

log = logging.getLogger("devstack.source")

VersionPolicy = tfs_apis_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy

# absl::SimpleAtoi: optional surrounding whitespace and sign, decimal digits, must fit int64.
_INT64 = re.compile(r"^\s*[+-]?[0-9]+\s*$")
_INT64_MAX = 2**63 - 1
URI_SCHEME = re.compile(r"^([a-zA-Z][0-9a-zA-Z.]*)://")


@dataclass(frozen=True)
class ServableToMonitor:
    """One model as the source sees it (FileSystemStoragePathSourceConfig.ServableToMonitor)."""

    name: str
    base_path: str
    policy: VersionPolicy


@dataclass(frozen=True)
class AspiredVersion:
    version: int
    path: str


AspiredCallback = Callable[[str, list[AspiredVersion]], None]


def parse_version(child: str) -> int | None:
    """The version number a directory name stands for, or None when it is not one (`v1`, `1.0`)."""
    if not _INT64.match(child):
        return None
    number = int(child.strip())
    return number if -_INT64_MAX - 1 <= number <= _INT64_MAX else None


def join_path(base_path: str, child: str) -> str:
    """io::JoinPath: exactly one slash between the parts."""
    return base_path.rstrip("/") + "/" + child if base_path else child


def _local_path(base_path: str) -> Path:
    """The local directory for a base path; other URI schemes have no filesystem registered here."""
    match = URI_SCHEME.match(base_path)
    if match is None:
        return Path(base_path)
    if match.group(1) == "file":
        return Path(base_path[len("file://") :])
    raise TfError(Code.UNIMPLEMENTED, f"File system scheme '{match.group(1)}' not implemented (file: '{base_path}')")


def _file_exists(base_path: str) -> Status:
    try:
        exists = _local_path(base_path).exists()
    except TfError as error:
        return error.status
    return Status() if exists else Status(Code.NOT_FOUND, f"{base_path} not found")


def _children(base_path: str) -> list[str]:
    try:
        return sorted(entry.name for entry in _local_path(base_path).iterdir())
    except OSError as error:
        raise TfError(Code.FAILED_PRECONDITION, f"{base_path}; {error.strerror}") from error


def _index_children_by_version(children: Sequence[str]) -> dict[int, str]:
    by_version: dict[int, str] = {}
    for child in children:
        version = parse_version(child)
        if version is None:
            continue
        if version in by_version:
            log.warning(
                "Duplicate version directories detected. Version %d will be loaded from %s, %s will be ignored.",
                version,
                child,
                by_version[version],
            )
        by_version[version] = child
    return by_version


def _specific_fast_path(servable: ServableToMonitor) -> list[AspiredVersion] | None:
    """All requested versions exist under their plain number: aspire them without listing the directory."""
    wanted = list(servable.policy.specific.versions)
    if not wanted:
        log.warning("No specific versions requested for servable %s.", servable.name)
        return []
    if not all(_file_exists(join_path(servable.base_path, str(v))).ok for v in wanted):
        return None
    return [AspiredVersion(v, join_path(servable.base_path, str(v))) for v in wanted]


def poll_servable(servable: ServableToMonitor) -> list[AspiredVersion]:
    """The versions this model aspires to now; raises when its base path is missing (which aborts the poll)."""
    exists = _file_exists(servable.base_path)
    if not exists.ok:
        raise TfError(
            Code.INVALID_ARGUMENT,
            f"Could not find base path {servable.base_path} for servable {servable.name} "
            f"with error {exists.to_string()}",
        )
    choice = servable.policy.WhichOneof("policy_choice")
    if choice == "specific":
        fast = _specific_fast_path(servable)
        if fast is not None:
            return fast
    children = _children(servable.base_path)
    by_version = _index_children_by_version(children)
    if choice == "all":
        aspired = [AspiredVersion(v, join_path(servable.base_path, c)) for v, c in sorted(by_version.items())]
    elif choice == "specific":
        wanted = set(servable.policy.specific.versions)
        aspired = [
            AspiredVersion(v, join_path(servable.base_path, by_version[v])) for v in sorted(wanted) if v in by_version
        ]
        for missing in sorted(wanted - set(by_version)):
            log.warning(
                "Version %d of servable %s, which was requested to be served as a 'specific' version in the "
                "servable's version policy, was not found in the file system",
                missing,
                servable.name,
            )
    else:  # unset or latest: the n highest numbers, n >= 1
        count = max(servable.policy.latest.num_versions, 1)
        newest = sorted(by_version, reverse=True)[:count]
        aspired = [AspiredVersion(v, join_path(servable.base_path, by_version[v])) for v in newest]
    if not aspired:
        log.warning(
            "No versions of servable %s found under base path %s. "
            "Did you forget to name your leaf directory as a number (eg. '/1/')?",
            servable.name,
            servable.base_path,
        )
    return aspired


def poll_config(servables: Sequence[ServableToMonitor]) -> dict[str, list[AspiredVersion]]:
    """PollFileSystemForConfig: every model's aspired versions, or the first model's error for all of them."""
    return {servable.name: poll_servable(servable) for servable in servables}


class FileSystemSource:
    """Polls the configured base paths and reports each model's aspired versions to the manager."""

    def __init__(self, poll_wait_seconds: float, callback: AspiredCallback, stopping: threading.Event) -> None:
        self._poll_wait_seconds = poll_wait_seconds
        self._callback = callback
        self._stopping = stopping
        # Held during a poll and a config update, as upstream's mu_: a reload waits for a poll in progress.
        self._mu = threading.Lock()
        self._servables: tuple[ServableToMonitor, ...] = ()
        self._thread: threading.Thread | None = None

    def config(self) -> tuple[ServableToMonitor, ...]:
        with self._mu:
            return self._servables

    def update_config(self, servables: Sequence[ServableToMonitor]) -> None:
        """Swap the model list; models no longer listed are un-aspired at once (an empty aspired list)."""
        with self._mu:
            kept = {servable.name for servable in servables}
            if self._thread is not None:
                for gone in sorted({s.name for s in self._servables} - kept):
                    self._callback(gone, [])
            self._servables = tuple(servables)

    def start(self) -> None:
        """Poll now, then every interval; 0 polls exactly once and a negative interval never polls."""
        if self._poll_wait_seconds < 0:
            return
        self._thread = threading.Thread(target=self._run, name="devstack-fs-poll", daemon=True)
        self._thread.start()

    def poll_once(self) -> None:
        with self._mu:
            try:
                found = poll_config(self._servables)
            except TfError as error:
                log.error("FileSystemStoragePathSource encountered a filesystem access error: %s", error)
                return
            for name, versions in found.items():
                self._callback(name, versions)

    def _run(self) -> None:
        self.poll_once()
        if self._poll_wait_seconds == 0:
            return
        while not self._stopping.wait(self._poll_wait_seconds):
            self.poll_once()
