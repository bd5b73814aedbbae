"""Reads served while `broker ingest` writes: a real `tiled serve` on a catalog, client
threads listing, searching and reading arrays over HTTP (no retries, so every
failure counts), and the broker's whole CLI process ingesting into the same catalog.

Used by tests/reliability/test_readers_during_ingest.py (which asserts zero failed
requests) and by `python -m benchmarks readers` (which prints the same figures).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.serve import running_server

API_KEY = "secret"
SETTLE_SECONDS = 1.5  # reads before the ingest starts and after it ends


@dataclass
class Request:
    kind: str
    started: float
    seconds: float
    error: str | None


@dataclass
class ReadLoad:
    requests: list[Request] = field(default_factory=list)
    ingest_window: tuple[float, float] = (0.0, 0.0)
    ingest_exit: int = -1
    ingest_output: str = ""
    seen_after: int = -1  # children of the ingested parent, asked right after the commit

    def _during(self, r: Request) -> bool:
        return self.ingest_window[0] <= r.started <= self.ingest_window[1]

    @property
    def failures(self) -> list[Request]:
        return [r for r in self.requests if r.error]

    def latency(self, during: bool) -> tuple[int, float, float]:
        """(count, p50 ms, p99 ms) of requests started during (or outside) the ingest."""
        times = sorted(r.seconds * 1e3 for r in self.requests if self._during(r) == during)
        if not times:
            return 0, float("nan"), float("nan")
        p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
        return len(times), statistics.median(times), p99

    def summary(self) -> str:
        lines = []
        for label, during in (("during the ingest", True), ("outside the ingest", False)):
            n, p50, p99 = self.latency(during)
            lines.append(f"{label:<20} {n:>6} requests  p50 {p50:8.1f} ms  p99 {p99:8.1f} ms")
        lines.append(f"failed requests: {len(self.failures)} of {len(self.requests)}")
        for r in self.failures[:5]:
            lines.append(f"  {r.kind}: {r.error}")
        return "\n".join(lines)


def _reader(url: str, stop: threading.Event, out: list[Request], keys: list[str], worker: int) -> None:
    search = {
        "filter[comparison][condition][operator]": "gt",
        "filter[comparison][condition][key]": "J1",
        "filter[comparison][condition][value]": "0.5",
        "page[limit]": "20",
    }
    calls = [
        ("listing", "/api/v1/search/warm", {"page[offset]": "0", "page[limit]": "50"}),
        ("search", "/api/v1/search/warm", search),
        ("array", None, {"format": "application/octet-stream"}),
        ("root", "/api/v1/search/", {"page[limit]": "10"}),
    ]
    with httpx.Client(base_url=url, headers={"Authorization": f"Apikey {API_KEY}"}, timeout=60.0) as client:
        i = worker
        while not stop.is_set():
            kind, path, params = calls[i % len(calls)]
            if path is None:
                path = f"/api/v1/array/full/warm/{keys[i % len(keys)]}/rixs"
            started = time.perf_counter()
            error = None
            try:
                response = client.get(path, params=params)
                if response.status_code != 200:
                    error = f"HTTP {response.status_code} {response.text[:120]}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            out.append(Request(kind, started, time.perf_counter() - started, error))
            i += 1


def reads_during_ingest(
    catalog: str,
    base: Path,
    warm: ManifestPair,
    bulk: ManifestPair,
    *,
    threads: int = 4,
    log: Path | None = None,
    cache: Path | None = None,
) -> ReadLoad:
    """Ingest ``warm`` under ``warm/``, serve the catalog, and ingest ``bulk`` under
    ``bulk/`` with ``broker ingest`` (a separate process) while ``threads`` clients read."""
    ingest([warm], base, catalog, parent="warm")
    load = ReadLoad()
    stop = threading.Event()
    with running_server(catalog, base, api_key=API_KEY, log=log) as url:
        keys = httpx.get(
            f"{url}/api/v1/search/warm", params={"page[limit]": "20"}, headers={"Authorization": f"Apikey {API_KEY}"}
        ).json()["data"]
        keys = [k["id"] for k in keys]
        workers = [threading.Thread(target=_reader, args=(url, stop, load.requests, keys, w)) for w in range(threads)]
        for w in workers:
            w.start()
        time.sleep(SETTLE_SECONDS)
        env = {**os.environ, "BROKER_CACHE_DIR": str(cache)} if cache else None
        command = [
            sys.executable,
            "-m",
            "manifest_broker.commandline.main",
            "ingest",
            str(bulk.hamiltonians),
            str(bulk.artifacts),
            "--base-dir",
            str(base),
            "--catalog",
            catalog,
            "--parent",
            "bulk",
        ]
        started = time.perf_counter()
        process = subprocess.run(command, capture_output=True, text=True, env=env)
        load.ingest_window = (started, time.perf_counter())
        load.ingest_exit, load.ingest_output = process.returncode, process.stdout + process.stderr
        seen = httpx.get(
            f"{url}/api/v1/search/bulk", params={"page[limit]": "0"}, headers={"Authorization": f"Apikey {API_KEY}"}
        )
        load.seen_after = seen.json()["meta"]["count"] if seen.status_code == 200 else -1
        time.sleep(SETTLE_SECONDS)
        stop.set()
        for w in workers:
            w.join()
    return load
