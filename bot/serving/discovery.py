"""Versions on disk (or object store) under a model's base_path, found the way TF Serving finds them.

A version is a sub-directory whose whole name is a decimal number (leading zeros fine, `v1` or `1.0`
ignored: reference/tfserving.md §5) and which holds a saved_model.pb; TF Serving itself only checks the
latter at load time, which is exactly why the bot checks it before asking for a load. s3:// and gs://
paths go through fsspec, an optional dependency (`pip install 'modelbot[s3]'` or `'modelbot[gcs]'`).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

from bot.core.signatures import SERVING_DEFAULT, Signature
from bot.serving.convert import signature_of
from bot.serving.protos import tf_framework_pb2 as framework
from bot.serving.storage import Storage, storage_for

log = logging.getLogger(__name__)

SAVED_MODEL = "saved_model.pb"
METADATA = "metadata.json"
SERVE_TAG = "serve"  # --saved_model_tags default of tensorflow_model_server
_VERSION_DIR = re.compile(r"[0-9]+", re.ASCII)


class LocalCatalog:
    """`core.ports.VersionCatalog` over the local filesystem, and object stores through fsspec."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._signatures: dict[tuple[str, str], Signature | None] = {}  # (file, stamp) -> parsed signature

    def versions(self, base_path: str) -> tuple[int, ...]:
        """Numeric sub-directories that hold a saved_model.pb, ascending."""
        return tuple(sorted(self._version_dirs(base_path)))

    def signature(self, base_path: str, version: int) -> Signature | None:
        """`serving_default` of the meta graph tagged "serve"; None when the version or signature is absent."""
        store, directory = self._dir_of(base_path, version)
        if directory is None:
            return None
        path = store.join(directory, SAVED_MODEL)
        key = (path, store.stamp(path))
        with self._lock:
            if key in self._signatures:
                return self._signatures[key]
        signature = _parse_signature(store.read_bytes(path), path)
        with self._lock:
            self._signatures[key] = signature
        return signature

    def metadata(self, base_path: str, version: int) -> Mapping[str, Any]:
        """base_path/<version>/metadata.json if present (a JSON object), else {}."""
        store, directory = self._dir_of(base_path, version)
        if directory is None:
            return {}
        path = store.join(directory, METADATA)
        if not store.is_file(path):
            return {}
        try:
            data = json.loads(store.read_bytes(path))
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("ignoring %s: not valid JSON (%s)", path, exc)
            return {}
        if not isinstance(data, dict):
            log.warning("ignoring %s: not a JSON object", path)
            return {}
        return data

    def _version_dirs(self, base_path: str) -> dict[int, str]:
        store = storage_for(base_path)
        found: dict[int, str] = {}
        for name in sorted(store.list_dirs(base_path)):
            if not _VERSION_DIR.fullmatch(name):
                continue
            directory = store.join(base_path, name)
            if int(name) not in found and store.is_file(store.join(directory, SAVED_MODEL)):
                found[int(name)] = directory
        return found

    def _dir_of(self, base_path: str, version: int) -> tuple[Storage, str | None]:
        return storage_for(base_path), self._version_dirs(base_path).get(version)


def _parse_signature(data: bytes, path: str) -> Signature | None:
    saved = framework.SavedModel()
    try:
        saved.ParseFromString(data)
    except Exception as exc:  # DecodeError, or RuntimeError from upb: a corrupt or half-copied file
        log.warning("cannot parse %s as a SavedModel: %s", path, exc)
        return None
    graphs = list(saved.meta_graphs)
    exact = [g for g in graphs if set(g.meta_info_def.tags) == {SERVE_TAG}]
    tagged = exact or [g for g in graphs if SERVE_TAG in g.meta_info_def.tags]
    if not tagged or SERVING_DEFAULT not in tagged[0].signature_def:
        return None
    return signature_of(tagged[0].signature_def[SERVING_DEFAULT])
