"""`python -m benchmarks facility`: the paths a facility takes, at 10^5, 10^6 and
10^7 nodes, in one table from one run (issue #25).

Per size (the `facility` synthetic layout: Hamiltonians batched in a few large
files, two artifacts each, so nodes = 3 x Hamiltonians): `broker synth`, `broker
check`, `broker ingest` into SQLite and into PostgreSQL (each a process of its own,
wall time and peak RSS measured by benchmarks/launch.py), the catalogs' sizes, the
latency of a one-parameter range search through `broker serve`'s stock Tiled
(count, and the first page of full node documents as tiled.client asks for it) on
SQLite and on PostgreSQL with and without the broker's indexes, `broker locate`
through the server and through `--catalog`, and `load_batches` of what it found.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BROKER = [sys.executable, "-m", "manifest_broker.commandline.main"]
NARROW = ("tenDq", 2.49)  # about 0.5% of the Hamiltonians: where an index pays
LOCATE = "tenDq>2.0"  # about 25% of them: `broker locate` of a large answer


def _search_seconds(url: str, key: str, value: float, repeats: int = 3) -> tuple[float, float, int]:
    """Median seconds of the exact count and of the first page (100 full node
    documents, what tiled.client's first request gets) of ``Key(key) > value``."""
    import httpx
    from tiled.client.container import _queries_to_params
    from tiled.queries import Key

    params = _queries_to_params(Key(key) > value)
    headers = {"Authorization": "Apikey secret", "Accept": "application/json"}
    counts, pages, found = [], [], 0
    with httpx.Client(base_url=url, headers=headers, timeout=600) as http:
        http.get("/api/v1/search/lab", params={**params, "page[limit]": 100}).raise_for_status()  # warm, not counted
        for _ in range(repeats):
            t0 = time.perf_counter()
            found = (
                http.get("/api/v1/search/lab", params={**params, "fields": "count", "page[limit]": 0})
                .raise_for_status()
                .json()["meta"]["count"]
            )
            counts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            http.get("/api/v1/search/lab", params={**params, "page[limit]": 100}).raise_for_status()
            pages.append(time.perf_counter() - t0)
    return statistics.median(counts), statistics.median(pages), found


def _size(catalog: str) -> int:
    if "://" not in catalog:
        return sum(os.path.getsize(p) for p in (catalog, catalog + "-wal") if os.path.exists(p))
    import psycopg

    with psycopg.connect(catalog) as conn:
        return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]


def run_size(nodes: int, workdir: Path, pg_server: str, rows: list[tuple[str, dict[int, str]]]) -> dict[str, Any]:
    from benchmarks.cases import _launched
    from benchmarks.measure import measured
    from manifest_broker.catalog.modea import load_batches
    from manifest_broker.catalog.serve import running_server
    from tests.pg import new_database

    hams = -(-nodes // 3)
    nodes = 3 * hams
    root = workdir / f"facility-{hams}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    data, manifests = root / "data", root / "manifests"
    out: dict[str, Any] = {"nodes": nodes}

    def record(label: str, text: str) -> None:
        for name, values in rows:
            if name == label:
                values[nodes] = text
                return
        rows.append((label, {nodes: text}))

    seconds, peak, _ = _launched([*BROKER, "synth", "facility", str(root), "-n", str(hams)])
    record("synth (s, nodes/s, peak RSS)", f"{seconds:.1f} s, {nodes / seconds:,.0f}/s, {peak:,.0f} MiB")
    seconds, peak, _ = _launched([*BROKER, "check", str(manifests), "--base-dir", str(data), "--no-cache", "--json"])
    record("check (s, nodes/s, peak RSS)", f"{seconds:.1f} s, {nodes / seconds:,.0f}/s, {peak:,.0f} MiB")

    catalogs = {"SQLite": str(root / "catalog.db"), "PostgreSQL": new_database(pg_server)}
    for name, catalog in catalogs.items():
        seconds, peak, stdout = _launched(
            [
                *BROKER,
                "ingest",
                str(manifests),
                "--base-dir",
                str(data),
                "--catalog",
                catalog,
                "--parent",
                "lab",
                "--json",
            ]
        )
        timings = json.loads(stdout)["timings"]
        write = timings["plan"] + timings["write"]
        record(f"ingest {name}: whole run (s, peak RSS)", f"{seconds:.1f} s, {peak:,.0f} MiB")
        record(f"ingest {name}: plan + write", f"{write:.1f} s, {nodes / write:,.0f} nodes/s")
        if "indexes" in timings:
            record(f"ingest {name}: indexes built", f"{timings['indexes']:.1f} s")
        record(f"catalog size {name}", f"{_size(catalog) / 2**20:,.0f} MiB ({_size(catalog) / nodes:,.0f} B/node)")

    env = {**os.environ, "TILED_API_KEY": "secret"}
    for name, catalog in catalogs.items():
        with running_server(catalog, data, log=root / f"serve-{name}.log") as url:
            count, page, found = _search_seconds(url, *NARROW)
            label = "with indexes" if name == "PostgreSQL" else "scan"
            record(
                f"search {NARROW[0]}>{NARROW[1]} {name} {label}: count, first page",
                f"{count:.3f} s, {page:.3f} s ({found:,} found)",
            )
            if name == "PostgreSQL":
                _launched([*BROKER, "index", "drop", "--all", "--catalog", catalog])
                count, page, found = _search_seconds(url, *NARROW)
                record(
                    f"search {NARROW[0]}>{NARROW[1]} {name} without: count, first page", f"{count:.3f} s, {page:.3f} s"
                )
                _launched(
                    [*BROKER, "index", "create", "F2_dd", "F4_dd", "tenDq", "zeta_d", "Gam_c", "--catalog", catalog]
                )
            located = root / f"located-{name}.parquet"
            t0 = time.perf_counter()
            _launched(
                [
                    *BROKER,
                    "locate",
                    LOCATE,
                    "--url",
                    url,
                    "--parent",
                    "lab",
                    "--base-dir",
                    str(data),
                    "-o",
                    str(located),
                ],
                env=env,
            )
            seconds = time.perf_counter() - t0
            import pyarrow.parquet as pq

            table = pq.read_table(located)
            hits = table.num_rows // 2
            record(f"locate '{LOCATE}' --url ({name} server)", f"{seconds:.1f} s, {hits:,} Hamiltonians")
        t0 = time.perf_counter()
        _launched([*BROKER, "locate", LOCATE, "--catalog", catalog, "--parent", "lab", "-o", str(located)])
        seconds = time.perf_counter() - t0
        record(f"locate '{LOCATE}' --catalog ({name})", f"{seconds:.1f} s")
    with measured("load") as load_m:
        loaded = sum(len(arrays) for _, arrays in load_batches(table, base_dir=data, batch_size=4096, workers=2))
    record(
        "load_batches of the located rows (2 workers)", f"{load_m.seconds:.1f} s, {loaded / load_m.seconds:,.0f} rows/s"
    )
    shutil.rmtree(root, ignore_errors=True)  # a 10^7 catalog is gigabytes
    return out


def print_table(rows: list[tuple[str, dict[int, str]]], sizes: list[int]) -> None:
    header = "| what | " + " | ".join(f"{n:,} nodes" for n in sizes) + " |"
    print(header)
    print("|---|" + "---|" * len(sizes))
    for label, values in rows:
        print(f"| {label} | " + " | ".join(values.get(n, "-") for n in sizes) + " |")
    sys.stdout.flush()
