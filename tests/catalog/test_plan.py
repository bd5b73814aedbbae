"""Structures and manifest pairing, on files made by hand here (not by generators/).

The planner groups arrays by (shape, chunks, Tiled's data_type, batched) and lays out
one structure per group as Tiled's HDF5 adapter does. A group must never stand for
two different structures, and each must be the adapter's own.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.manifests import ManifestError, ManifestPair, pairs_from_paths
from manifest_broker.catalog.plan import plan_nodes

# Two compound types of one size (24 bytes): numpy's ``str`` is ``|V24`` for both.
POINT = np.dtype([("x", "<f8"), ("y", "<f8"), ("z", "<f8")])
EVENT = np.dtype([("t", "<i8"), ("energy", "<f4"), ("pixel", "<i4"), ("weight", "<f8")])


def _dataset(root: Path) -> ManifestPair:
    data = root / "data"
    data.mkdir(parents=True)
    with h5py.File(data / "a.h5", "w") as f:
        f["points"] = np.zeros(4, POINT)
        f["events"] = np.zeros(4, EVENT)
        f["plain"] = np.arange(4.0)
        f["big"] = np.arange(4.0).astype(">f8")
    hams = pa.table({"huid": ["h1"], "key": ["H_1"], "J": [1.0]})
    arts = pa.table(
        {
            "huid": ["h1"] * 4,
            "type": ["points", "events", "plain", "big"],
            "file": ["a.h5"] * 4,
            "dataset": ["/points", "/events", "/plain", "/big"],
        }
    )
    manifests = root / "manifests"
    manifests.mkdir()
    pq.write_table(hams, manifests / "x_hamiltonians.parquet")
    pq.write_table(arts, manifests / "x_artifacts.parquet")
    return ManifestPair(manifests / "x_hamiltonians.parquet", manifests / "x_artifacts.parquet")


def _structures_by_type(plan) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    docs = dict(zip(plan.structures["id"].to_pylist(), plan.structures["structure"].to_pylist()))
    return {
        key: json.loads(docs[sid])
        for key, sid in zip(plan.arrays["key"].to_pylist(), plan.arrays["structure_id"].to_pylist())
    }


def _adapter_structure(path: Path, dataset: str) -> dict:
    from tiled.adapters.hdf5 import HDF5ArrayAdapter
    from tiled.utils import ensure_uri

    return json.loads(
        json.dumps(dataclasses.asdict(HDF5ArrayAdapter.from_uris(ensure_uri(path), dataset=dataset).structure()))
    )


def test_every_dtype_gets_its_own_structure(tmp_path: Path) -> None:
    pair = _dataset(tmp_path)
    report = check_manifests([pair], tmp_path / "data", use_cache=False)
    assert report.ok, report.findings.to_pylist()
    planned = _structures_by_type(plan_nodes(report.checked()))
    for key in ("points", "events", "plain", "big"):
        assert planned[key] == _adapter_structure(tmp_path / "data" / "a.h5", f"/{key}"), key
    assert planned["points"] != planned["events"]
    assert planned["plain"]["data_type"]["endianness"] != planned["big"]["data_type"]["endianness"]


def test_planning_never_imports_tileds_hdf5_adapter(tmp_path: Path) -> None:
    """The cold first ingest: structures come from the probe and tiled.structures,
    not from the adapter module (which imports dask and the catalog: seconds)."""
    pair = _dataset(tmp_path)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from manifest_broker.catalog.contract import check_manifests\n"
        "from manifest_broker.catalog.manifests import ManifestPair\n"
        "from manifest_broker.catalog.plan import plan_nodes\n"
        f"pair = ManifestPair(Path({str(pair.hamiltonians)!r}), Path({str(pair.artifacts)!r}))\n"
        f"plan = plan_nodes(check_manifests([pair], Path({str(tmp_path / 'data')!r}), use_cache=False).checked())\n"
        "print(plan.structures.num_rows, sorted(m for m in sys.modules if m.startswith(('tiled.adapters', 'tiled.catalog', 'dask'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split(None, 1) == ["4", "[]\n"]


def test_named_manifests_pair_in_any_order(tmp_path: Path) -> None:
    a = [
        tmp_path / "one_artifacts.parquet",
        tmp_path / "one_hamiltonians.parquet",
        tmp_path / "two_artifacts.parquet",
        tmp_path / "two_hamiltonians.parquet",
    ]
    assert pairs_from_paths(a) == [
        ManifestPair(tmp_path / "one_hamiltonians.parquet", tmp_path / "one_artifacts.parquet"),
        ManifestPair(tmp_path / "two_hamiltonians.parquet", tmp_path / "two_artifacts.parquet"),
    ]
    # Other names pair in the order given.
    assert pairs_from_paths([tmp_path / "h.parquet", tmp_path / "a.parquet"]) == [
        ManifestPair(tmp_path / "h.parquet", tmp_path / "a.parquet")
    ]
    with pytest.raises(ManifestError, match="partner"):
        pairs_from_paths([tmp_path / "one_artifacts.parquet", tmp_path / "two_hamiltonians.parquet"])
    with pytest.raises(ManifestError, match="given twice"):
        pairs_from_paths([tmp_path / "one_artifacts.parquet", tmp_path / "one_artifacts.parquet"])
