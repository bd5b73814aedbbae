"""The bulk writer's rows are Tiled's own: the same manifests registered by Tiled
itself (its client's ``create_container`` and ``Container.register()`` through a real
server, see benchmarks/tiled_loop.py) and by the bulk writer dump equal, table by table,
ignoring only ids and timestamps. On SQLite the JSON columns (metadata, structure,
parameters) are compared as stored text, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks.tiled_loop import register_like_tiled
from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.database import locate
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.plan import plan_nodes
from manifest_broker.catalog.serve import running_server
from manifest_broker.catalog.write import init_catalog, write_plan
from manifest_broker.generators.generate import synthesize
from tests.integration.catalog_dump import dump
from tests.pg import new_database

pytestmark = pytest.mark.integration


def _by_hand(root: Path) -> tuple[Path, list[ManifestPair]]:
    """HDF5 files with attributes of every common kind, a big-endian and a complex
    dataset, a compressed chunked one and a batched one, with manifests written
    directly with pyarrow."""
    base = root / "data"
    base.mkdir()
    with h5py.File(base / "attrs.h5", "w") as f:
        d = f.create_dataset("sqw", data=np.arange(20.0).reshape(4, 5))
        d.attrs["units"] = b"meV"  # bytes: Tiled decodes them to text
        d.attrs["label"] = "S(q, ω)"
        d.attrs["scale"] = 2.0
        d.attrs["count"] = np.int32(7)
        d.attrs["axes"] = np.array([1, 2, 3], dtype="i8")
        d.attrs["names"] = np.array(["q", "w"], dtype=h5py.string_dtype())
        d.attrs["flag"] = np.bool_(True)
        d.attrs["huge"] = 1e20  # orjson writes 1e+20
        d.attrs["clash"] = "from the file"
    with h5py.File(base / "endian.h5", "w") as f:
        f.create_dataset("be", data=np.arange(9.0).reshape(3, 3).astype(">f8")).attrs["order"] = "big"
        f.create_dataset("psi", data=(np.arange(6) + 1j * np.arange(6)).astype("c16"))
    with h5py.File(base / "packed.h5", "w") as f:
        f.create_dataset(
            "img", data=np.arange(64 * 32, dtype="u2").reshape(64, 32), chunks=(16, 8), compression="gzip", shuffle=True
        ).attrs["compression"] = "gzip"
    with h5py.File(base / "batch.h5", "w") as f:
        d = f.create_dataset("spectra", data=np.arange(30, dtype="f4").reshape(3, 10), chunks=(1, 10))
        d.attrs["units"] = "counts"
        d.attrs["clash"] = "from the file"
    manifests = root / "manifests"
    manifests.mkdir()
    pq.write_table(
        pa.table(
            {"huid": ["h0", "h1", "h2"], "key": ["H0", "H1", "H2"], "J": [0.5, 1.5, 2.5], "label": ["a", "b", "c"]}
        ),
        manifests / "hand_hamiltonians.parquet",
    )
    rows = [
        ("h0", "sqw", "attrs.h5", "/sqw", None, "from the manifest"),
        ("h0", "be", "endian.h5", "/be", None, None),
        ("h0", "psi", "endian.h5", "/psi", None, None),
        ("h1", "img", "packed.h5", "/img", None, None),
        ("h0", "spectrum", "batch.h5", "/spectra", 0, "from the manifest"),
        ("h1", "spectrum", "batch.h5", "/spectra", 1, None),
        ("h2", "spectrum", "batch.h5", "/spectra", 2, None),
    ]
    columns = list(zip(*rows))
    pq.write_table(
        pa.table(
            {
                "huid": columns[0],
                "type": columns[1],
                "file": columns[2],
                "dataset": columns[3],
                "index": pa.array(columns[4], pa.int64()),
                "clash": pa.array(columns[5], pa.string()),
            }
        ),
        manifests / "hand_artifacts.parquet",
    )
    return base, [ManifestPair(manifests / "hand_hamiltonians.parquet", manifests / "hand_artifacts.parquet")]


@pytest.fixture(scope="module")
def by_hand(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ManifestPair]]:
    return _by_hand(tmp_path_factory.mktemp("hand"))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ManifestPair]]:
    root = tmp_path_factory.mktemp("mixed")
    for layout, n in (("spinwave", 3), ("edrixs", 4), ("vdp", 2)):
        synthesize(layout, root, n, seed=5)
    pairs = [
        ManifestPair(
            root / "manifests" / f"{name}_hamiltonians.parquet", root / "manifests" / f"{name}_artifacts.parquet"
        )
        for name in ("spinwave", "edrixs", "vdp")
    ]
    return root / "data", pairs


def _both(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest, base: Path, pairs: list[ManifestPair], parent: str
) -> tuple[dict, dict]:
    """Dumps of Tiled's own registration and of the bulk writer, same manifests."""
    if backend == "sqlite":
        via_tiled, via_bulk = str(tmp_path / "tiled.db"), str(tmp_path / "bulk.db")
    else:
        server = request.getfixturevalue("postgres_server")
        via_tiled, via_bulk = new_database(server), new_database(server)
    assert init_catalog(locate(via_tiled)) and init_catalog(locate(via_bulk))
    with running_server(via_tiled, base, log=tmp_path / "serve.log") as url:
        from tiled.client import from_uri

        created = register_like_tiled(from_uri(url, api_key="secret"), pairs, base, parent)
    written = write_plan(locate(via_bulk), plan_nodes(check_manifests(pairs, base).checked()), parent=parent)
    assert written.created_nodes == created
    return dump(via_tiled), dump(via_bulk)


