"""Helpers for abusing `POST /slack/events`: raw HTTP requests (any header, chunked, oversized), byte-level
signing, every log record the process emits, and row counts of every table.

Used by tests/faults and bench/endpoint_abuse.py. `send` speaks HTTP/1.1 on a socket because urllib cannot
send a chunked body or a malformed header, and gives up with a broken pipe when a server answers 413 before
reading a large body; `send` reads that early answer instead.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import io
import logging
import select
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

FORM = "application/x-www-form-urlencoded"
RESET = 0  # the "status" of a request whose connection was closed before any answer could be read
CHUNK = 1 << 16


def sign_bytes(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's signature over the raw bytes (the driver's `sign` takes text)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def slack_headers(secret: str | None, body: bytes, *, timestamp: str | None = None) -> dict[str, str]:
    """Content type and Slack's two headers; signed with `secret`, or with a wrong key when it is None."""
    ts = str(int(time.time())) if timestamp is None else timestamp
    return {
        "Content-Type": FORM,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sign_bytes(secret or "not-the-secret", ts, body),
    }


@dataclass(frozen=True)
class Answer:
    status: int  # RESET when the connection closed before a status line arrived
    body: bytes = b""


def send(
    port: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    chunked: bool = False,
    path: str = "/slack/events",
    timeout: float = 30.0,
) -> Answer:
    """POST `body` to 127.0.0.1:port; stops sending (and reads the answer) as soon as the server answers."""
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            _send_body(sock, body, chunked)
        except OSError:
            pass  # the server refused the body half-way; its answer may still be readable
        return _read_answer(sock)


def _send_body(sock: socket.socket, body: bytes, chunked: bool) -> None:
    view = memoryview(body)
    first_wait = 0.2 if len(body) > CHUNK else 0.0  # a refusal of the Content-Length comes right after the head
    for offset in range(0, len(body), CHUNK):
        if select.select([sock], [], [], first_wait if offset == 0 else 0)[0]:
            return  # answered already (413): sending the rest would only earn a connection reset
        piece = view[offset : offset + CHUNK]
        sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
    if chunked:
        sock.sendall(b"0\r\n\r\n")


def _read_answer(sock: socket.socket) -> Answer:
    response = http.client.HTTPResponse(sock, method="POST")
    try:
        response.begin()
        return Answer(response.status, response.read())
    except (OSError, http.client.HTTPException):
        return Answer(RESET)


class CapturedLogs(logging.Handler):
    """Every record emitted while installed, formatted as a production handler would (with tracebacks)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []
        self.threads: list[tuple[int | None, str | None]] = []  # (ident, name) of the thread behind each line

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.threads.append((record.thread, record.threadName))

    @property
    def size(self) -> int:
        """Bytes these records would add to a log file."""
        return sum(len(line.encode()) + 1 for line in self.lines)

    def size_from(self, thread: int | str) -> int:
        """Bytes of the records emitted by one thread (an ident), or by threads whose name starts with a prefix:
        a request runs on the caller's thread in-process, on a cheroot worker ("CP Server Thread-N") behind the server.
        Threads that earlier tests left running may log meanwhile; they are not the requests' doing."""
        return sum(
            len(line.encode()) + 1
            for line, (ident, name) in zip(self.lines, self.threads, strict=True)
            if ident == thread or (isinstance(thread, str) and (name or "").startswith(thread))
        )

    def text(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def all_logs() -> Iterator[CapturedLogs]:
    """Capture every record at DEBUG: the root logger goes to DEBUG for the duration."""
    root = logging.getLogger()
    handler, level = CapturedLogs(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.setLevel(level)
        root.removeHandler(handler)


def row_counts(engine: sa.Engine) -> dict[str, int]:
    """Rows in every table of the database (the migrations' own bookkeeping included)."""
    with engine.connect() as conn:
        counts = {}
        for name in sa.inspect(conn).get_table_names():
            counts[name] = int(conn.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one())
        return counts


def wsgi_post(app: Any, body: bytes, headers: Mapping[str, str], *, length: str | None = "auto") -> tuple[int, bytes]:
    """Call a WSGI app in-process as the HTTP server would for a POST to /slack/events; (status, body)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/slack/events",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
    }
    if length is not None:
        environ["CONTENT_LENGTH"] = str(len(body)) if length == "auto" else length
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value
    status: list[str] = []
    chunks = app(environ, lambda s, _headers, _exc=None: status.append(s))
    return int(status[0].split()[0]), b"".join(chunks)
