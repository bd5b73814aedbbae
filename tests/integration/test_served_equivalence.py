"""`check` OK <=> `ingest`, `register` and the server succeed, over hand-made files of
every dtype family, shape class and filter (SQLite and PostgreSQL).

Every accepted dataset is written by the bulk writer and by the HTTP path (under
two parents of one catalog, served by a real `tiled serve`), and both serve exactly
what h5py reads (as Tiled
lays it out: a scalar or a dataset with a zero-length axis comes with a leading
axis of one). Every refused one is refused by a rule naming its row, and for the
refusals that are about what Tiled can serve, Tiled's own register() and server
fail on it too: the contract refuses nothing Tiled could serve, save ragged data
(the guide's "arrays should be rectangular").
"""

from __future__ import annotations

from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifest_broker.catalog.client import Server
from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.register import ServerTarget
from manifest_broker.catalog.serve import running_server
from manifest_broker.catalog.upload import as_tiled_serves

pytestmark = pytest.mark.integration

DTYPES = {
    "bool": np.dtype("?"),
    "i1": np.dtype("i1"),
    "i2": np.dtype("<i2"),
    "i4be": np.dtype(">i4"),
    "i8": np.dtype("<i8"),
    "u1": np.dtype("u1"),
    "u2be": np.dtype(">u2"),
    "u4": np.dtype("<u4"),
    "u8": np.dtype("<u8"),
    "f2": np.dtype("<f2"),
    "f4be": np.dtype(">f4"),
    "f8": np.dtype("<f8"),
    "c8": np.dtype("<c8"),
    "c16be": np.dtype(">c16"),
    "S7": np.dtype("S7"),
    "compound": np.dtype([("a", "<f8"), ("b", ">i4")]),
    "nested": np.dtype([("p", [("x", "<i2"), ("y", "<f4")]), ("q", "u1")]),
    "subarray_field": np.dtype([("v", "<f8", (3,))]),
    "opaque": np.dtype("V4"),
}
SHAPES = {
    "scalar": (),
    "empty": (0,),
    "empty_rows": (0, 3),
    "empty_cols": (4, 0),
    "vector": (5,),
    "matrix": (4, 3),
    "cube": (2, 3, 4),
}
# Every dtype in the shape classes that lay out differently (scalar and empty are
# stacked by Tiled, the rest split along chunks), every shape class in three dtypes
# (native, big-endian, compound): each pair that can behave differently is there.
PAIRS = sorted(
    {(d, s) for d in DTYPES for s in ("scalar", "empty_rows", "matrix")}
    | {(d, s) for d in ("f8", "i4be", "compound") for s in SHAPES}
)
# name -> (expected rule, or None when accepted)
REFUSED = {
    "compound_with_string": "dataset_dtype_unsupported",
    "unknown_filter": "dataset_filter_unavailable",
    "vlen_str": "dataset_ragged",
    "vlen_int": "dataset_ragged",
    "row_of_empty_cols": "index_out_of_range",
}


def _values(dtype: np.dtype, shape: tuple[int, ...], seed: int) -> np.ndarray:
    raw = np.random.default_rng(seed).bytes(int(np.prod(shape)) * dtype.itemsize)
    values = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if dtype.kind == "b":
        values = values.view("u1") % 2 == 1
    return values


def _build(base: Path) -> list[tuple[str, str, str, int | None]]:
    """The hand-made files; returns (name, file, dataset, index) per locator."""
    base.mkdir(parents=True)
    locators = []
    with h5py.File(base / "matrix.h5", "w") as f:
        for seed, (dname, sname) in enumerate(PAIRS):
            f[f"{dname}/{sname}"] = _values(DTYPES[dname], SHAPES[sname], seed)
            locators.append((f"{dname}_{sname}", "matrix.h5", f"/{dname}/{sname}", None))
        rows = _values(np.dtype("<f4"), (6, 7, 2), 7)
        f["batched"] = rows
        locators += [(f"row{k}", "matrix.h5", "/batched", k) for k in (0, 3, 5)]
        f["empty_cols_batched"] = np.zeros((4, 0))
        locators.append(("row_of_empty_cols", "matrix.h5", "/empty_cols_batched", 1))
        f["compound_with_string"] = np.zeros(3, [("a", "<f8"), ("s", "S5")])
        locators.append(("compound_with_string", "matrix.h5", "/compound_with_string", None))
        f.create_dataset("vlen_str", data=["a", "bb", "ccc"], dtype=h5py.string_dtype())
        f.create_dataset(
            "vlen_int", data=np.array([np.arange(2), np.arange(3)], dtype=object), dtype=h5py.vlen_dtype("i4")
        )
        locators += [("vlen_str", "matrix.h5", "/vlen_str", None), ("vlen_int", "matrix.h5", "/vlen_int", None)]
    with h5py.File(base / "filters.h5", "w") as f:
        data = _values(np.dtype("<f8"), (40, 6), 9)
        f.create_dataset("gzip", data=data, chunks=(7, 4), compression="gzip", shuffle=True, fletcher32=True)
        f.create_dataset("lzf", data=data, chunks=(9, 6), compression="lzf")
        f.create_dataset("scaleoffset", data=np.arange(240).reshape(40, 6), scaleoffset=0, chunks=(10, 6))
        f.create_dataset("blosc", data=data, chunks=(8, 3), **hdf5plugin.Blosc())
        f.create_dataset("zstd", data=data, chunks=(40, 6), **hdf5plugin.Zstd())
        # A filter no plugin provides, chunks written as if it had encoded them.
        unknown = f.create_dataset(
            "unknown_filter", shape=(10,), dtype="f8", chunks=(5,), compression=40000, allow_unknown_filter=True
        )
        for start in (0, 5):
            unknown.id.write_direct_chunk((start,), np.arange(start, start + 5, dtype="f8").tobytes()[::-1], 0)
    locators += [
        (name, "filters.h5", f"/{name}", None)
        for name in ("gzip", "lzf", "scaleoffset", "blosc", "zstd", "unknown_filter")
    ]
    return locators


