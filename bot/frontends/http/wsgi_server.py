"""The HTTP server under `serve`: cheroot's WSGI server, driven through its public API only.

cheroot (CherryPy's server, maintained) has what `serve` needs as documented API: `prepare()` binds (port 0 gives a
free port, read back from `bind_addr`), `serve()` runs until `stop()`, and `stop()` stops accepting, closes idle
connections and waits up to `shutdown_timeout` for requests in flight. `max_request_body_size` answers 413 to a
declared Content-Length above it before reading the body and stops a chunked body at it; `max_request_header_size`
bounds the headers. cheroot writes its own errors to stderr by default; `error_log` (documented as the hook to
override) sends them to logging instead, one line, without a traceback for a client's mistake.

The body limit is the router's and the guard's (`read_body`: a declared length above it -> 413 before reading; a
chunked body read to limit + 1 bytes, never more), not cheroot's `max_request_body_size`: cheroot's chunked reader
enforces it by raising OSError into the application at chunk granularity, which would be a 500. cheroot reads no
body on its own, so nothing larger than the limit is ever buffered.
"""

from __future__ import annotations

import logging
from typing import Any

from cheroot import wsgi

log = logging.getLogger(__name__)
MAX_HEADER_BYTES = 256 * 1024  # the usual servers' and proxies' bound; Slack's headers are a few hundred bytes
LISTEN_BACKLOG = 1024  # cheroot's default of 5 drops SYNs of a burst: clients retry after 1 s (p99 of 2 s at 50)
SOCKET_TIMEOUT_S = 30  # a client that sends nothing for this long is dropped (slow-loris)
WORKER_THREAD_PREFIX = "CP Server"  # cheroot names its worker threads "CP Server Thread-N"


class _Server(wsgi.Server):
    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        # Tracebacks here come from a broken connection or a client's bad request, which the router never sees;
        # their text can hold request bytes, so only the message is logged.
        log.log(level, "http server: %s", str(msg)[:200])


class HttpServer:
    """A WSGI app served on host:port by `threads` worker threads; `run()` blocks until `stop()`."""

    def __init__(self, app: Any, *, host: str, port: int, threads: int, grace_s: int) -> None:
        self._server = _Server(
            (host, port),
            app,
            numthreads=threads,
            server_name="modelbot",
            request_queue_size=LISTEN_BACKLOG,
            timeout=SOCKET_TIMEOUT_S,
            shutdown_timeout=grace_s,
        )
        self._server.max_request_body_size = 0  # unlimited here: see the module docstring
        self._server.max_request_header_size = MAX_HEADER_BYTES
        self._server.prepare()  # binds now: a port in use fails here, in the caller, not in a thread
        self.port = int(self._server.bind_addr[1])

    def run(self) -> None:
        self._server.serve()

    def stop(self) -> None:
        """Stop accepting, close idle connections, wait up to `grace_s` for requests in flight."""
        self._server.stop()
