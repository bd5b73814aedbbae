"""Properties over generated manifests (hypothesis), on files written by hand:

- the node planner is deterministic, and the nodes written are exactly the
  Hamiltonians + the artifacts + the parent containers created;
- any manifest set the checker accepts ingests without error, and a real `tiled serve`
  (one for the whole test, on the same catalog) serves every array equal to h5py.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.database import locate
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.plan import plan_nodes
from manifest_broker.catalog.serve import running_server
from manifest_broker.catalog.write import init_catalog, write_plan

pytestmark = pytest.mark.integration

BATCH_ROWS = 10
# type -> (file, dataset, batched)
SOURCES = {
    "rixs": ("batch.h5", "/spectra", True),
    "xas": ("batch.h5", "/xas", True),
    "sqw": ("sqw_{j}.h5", "/sqw", False),
    "dos": ("dos.h5", "/deep/dos", False),
}
PER_FILE = 4  # sqw_0.h5 .. sqw_3.h5, of different shapes and dtypes


def _files(base: Path) -> None:
    rng = np.random.default_rng(1)
    with h5py.File(base / "batch.h5", "w") as f:
        f.create_dataset("spectra", data=rng.random((BATCH_ROWS, 5), dtype="f4"), chunks=(2, 5))
        f.create_dataset("xas", data=rng.integers(-9, 9, (BATCH_ROWS, 3)).astype(">i2"))
    dtypes = ["<f8", ">f8", "<c16", "<u1"]
    for j in range(PER_FILE):
        with h5py.File(base / f"sqw_{j}.h5", "w") as f:
            data = (rng.random((j + 2, 3)) * 100).astype(dtypes[j])
            f.create_dataset("sqw", data=data, compression="gzip" if j % 2 else None)
    with h5py.File(base / "dos.h5", "w") as f:
        f.create_dataset("deep/dos", data=np.arange(7.0))


names = st.text(alphabet="abcXYZ019_-éß", min_size=1, max_size=8)
parameter = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.integers(-(2**40), 2**40), names, st.none())


@st.composite
def manifests(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(1, 6))
    keys = draw(st.lists(names, min_size=n, max_size=n, unique_by=lambda k: k.lower()))
    hams = [{"huid": f"u{i}", "key": f"H{k}", "J": draw(parameter), "label": draw(names)} for i, k in enumerate(keys)]
    arts = []
    for ham in hams:
        for t in draw(st.lists(st.sampled_from(sorted(SOURCES)), min_size=1, max_size=4, unique=True)):
            file, dataset, batched = SOURCES[t]
            arts.append(
                {
                    "huid": ham["huid"],
                    "type": t,
                    "file": file.format(j=draw(st.integers(0, PER_FILE - 1))),
                    "dataset": dataset,
                    "index": draw(st.integers(0, BATCH_ROWS - 1)) if batched else None,
                    "note": draw(st.one_of(st.none(), names)),
                }
            )
    order = draw(st.permutations(range(len(arts))))
    parent = draw(st.lists(names, min_size=0, max_size=3))
    return hams, [arts[i] for i in order], "/".join(parent)


def _write(folder: Path, hams: list[dict], arts: list[dict]) -> ManifestPair:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.Table.from_pylist(
            hams,
            schema=pa.schema(
                [
                    ("huid", pa.string()),
                    ("key", pa.string()),
                    ("J", pa.string() if any(isinstance(h["J"], str) for h in hams) else pa.float64()),
                    ("label", pa.string()),
                ]
            ),
        ),
        folder / "p_hamiltonians.parquet",
    )
    pq.write_table(
        pa.Table.from_pylist(
            arts,
            schema=pa.schema(
                [
                    ("huid", pa.string()),
                    ("type", pa.string()),
                    ("file", pa.string()),
                    ("dataset", pa.string()),
                    ("index", pa.int64()),
                    ("note", pa.string()),
                ]
            ),
        ),
        folder / "p_artifacts.parquet",
    )
    return ManifestPair(folder / "p_hamiltonians.parquet", folder / "p_artifacts.parquet")


def _json_safe(hams: list[dict]) -> list[dict]:
    if any(isinstance(h["J"], str) for h in hams):
        return [{**h, "J": None if h["J"] is None else str(h["J"])} for h in hams]
    return [{**h, "J": None if h["J"] is None else float(h["J"])} for h in hams]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("props")
    base = root / "data"
    base.mkdir()
    _files(base)
    catalog = root / "catalog.db"
    init_catalog(locate(str(catalog)))
    with running_server(str(catalog), base, log=root / "serve.log") as url:
        from tiled.client import from_uri

        yield root, base, catalog, from_uri(url, api_key="secret")


COUNTER = itertools.count()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(drawn=manifests())
def test_accepted_manifests_plan_deterministically_and_serve_every_array(served, drawn) -> None:  # type: ignore[no-untyped-def]
    root, base, catalog, client = served
    hams, arts, parent = drawn
    hams = _json_safe(hams)
    # every example goes under its own top-level container of the one served catalog
    top = f"ex{next(COUNTER)}"
    parent = f"{top}/{parent}".rstrip("/")
    pair = _write(root / top, hams, arts)
    report = check_manifests([pair], base, catalog=str(catalog), parent=parent, use_cache=False)
    assume(report.ok)
    first, second = plan_nodes(report.checked()), plan_nodes(report.checked())
    for name in ("hamiltonians", "arrays", "structures", "assets"):
        assert getattr(first, name).equals(getattr(second, name)), name
    assert first.nodes == len(hams) + len(arts)
    written = write_plan(locate(str(catalog)), first, parent=parent)
    assert written.created_nodes == len(hams) + len(arts) + len(parent.split("/"))
    node = client
    for segment in parent.split("/"):
        node = node[segment]
    by_huid = {h["huid"]: h for h in hams}
    for art in arts:
        served_array = node[by_huid[art["huid"]]["key"]][art["type"]].read()
        with h5py.File(base / art["file"], "r") as f:
            data = f[art["dataset"]][()] if art["index"] is None else f[art["dataset"]][art["index"]]
        assert served_array.dtype == data.dtype and np.array_equal(served_array, data), art