def _assert_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for table in a:
        assert a[table] == b[table], f"table {table} differs"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_attributes_dtypes_and_batches_match_tiled_register(
    by_hand: tuple[Path, list[ManifestPair]], tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    base, pairs = by_hand
    tiled_side, bulk_side = _both(tmp_path, backend, request, base, pairs, "facility")
    _assert_equal(tiled_side, bulk_side)
    metadata = {path: json.loads(meta) for path, _, meta, _ in tiled_side["nodes"]}
    sqw = metadata["/facility/H0/sqw"]
    # HDF5 attributes are in the array's metadata, the manifest's columns on top.
    assert sqw["units"] == "meV" and sqw["scale"] == 2.0 and sqw["axes"] == [1, 2, 3] and sqw["names"] == ["q", "w"]
    assert sqw["clash"] == "from the manifest" and metadata["/facility/H1/spectrum"]["clash"] is None
    assert metadata["/facility/H1/img"] == {"compression": "gzip", "clash": None}
    structures = [json.loads(s) for _, s in tiled_side["structures"]]
    assert {s["data_type"]["endianness"] for s in structures} >= {"big", "little"}
    assert {s["data_type"]["kind"] for s in structures} == {"c", "f", "u"}  # complex, float, unsigned
    if backend == "sqlite":
        # byte for byte: compact, as Tiled's orjson writes it
        stored = {path: meta for path, _, meta, _ in tiled_side["nodes"]}
        compact = lambda text: json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)  # noqa: E731
        assert '"huge":1e+20' in stored["/facility/H0/sqw"]
        assert all(compact(text) == text for text in [*stored.values(), *(s for _, s in tiled_side["structures"])])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_generated_layouts_match_tiled_register(
    mixed: tuple[Path, list[ManifestPair]], tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    base, pairs = mixed
    tiled_side, bulk_side = _both(tmp_path, backend, request, base, pairs, "facility/run1")
    _assert_equal(tiled_side, bulk_side)
    # the comparison covered real content
    assert len(tiled_side["nodes"]) == 1 + 2 + 9 + 36 and len(tiled_side["structures"]) >= 5
    assert any('"slice":"3"' in row[3].replace(" ", "") for row in tiled_side["data_sources"])
    assert {row[2] for row in tiled_side["closure"]} == {0, 1, 2, 3, 4}
