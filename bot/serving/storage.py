"""Just enough filesystem for version discovery: local paths directly, URIs (s3://, gs://...) via fsspec."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from bot.core.errors import ConfigError

_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}


class Storage(Protocol):
    def list_dirs(self, path: str) -> list[str]:
        """Names (not paths) of the sub-directories of `path`; [] if it does not exist."""
        ...

    def is_file(self, path: str) -> bool: ...

    def read_bytes(self, path: str) -> bytes: ...

    def stamp(self, path: str) -> str:
        """Changes whenever the file's content may have changed (for caching parsed files)."""
        ...

    def join(self, path: str, name: str) -> str: ...


class LocalStorage:
    """Plain paths; a file:// prefix is accepted and dropped."""

    def list_dirs(self, path: str) -> list[str]:
        try:
            with os.scandir(_local(path)) as entries:
                return [e.name for e in entries if e.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def is_file(self, path: str) -> bool:
        return Path(_local(path)).is_file()

    def read_bytes(self, path: str) -> bytes:
        return Path(_local(path)).read_bytes()

    def stamp(self, path: str) -> str:
        st = Path(_local(path)).stat()
        return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"

    def join(self, path: str, name: str) -> str:
        return f"{path.rstrip('/')}/{name}"


class FsspecStorage:
    """An object store through fsspec; `fs` is an fsspec AbstractFileSystem."""

    def __init__(self, fs: Any, protocol: str) -> None:
        self._fs = fs
        self._prefix = f"{protocol}://"

    def list_dirs(self, path: str) -> list[str]:
        try:
            entries = self._fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        return [str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "directory"]

    def is_file(self, path: str) -> bool:
        return bool(self._fs.isfile(path))

    def read_bytes(self, path: str) -> bytes:
        return bytes(self._fs.cat_file(path))

    def stamp(self, path: str) -> str:
        info = self._fs.info(path)
        changed = info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("mtime") or ""
        return f"{info.get('size')}:{changed}"

    def join(self, path: str, name: str) -> str:
        return f"{path.rstrip('/')}/{name}"


def _local(path: str) -> str:
    return path.removeprefix("file://")


_LOCAL = LocalStorage()


def storage_for(base_path: str) -> Storage:
    """Local storage for plain paths and file://, fsspec for any other URI scheme."""
    protocol, sep, _ = base_path.partition("://")
    if not sep or protocol == "file":
        return _LOCAL
    try:
        import fsspec  # noqa: PLC0415  # optional dependency: only object-store base paths need it
    except ImportError:
        extra = _EXTRAS.get(protocol, "s3")
        raise ConfigError(
            base_path, [f"{protocol}:// base paths need fsspec: pip install 'modelbot[{extra}]'"]
        ) from None
    try:
        return FsspecStorage(fsspec.filesystem(protocol), protocol)
    except (ImportError, ValueError) as exc:  # e.g. s3fs missing, or an unknown protocol
        raise ConfigError(base_path, [f"cannot open {protocol}:// storage: {exc}"]) from None
