"""A loopback TCP forwarder that a test can cut off: put a database "away" from the bot processes only.

`TcpProxy(host, port).start()` listens on 127.0.0.1:`proxy.port` and forwards every connection to host:port.
`cut()` closes every open connection (both ends) and stops listening, so new connections are refused
(ECONNREFUSED, as when the server is down); `heal()` listens on the same port again. Bounded: at most
`max_connections` at once (more are accepted and closed at once), one thread per connection plus the acceptor,
all daemon threads that end by themselves at `close()` (or when the test process exits).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable

CHUNK = 65536
POLL_S = 0.2  # how often idle threads notice close()
REBIND_S = 5.0  # heal(): how long to retry binding the same port


class TcpProxy:
    """Forward 127.0.0.1:`port` to `target_host`:`target_port` until `cut()`; see the module docstring."""

    def __init__(self, target_host: str, target_port: int, *, max_connections: int = 64) -> None:
        self.target = (target_host, target_port)
        self.max_connections = max_connections
        self.port = 0
        self.accepted = 0  # connections forwarded since start (for reports)
        self.refused_while_full = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- life cycle --------------------------------------------------------------------------------------------
    def start(self) -> TcpProxy:
        self._listen()
        return self

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop for good: no listener, no connection, every thread ends within POLL_S."""
        self._closed.set()
        self.cut()
        for thread in list(self._threads):
            thread.join(2)

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    # --- faults -------------------------------------------------------------------------------------------------
    def cut(self) -> None:
        """Close every open connection and stop listening: new connections are refused until heal()."""
        with self._lock:
            listener, self._listener = self._listener, None
            doomed = set(self._open)
        if listener is not None:
            _close(listener)  # the shutdown wakes the acceptor, which then finds it closed
        for sock in doomed:
            # Only shut down: the pump thread wakes up, sees the end of both streams and closes the sockets
            # itself (closing a descriptor another thread is waiting on could hand its number to a new socket).
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def heal(self) -> None:
        """Listen on the same port again (retrying briefly if the port is not free yet)."""
        if self._closed.is_set():
            raise RuntimeError("the proxy is closed")
        if self._listener is None:
            self._listen()

    # --- inside -------------------------------------------------------------------------------------------------
    def _listen(self) -> None:
        deadline = time.monotonic() + REBIND_S
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", self.port))
                break
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sock.listen(128)
        sock.settimeout(POLL_S)
        self.port = sock.getsockname()[1]
        with self._lock:
            self._listener = sock
        self._spawn(self._accept_loop, sock, name=f"proxy-accept-{self.port}")

    def _spawn(self, target: Callable[..., None], *args: object, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        """Runs until this listener is closed (by cut() or close())."""
        while not self._closed.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by cut()
                return
            self._connect(client)

    def _connect(self, client: socket.socket) -> None:
        with self._lock:
            full = len(self._open) >= 2 * self.max_connections
        if full or self.is_cut:
            self.refused_while_full += int(full)
            _close(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _close(client)
            return
        client.settimeout(None)
        upstream.settimeout(None)
        with self._lock:
            if self._listener is None:  # cut() ran meanwhile
                doomed = True
            else:
                doomed = False
                self._open.update((client, upstream))
                self.accepted += 1
        if doomed:
            _close(client)
            _close(upstream)
            return
        self._spawn(self._pump, client, upstream, name=f"proxy-pump-{self.port}")

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copy bytes both ways until either side closes, cut() closes both, or close() is called."""
        peer = {client: upstream, upstream: client}
        try:
            while not self._closed.is_set():
                readable, _, _ = select.select([client, upstream], [], [], POLL_S)
                for sock in readable:
                    data = sock.recv(CHUNK)
                    if not data:
                        return
                    peer[sock].sendall(data)
        except (OSError, ValueError):  # closed under us by cut(): that is the point
            return
        finally:
            with self._lock:
                self._open.discard(client)
                self._open.discard(upstream)
            _close(client)
            _close(upstream)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


__all__ = ["TcpProxy"]
