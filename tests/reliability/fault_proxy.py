"""A fault-injecting HTTP proxy on 127.0.0.1, in front of a real `tiled serve`
(also a latency-adding one, for `python -m benchmarks register --latency-ms`).

For a seeded share of requests it answers 500 or 429 (Retry-After: 0) without
forwarding, drops the connection without an answer, or forwards the request and then
drops the connection (the server did the work, the client never hears of it: the
case where a retried create meets its own node as 409 Conflict).
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

FAULTS = ("500", "429", "drop", "forward_then_drop")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, share: float, seed: int, faults: tuple[str, ...], delay: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.delay = delay
        self.upstream = httpx.Client(base_url=upstream, timeout=60.0)
        self.share = share
        self.faults = faults
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def draw(self) -> str | None:
        with self.lock:
            self.counts["requests"] += 1
            if self.share and self.random.random() < self.share:
                fault = self.random.choice(self.faults)
                self.counts[fault] += 1
                return fault
            return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Proxy

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = self.server.draw()
        if self.server.delay:
            time.sleep(self.server.delay)  # a network's round trip
        if fault == "500":
            self._answer(500, b'{"detail":"injected"}', {"Content-Type": "application/json"})
            return
        if fault == "429":
            self._answer(429, b'{"detail":"slow down"}', {"Content-Type": "application/json", "Retry-After": "0"})
            return
        if fault == "drop":
            self._drop()
            return
        # Host is kept: Tiled builds its links from it, so the client keeps coming through here.
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "connection")}
        response = self.server.upstream.request(self.command, self.path, content=body, headers=headers)
        if fault == "forward_then_drop":
            self._drop()
            return
        self._answer(response.status_code, response.content, dict(response.headers))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


@contextmanager
def fault_proxy(
    upstream: str, share: float, *, seed: int = 0, faults: tuple[str, ...] = FAULTS, delay: float = 0.0
) -> Iterator[tuple[str, Counter[str]]]:
    """Serve the proxy for the block; yields (its URL, live counts of requests and faults).
    ``delay`` seconds are added to every request (a round trip over a network)."""
    proxy = _Proxy(upstream, share, seed, faults, delay)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}", proxy.counts
    finally:
        proxy.shutdown()
        proxy.server_close()
        proxy.upstream.close()
