"""The HTTP server under `serve` (cheroot through its public API): graceful stop keeps requests in flight, refuses
new connections, and oversized bodies are refused by the router's limit with the connection closed."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from bot.frontends.http.router import MAX_BODY_BYTES, read_body
from bot.frontends.http.wsgi_server import HttpServer


def _app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/slow":
        time.sleep(1.0)
    body = read_body(environ)
    status, text = ("413 Payload Too Large", b"too large") if body is None else ("200 OK", b"got %d" % len(body))
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
    return [text]


@pytest.fixture
def server() -> Iterator[HttpServer]:
    started = HttpServer(_app, host="127.0.0.1", port=0, threads=4, grace_s=5)
    thread = threading.Thread(target=started.run, daemon=True)
    thread.start()
    yield started
    started.stop()
    thread.join(10)


def test_stop_lets_a_request_in_flight_finish_and_refuses_new_connections(server: HttpServer) -> None:
    """A request being answered when stop() is called still gets its 200; afterwards nothing listens."""
    answers: list[int] = []

    def slow() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/slow")
        answers.append(conn.getresponse().status)

    client = threading.Thread(target=slow)
    client.start()
    time.sleep(0.3)  # the request is inside the application now
    server.stop()
    client.join(10)
    assert answers == [200]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_a_declared_oversized_body_is_refused_unread_and_the_connection_closed(server: HttpServer) -> None:
    """Content-Length above the limit -> 413 before the body is sent, with `Connection: close`."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (10 * MAX_BODY_BYTES))
        head = sock.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413")
    assert "Connection: close" in head


def test_a_chunked_oversized_body_is_refused_with_413_not_500(server: HttpServer) -> None:
    """A chunked body past the limit is cut at limit + 1 bytes by the router and answered 413 (cheroot's own chunk
    limit would raise into the application: a 500)."""
    chunk = b"x" * 65536
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(2 * MAX_BODY_BYTES // len(chunk)):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass  # the server answered and closed while the client was still sending
        try:
            head = sock.recv(4096).decode()
        except ConnectionResetError:
            return  # closed with the rest of the upload unread: a reset may overtake the 413, never a 500
    assert head.startswith("HTTP/1.1 413"), head


def test_a_body_within_the_limit_is_read_whole(server: HttpServer) -> None:
    """A body of exactly the limit is delivered to the application."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/x", body=b"y" * MAX_BODY_BYTES)
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b"got %d" % MAX_BODY_BYTES)
