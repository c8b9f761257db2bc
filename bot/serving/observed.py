"""What the bot last saw each replica serve: (replica, model, version) -> `serving_default` signature.

A version TF Serving has loaded is never reloaded in place (reference/tfserving.md §9.10, #1822), so the
signature seen for a loaded version stays true until that version unloads. Entries are dropped as soon as
that may have happened: the bot sent a config without the version, a status showed it not AVAILABLE, or the
replica stopped answering (it may have restarted). A warm rollback uses this to skip a pre-switch round;
TF Serving still refuses to move a label to a version that is not AVAILABLE, so a stale entry cannot
move a label onto nothing (bot/serving/rollout.py falls back to waiting for the load).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from bot.core.desired import FleetConfig
from bot.core.fleet import VersionState, VersionStatus
from bot.core.signatures import Signature

_Key = tuple[str, str, int]


class Observed:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[_Key, Signature] = {}

    def get(self, replica: str, model: str, version: int) -> Signature | None:
        with self._lock:
            return self._seen.get((replica, model, version))

    def record(self, replica: str, model: str, version: int, signature: Signature | None) -> None:
        with self._lock:
            if signature is None:
                self._seen.pop((replica, model, version), None)
            else:
                self._seen[(replica, model, version)] = signature

    def note_status(self, replica: str, model: str, versions: Iterable[VersionStatus]) -> None:
        """Forget versions a status shows not AVAILABLE."""
        with self._lock:
            for v in versions:
                if v.state is not VersionState.AVAILABLE:
                    self._seen.pop((replica, model, v.version), None)

    def note_config(self, config: FleetConfig) -> None:
        """Forget versions a config that is about to be sent may unload."""
        kept = {m.name: set(m.policy.versions) if m.policy.kind == "specific" else set() for m in config.models}
        with self._lock:
            for key in [k for k in self._seen if k[2] not in kept.get(k[1], set())]:
                del self._seen[key]

    def forget_replica(self, replica: str) -> None:
        with self._lock:
            for key in [k for k in self._seen if k[0] == replica]:
                del self._seen[key]
