"""The HDF5 probe: one open per file, both cores, a cache keyed by path, size and mtime."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa

from manifest_broker.catalog.probe import PROBE_SCHEMA, PROBE_VERSION, probe_locators


def _files(base: Path, n: int) -> pa.Table:
    for i in range(n):
        with h5py.File(base / f"f{i:04d}.h5", "w") as f:
            f.create_dataset("a", data=np.zeros((4, 3), "f4"), chunks=(2, 3))
            f.create_dataset("b", data=np.arange(5.0))
    return pa.table({"file": [f"f{i:04d}.h5" for i in range(n) for _ in "ab"], "dataset": ["/a", "/b"] * n})


def test_probe_describes_datasets(tmp_path: Path) -> None:
    locators = _files(tmp_path, 3)
    result = probe_locators(locators, tmp_path, cache_dir=None)
    assert result.table.schema == PROBE_SCHEMA
    rows = {(r["file"], r["dataset"]): r for r in result.table.to_pylist()}
    a = rows[("f0000.h5", "/a")]
    assert (a["shape"], a["dtype"], a["chunks"], a["ragged"]) == ([4, 3], "<f4", [2, 3], False)
    assert rows[("f0001.h5", "/b")]["shape"] == [5] and rows[("f0001.h5", "/b")]["dtype"] == "<f8"
    assert result.files == 3 and result.opened == 3


def test_process_pool_gives_the_same_answer(tmp_path: Path) -> None:
    locators = _files(tmp_path, 300)  # above the pool threshold
    pooled = probe_locators(locators, tmp_path, cache_dir=None, workers=2).table
    inline = probe_locators(locators, tmp_path, cache_dir=None, workers=1).table
    assert pooled.equals(inline) and pooled.num_rows == 600


def test_cache_reopens_only_changed_files(tmp_path: Path) -> None:
    base, cache = tmp_path / "data", tmp_path / "cache"
    base.mkdir()
    locators = _files(base, 20)
    cache.mkdir()
    (cache / "probe-v1-0123456789abcdef.parquet").write_bytes(b"left by an older broker")
    first = probe_locators(locators, base, cache_dir=cache)
    assert first.opened == 20
    assert [p.name.split("-")[1] for p in cache.iterdir()] == [f"v{PROBE_VERSION}"]  # stale versions removed
    second = probe_locators(locators, base, cache_dir=cache)
    assert second.opened == 0 and second.table.equals(first.table)
    with h5py.File(base / "f0007.h5", "w") as f:  # rewritten with another shape
        f.create_dataset("a", data=np.zeros((9, 3), "f8"))
        f.create_dataset("b", data=np.arange(5.0))
    os.utime(base / "f0007.h5", ns=(1, 10**18))
    third = probe_locators(locators, base, cache_dir=cache)
    assert third.opened == 1
    row = [r for r in third.table.to_pylist() if r["file"] == "f0007.h5" and r["dataset"] == "/a"][0]
    assert row["shape"] == [9, 3] and row["dtype"] == "<f8"
    # a dataset not asked for before is probed even though the file is unchanged
    more = pa.concat_tables([locators, pa.table({"file": ["f0001.h5"], "dataset": ["/c"]})])
    fourth = probe_locators(more, base, cache_dir=cache)
    assert fourth.opened == 1
    assert [r["dataset_status"] for r in fourth.table.to_pylist() if r["dataset"] == "/c"] == ["missing"]


def test_damaged_cache_is_ignored(tmp_path: Path) -> None:
    base, cache = tmp_path / "data", tmp_path / "cache"
    base.mkdir()
    locators = _files(base, 2)
    probe_locators(locators, base, cache_dir=cache)
    for path in cache.iterdir():
        path.write_bytes(b"garbage")
    again = probe_locators(locators, base, cache_dir=cache)
    assert again.opened == 2 and again.table.num_rows == 4


def test_attributes_become_json_as_tiled_sends_them(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "a.h5", "w") as f:
        d = f.create_dataset("x", data=np.zeros(3))
        d.attrs["units"] = b"meV"
        d.attrs["scale"] = np.float32(0.5)
        d.attrs["shape_hint"] = np.array([[1, 2], [3, 4]], "i2")
        d.attrs["missing"] = np.nan  # JSON has no NaN: Tiled's client sends null
        f.create_dataset("plain", data=np.zeros(3))
        f.create_dataset("refs", data=np.zeros(3)).attrs["link"] = f["x"].ref  # an object reference
    table = probe_locators(
        pa.table({"file": ["a.h5"] * 3, "dataset": ["/x", "/plain", "/refs"]}), tmp_path, cache_dir=None
    ).table
    rows = {r["dataset"]: r for r in table.to_pylist()}
    assert rows["/x"]["attrs"] == '{"missing":null,"scale":0.5,"shape_hint":[[1,2],[3,4]],"units":"meV"}'
    assert rows["/plain"]["attrs"] is None and rows["/plain"]["dataset_status"] == "ok"
    assert rows["/refs"]["dataset_status"] == "attrs_unusable" and "link" not in (rows["/refs"]["attrs"] or "")
    assert "cannot become JSON metadata" in rows["/refs"]["dataset_message"]
