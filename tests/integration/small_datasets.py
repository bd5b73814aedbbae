"""Small datasets written by hand (h5py and pyarrow, not generators/) for the catalog tests."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from manifest_broker.catalog.manifests import ManifestPair


def per_file_pair(base: Path, manifests: Path) -> ManifestPair:
    """Two Hamiltonians, one file per artifact (so their assets are theirs alone)."""
    for h in ("p0", "p1"):
        for t in ("sqw", "dos"):
            with h5py.File(base / f"{h}_{t}.h5", "w") as f:
                f.create_dataset("data", data=np.arange(6.0))
    pq.write_table(
        pa.table({"huid": ["p0", "p1"], "key": ["P0", "P1"], "J": [1.0, 2.0]}), manifests / "pf_hamiltonians.parquet"
    )
    pq.write_table(
        pa.table(
            {
                "huid": ["p0", "p0", "p1", "p1"],
                "type": ["sqw", "dos"] * 2,
                "file": [f"{h}_{t}.h5" for h in ("p0", "p1") for t in ("sqw", "dos")],
                "dataset": ["/data"] * 4,
            }
        ),
        manifests / "pf_artifacts.parquet",
    )
    return ManifestPair(manifests / "pf_hamiltonians.parquet", manifests / "pf_artifacts.parquet")
