"""Writing a generator's two manifests, and running many small file writers on all cores."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_manifests(
    output_dir: str | Path, name: str, hamiltonians: pa.Table, artifacts: pa.Table
) -> tuple[Path, Path]:
    """Write ``<name>_hamiltonians.parquet`` and ``<name>_artifacts.parquet`` (the guide's names)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ham_path, art_path = out / f"{name}_hamiltonians.parquet", out / f"{name}_artifacts.parquet"
    pq.write_table(hamiltonians, ham_path)
    pq.write_table(artifacts, art_path)
    return ham_path, art_path


def run_parallel(task: Callable[[list[int]], None], items: Iterable[int], chunk: int = 500) -> None:
    """Run ``task`` over chunks of ``items`` on every core (file writing is GIL- and I/O-bound)."""
    values = list(items)
    chunks = [values[i : i + chunk] for i in range(0, len(values), chunk)]
    workers = min(os.cpu_count() or 1, len(chunks))
    if workers <= 1:
        for part in chunks:
            task(part)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(task, chunks))
