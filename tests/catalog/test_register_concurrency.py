"""The register path's adaptive concurrency (AIMD), without a server: what the
limit does on each answer, and that no more requests than the limit are in flight."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from manifest_broker.catalog.register import Concurrency


def _answer(status: int) -> SimpleNamespace:
    return SimpleNamespace(status_code=status)


def test_halves_on_overload_and_grows_back_one_at_a_time() -> None:
    c = Concurrency(8, window=3)
    c.observe(_answer(500))
    assert c.limit == 4
    c.observe(_answer(429))
    c.observe(_answer(503))
    assert c.limit == 1 and c.lowest == 1
    c.observe(_answer(500))
    assert c.limit == 1  # never below one
    for _ in range(3 * 7):
        c.observe(_answer(200))
    assert c.limit == 8  # +1 per window of good answers, up to where it started
    for _ in range(30):
        c.observe(_answer(201))
    assert c.limit == 8 and c.lowest == 1
    c.observe(_answer(404))  # a client error is the request's fault, not the server's load
    assert c.limit == 8


def test_never_more_in_flight_than_the_limit() -> None:
    c = Concurrency(4)
    c.observe(_answer(500))  # limit 2
    in_flight, peak, lock = 0, 0, threading.Lock()

    def request() -> None:
        nonlocal in_flight, peak
        with c.slot():
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            time.sleep(0.01)
            with lock:
                in_flight -= 1

    threads = [threading.Thread(target=request) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 2
