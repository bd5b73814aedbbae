"""Fixtures for the fault and load tests: hand-made batched datasets (h5py and
pyarrow directly, not the generators) and the broker run as its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from manifest_broker.catalog.manifests import ManifestPair

BROKER = [sys.executable, "-m", "manifest_broker.commandline.main"]


def batched_dataset(
    base: Path, manifests: Path, name: str, n: int, *, file: str = "shared.h5", first: int = 0, rows: int | None = None
) -> tuple[Path, Path]:
    """``n`` Hamiltonians x 2 artifacts (3n nodes), rows ``first .. first+n`` of the
    batched datasets /spectra and /xas in ``file`` (created with ``rows`` rows, default
    ``first + n``, when missing, so several datasets can share it)."""
    path = base / file
    if not path.exists():
        rows = max(rows or first + n, 1)
        rng = np.random.default_rng(0)
        with h5py.File(path, "w") as f:
            f.create_dataset("spectra", data=rng.random((rows, 8), dtype="f4"), chunks=(min(rows, 4096), 8))
            f.create_dataset("xas", data=rng.random((rows, 4)))
    huids = [f"{name}-{i:07d}" for i in range(first, first + n)]
    manifests.mkdir(parents=True, exist_ok=True)
    ham, art = manifests / f"{name}_hamiltonians.parquet", manifests / f"{name}_artifacts.parquet"
    j1 = np.linspace(0.0, 1.0, n) if n else np.array([])
    pq.write_table(pa.table({"huid": huids, "key": [f"H_{h}" for h in huids], "J1": j1, "J2": j1[::-1].copy()}), ham)
    index = np.arange(first, first + n, dtype="int64")
    pq.write_table(
        pa.table(
            {
                "huid": huids + huids,
                "type": ["rixs"] * n + ["xas"] * n,
                "file": [file] * (2 * n),
                "dataset": ["/spectra"] * n + ["/xas"] * n,
                "index": np.concatenate([index, index]),
            }
        ),
        art,
    )
    return ham, art


def warm_and_bulk(root: Path, warm: int, bulk: int) -> tuple[Path, ManifestPair, ManifestPair]:
    """A data directory under ``root`` with two datasets in files of their own: a
    small ``warm`` one (the catalog's content before a run) and the ``bulk`` one a run adds."""
    base = root / "data"
    base.mkdir()
    return (
        base,
        ManifestPair(*batched_dataset(base, root / "m", "warm", warm, file="warm.h5")),
        ManifestPair(*batched_dataset(base, root / "m", "bulk", bulk, file="bulk.h5")),
    )


def broker(*args: str, cache: Path | None = None) -> subprocess.Popen:
    """Start ``broker ARGS`` as a separate process (its own imports, its own locks)."""
    env = {**os.environ, "BROKER_CACHE_DIR": str(cache)} if cache else None
    return subprocess.Popen([*BROKER, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
