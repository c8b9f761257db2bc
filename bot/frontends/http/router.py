"""A tiny WSGI router: exact (method, path) routes, plain responses, bounded request bodies."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = field(default=())

    @staticmethod
    def text(status: int, text: str) -> Response:
        return Response(status, (text + "\n").encode())

    @staticmethod
    def json(status: int, data: object) -> Response:
        return Response(status, json.dumps(data).encode(), "application/json")


Handler = Callable[[Environ], Response]


class Router:
    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], Handler] = {}
        self._mounted: dict[tuple[str, str], WsgiApp] = {}

    def add(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method, path)] = handler

    def mount(self, method: str, path: str, app: WsgiApp) -> None:
        """Hand a route to another WSGI application untouched (bolt needs the raw body for signatures)."""
        self._mounted[(method, path)] = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        key = (environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "") or "/")
        mounted = self._mounted.get(key)
        if mounted is not None:
            return mounted(environ, start_response)
        route = self._routes.get(key)
        if route is not None:
            response = route(environ)
        else:
            known = any(path == key[1] for _, path in (*self._routes, *self._mounted))
            response = Response.text(405 if known else 404, "method not allowed" if known else "not found")
        reason = HTTPStatus(response.status).phrase
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            *response.headers,
        ]
        start_response(f"{response.status} {reason}", headers)
        return [response.body]


def read_body(environ: Environ, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The request body, or None when it is larger than `limit`; never reads more than `limit` + 1 bytes.

    A Content-Length above the limit is refused before anything is read. A body without one (chunked, on a
    server that marks its input EOF-terminated, as cheroot does) is read up to limit + 1 bytes; one byte more than
    the limit means too large. An unparsable Content-Length reads as an empty body.
    """
    declared = str(environ.get("CONTENT_LENGTH") or "").strip()
    if declared:
        if not declared.isascii() or not declared.isdigit():
            return b""
        if int(declared) > limit:
            return None
        want = int(declared)
    elif environ.get("wsgi.input_terminated"):
        want = limit + 1
    else:
        return b""  # PEP 3333: without a length the input must not be read
    data = _read_up_to(environ["wsgi.input"], want)
    return None if len(data) > limit else data


def _read_up_to(stream: Any, size: int) -> bytes:
    """At most `size` bytes: one read when the input gives them at once, else until EOF."""
    data: bytes = stream.read(size)
    if not data or len(data) >= size:
        return data
    chunks = [data]
    got = len(data)
    while got < size:
        chunk = stream.read(size - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
