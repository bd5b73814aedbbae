"""Structures and manifest pairing, on files made by hand here (not by generators/).

The planner groups arrays by (shape, dtype, chunks, batched) and asks Tiled's HDF5
adapter for one structure per group; those documents are cached by group between
runs. A group must never stand for two different structures.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.manifests import ManifestError, ManifestPair, pairs_from_paths
from manifest_broker.catalog.plan import array_structure, plan_nodes

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
    arts = pa.table({
        "huid": ["h1"] * 4,
        "type": ["points", "events", "plain", "big"],
        "file": ["a.h5"] * 4,
        "dataset": ["/points", "/events", "/plain", "/big"],
    })  # fmt: skip
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


@pytest.mark.parametrize("cached", [False, True])
def test_every_dtype_gets_its_own_structure(tmp_path: Path, cached: bool) -> None:
    pair = _dataset(tmp_path)
    cache = tmp_path / "cache" if cached else None
    report = check_manifests([pair], tmp_path / "data", use_cache=False)
    assert report.ok, report.findings.to_pylist()
    first = _structures_by_type(plan_nodes(report.checked(), cache_dir=cache))
    # Twice: the second plan reads every structure from the cache when there is one.
    second = _structures_by_type(plan_nodes(report.checked(), cache_dir=cache))
    assert first == second
    for key in ("points", "events", "plain", "big"):
        want = array_structure(str(tmp_path / "data" / "a.h5"), f"/{key}", None)
        assert first[key] == json.loads(json.dumps(want)), key
    assert first["points"] != first["events"]
    assert first["plain"]["data_type"]["endianness"] != first["big"]["data_type"]["endianness"]
    if cached:
        assert [p.name for p in cache.iterdir()] == [p.name for p in cache.glob("structures-v*-tiled-*.json")]


def test_a_damaged_structure_cache_is_recomputed(tmp_path: Path) -> None:
    pair = _dataset(tmp_path)
    cache = tmp_path / "cache"
    report = check_manifests([pair], tmp_path / "data", use_cache=False)
    want = _structures_by_type(plan_nodes(report.checked()))
    plan_nodes(report.checked(), cache_dir=cache)
    (entry,) = cache.glob("structures-*.json")
    signatures = json.loads(entry.read_text())
    assert len(signatures) == 4
    for damage in ('{"truncated', "[1, 2]", json.dumps(dict.fromkeys(signatures, "junk"))):
        entry.write_text(damage)
        assert _structures_by_type(plan_nodes(report.checked(), cache_dir=cache)) == want
        assert json.loads(entry.read_text()) == signatures  # rewritten whole


def test_named_manifests_pair_in_any_order(tmp_path: Path) -> None:
    a = [tmp_path / "one_artifacts.parquet", tmp_path / "one_hamiltonians.parquet",
         tmp_path / "two_artifacts.parquet", tmp_path / "two_hamiltonians.parquet"]  # fmt: skip
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
