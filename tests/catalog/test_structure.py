"""Structures laid out from the probe equal what Tiled's own HDF5 adapter computes.

Tiled's ``register()`` opens every file with ``HDF5ArrayAdapter.from_uris``; the
planner builds the same documents from the probe's shape, chunks and data_type
(:mod:`manifest_broker.catalog.structure`). Over generated shapes (scalars and
zero-length axes included), chunkings, dtypes (big-endian, complex, bytes, compound,
nested compound, subarray fields) and rows, the two must be equal, ids included.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manifest_broker.catalog.probe import probe_locators
from manifest_broker.catalog.structure import structure_id, structure_row

DTYPES = [
    np.dtype("<f8"),
    np.dtype(">f4"),
    np.dtype("<i2"),
    np.dtype("u1"),
    np.dtype("?"),
    np.dtype("<c16"),
    np.dtype("<f2"),
    np.dtype("S7"),
    np.dtype([("a", "<f8"), ("b", ">i4")]),
    np.dtype([("p", [("x", "<i2"), ("y", "<f4")]), ("q", "u1")]),
    np.dtype([("v", "<f8", (3,))]),
]
counter = itertools.count()


@st.composite
def datasets(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...] | None, np.dtype, int | None, int]:
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(0, 9), min_size=ndim, max_size=ndim)))
    chunked = ndim > 0 and 0 not in shape and draw(st.booleans())
    chunks = tuple(draw(st.integers(1, max(s, 1))) for s in shape) if chunked else None
    dtype = draw(st.sampled_from(DTYPES))
    row = draw(st.integers(0, shape[0] - 1)) if ndim and 0 not in shape and draw(st.booleans()) else None
    return shape, chunks, dtype, row, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=datasets())
def test_structure_equals_tileds_adapter(tmp_path: Path, case: tuple) -> None:
    from tiled.adapters.hdf5 import HDF5ArrayAdapter
    from tiled.catalog.utils import compute_structure_id
    from tiled.utils import ensure_uri, safe_json_dump

    shape, chunks, dtype, row, seed = case
    path = tmp_path / f"s{next(counter)}.h5"
    # Random bytes as values: a fixed-length string scalar is served as long as its value.
    data = np.frombuffer(np.random.default_rng(seed).bytes(int(np.prod(shape)) * dtype.itemsize), dtype).reshape(shape)
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=data, chunks=chunks)
    probe = probe_locators(__import__("pyarrow").table({"file": [path.name], "dataset": ["/d"]}), tmp_path).table
    (found,) = probe.to_pylist()
    assert found["dataset_status"] == "ok", found
    kwargs = {"dataset": "/d"} | ({"slice": str(row)} if row is not None else {})
    want = dataclasses.asdict(HDF5ArrayAdapter.from_uris(ensure_uri(path), **kwargs).structure())
    sid, text = structure_row(found["shape"], found["chunks"], found["data_type"], row is not None)
    assert text == bytes(safe_json_dump(want)).decode()
    assert sid == compute_structure_id(want)


@pytest.mark.parametrize("document", [{"a": [1, 2.5, None], "b": "é"}, {"shape": [], "z": {"y": True}}])
def test_structure_id_is_tileds(document: dict) -> None:
    from tiled.catalog.utils import compute_structure_id

    assert structure_id(document) == compute_structure_id(document)