def _manifests(folder: Path, name: str, locators: list[tuple[str, str, str, int | None]]) -> ManifestPair:
    folder.mkdir(parents=True, exist_ok=True)
    pair = ManifestPair(folder / f"{name}_hamiltonians.parquet", folder / f"{name}_artifacts.parquet")
    keys = [f"K_{n}" for n, *_ in locators]
    pq.write_table(pa.table({"huid": keys, "key": keys, "J": np.arange(len(keys), dtype=float)}), pair.hamiltonians)
    pq.write_table(
        pa.table(
            {
                "huid": keys,
                "type": ["a"] * len(keys),
                "file": [f for _, f, _, _ in locators],
                "dataset": [d for _, _, d, _ in locators],
                "index": pa.array([i for *_, i in locators], pa.int64()),
            }
        ),
        pair.artifacts,
    )
    return pair


def _expected(base: Path, file: str, dataset: str, index: int | None) -> np.ndarray:
    with h5py.File(base / file, "r") as f:
        value = np.asarray(f[dataset][index] if index is not None else f[dataset][()])
    return as_tiled_serves(value, index is not None)


def _assert_served(url: str, base: Path, accepted: list[tuple[str, str, str, int | None]], where: str) -> None:
    from tiled.client import from_uri

    client = from_uri(url, api_key="secret")
    for name, file, dataset, index in accepted:
        served = client[f"{where}/K_{name}/a"].read()  # one lookup for the whole path
        want = _expected(base, file, dataset, index)
        assert served.dtype == want.dtype and served.shape == want.shape, (name, served.dtype, want.dtype)
        assert np.array_equal(served, want, equal_nan=want.dtype.kind in "fc"), name


def test_check_ok_means_ingest_register_and_server_succeed(tmp_path: Path, catalog_uri: str) -> None:
    from tiled.client import from_uri

    base = tmp_path / "data"
    locators = _build(base)
    report = check_manifests([_manifests(tmp_path / "all", "all", locators)], base, use_cache=False)
    errors = {(f["rule"], f["row"]) for f in report.findings.to_pylist() if f["severity"] == "error"}
    names = [n for n, *_ in locators]
    assert {(rule, names[row]) for rule, row in errors} == {(rule, name) for name, rule in REFUSED.items()}
    accepted = [loc for loc in locators if loc[0] not in REFUSED]
    assert len(accepted) == len(PAIRS) + 3 + 5

    good = _manifests(tmp_path / "good", "good", accepted)
    run = ingest([good], base, catalog_uri, parent="bulk")
    assert run.result is not None and run.result.created_nodes == 2 * len(accepted) + 1
    with running_server(catalog_uri, base) as url:
        _assert_served(url, base, accepted, "bulk")
        # The HTTP path, through the same server, under another parent.
        done = ingest([good], base, ServerTarget(Server(url, "secret"), workers=2), parent="http")
        assert not done.result.failed and done.missing == 0
        _assert_served(url, base, accepted, "http")
        # What the contract refuses as unservable, Tiled's own path cannot serve either.
        client = from_uri(url, api_key="secret")
        with pytest.raises(Exception, match="invalid shape|fixed-type"):
            client.register(
                str(base / "matrix.h5"), key="own_compound", parameters={"dataset": "/compound_with_string"}
            )
        client.register(str(base / "filters.h5"), key="own_filter", parameters={"dataset": "/unknown_filter"})
        with pytest.raises(Exception, match="500|Internal Server Error"):
            client["own_filter"].read()
