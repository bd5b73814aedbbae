"""Mode A: `broker locate` answers a metadata search with the locators of every
artifact (straight from the Hamiltonians' metadata), and `load_batches` reads the
same arrays with h5py that the server serves."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.modea import LocateError, load_batches, parse_query
from manifest_broker.catalog.serve import running_server
from tests.integration.small_datasets import per_file_pair
from tests.reliability.conftest import BROKER, batched_dataset

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("modea")
    base, manifests = root / "data", root / "m"
    base.mkdir()
    manifests.mkdir()
    pairs = [ManifestPair(*batched_dataset(base, manifests, "bt", 40)), per_file_pair(base, manifests)]
    catalog = str(root / "c.db")
    ingest(pairs, base, catalog, parent="lab")
    with running_server(catalog, base, log=root / "serve.log") as url:
        yield url, base, pairs, root


def _expected(base: Path, pairs: list[ManifestPair], keep) -> list[tuple]:  # type: ignore[no-untyped-def]
    """Locators computed by hand from the manifests: (key, type, file, dataset, index)."""
    rows = []
    for pair in pairs:
        hams = {h["huid"]: h for h in pq.read_table(pair.hamiltonians).to_pylist()}
        for art in pq.read_table(pair.artifacts).to_pylist():
            ham = hams[art["huid"]]
            if keep(ham):
                rows.append(
                    (ham["key"], art["type"], os.path.realpath(base / art["file"]), art["dataset"], art.get("index"))
                )
    return sorted(rows)


def test_locate_writes_the_locators_of_the_matching_hamiltonians(served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, base, pairs, _ = served
    out = tmp_path / "loc.parquet"
    done = subprocess.run(
        [*BROKER, "locate", "J1>0.5", "--url", url, "--parent", "lab", "-o", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "TILED_API_KEY": "secret"},
    )
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out)
    got = sorted(zip(*(table[c].to_pylist() for c in ("key", "type", "file", "dataset", "index"))))
    want = _expected(base, pairs, lambda h: h.get("J1") is not None and h["J1"] > 0.5)
    assert got == want and len(want) > 10
    assert {"huid", "J1", "J2"} <= set(
        table.column_names
    ) and f"{len({r[0] for r in want})} Hamiltonian(s)" in done.stdout
    everything = subprocess.run(
        [*BROKER, "locate", "--url", url, "--parent", "lab", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "TILED_API_KEY": "secret"},
    )
    assert (
        everything.returncode == 0
        and '"artifacts": ' + str(len(_expected(base, pairs, lambda h: True))) in everything.stdout
    )


def test_loaded_arrays_equal_what_the_server_serves(served) -> None:  # type: ignore[no-untyped-def]
    from tiled.client import from_uri

    from manifest_broker.catalog.modea import locate

    url, base, _, _ = served
    client = from_uri(url, api_key="secret")
    table = locate(client["lab"], ["J2<=0.7"])
    one = [a for _, arrays in load_batches(table, base_dir=base, batch_size=7, workers=1) for a in arrays]
    two_batches = list(load_batches(table, base_dir=base, batch_size=7, workers=2))
    two = [a for _, arrays in two_batches for a in arrays]
    assert len(one) == table.num_rows == sum(rows.num_rows for rows, _ in two_batches)
    keys, types = table["key"].to_pylist(), table["type"].to_pylist()
    for i, (a, b) in enumerate(zip(one, two)):
        served_array = client["lab"][keys[i]][types[i]].read()
        assert np.array_equal(a, served_array) and np.array_equal(b, served_array) and a.dtype == served_array.dtype


def test_queries_parse_or_say_how_to_write_them(served) -> None:  # type: ignore[no-untyped-def]
    from tiled.queries import Comparison, Eq

    assert isinstance(parse_query("J1>0.5"), Comparison) and isinstance(parse_query("lattice==square"), Eq)
    assert parse_query('name=="3"').value == "3" and parse_query("n==3").value == 3
    for bad in ("J1", "J1>>2", ">3", "lattice>square"):
        with pytest.raises(LocateError):
            parse_query(bad)
    url, _, _, _ = served
    wrong = subprocess.run(
        [*BROKER, "locate", "J1>>2", "--url", url],
        capture_output=True,
        text=True,
        env={**os.environ, "TILED_API_KEY": "secret"},
    )
    assert wrong.returncode == 2 and "query 'J1>>2'" in wrong.stderr and "Traceback" not in wrong.stderr


def _client_rows(node, queries: list[str]) -> list[dict]:  # type: ignore[no-untyped-def]
    """The rows as Tiled's own client search gives them: ``items()``, full node
    documents, the client's pages (what `broker locate` did before it asked for less)."""
    from manifest_broker.catalog.modea import locator_rows

    results = node
    for query in queries:
        results = results.search(parse_query(query))
    return [
        row
        for key, child in results.items()
        if child.structure_family == "container"
        for row in locator_rows(key, dict(child.metadata))
    ]


@pytest.mark.parametrize("queries", [[], ["J1>0.5"], ["J1>=0.25", "J2>0.3"], ["J==2.0"], ["J1<0"]])
def test_locate_rows_are_tiled_search_rows(served, monkeypatch: pytest.MonkeyPatch, queries: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Through the server (pages of 7, several in flight, so many page boundaries)
    and straight from the catalog: the rows of Tiled's own search, in its order."""
    from tiled.client import from_uri

    from manifest_broker.catalog import modea

    url, _, _, root = served
    monkeypatch.setattr(modea, "PAGE_LIMIT", 7)
    node = from_uri(url, api_key="secret")["lab"]
    want = modea._table(_client_rows(node, queries)).to_pylist()  # one table: every row has every column
    through_server = modea.locate(node, queries).to_pylist()
    from_catalog = modea.locate_in_catalog(str(root / "c.db"), queries, parent="lab").to_pylist()
    assert through_server == want and from_catalog == want
    assert len(want) > 0 or queries == ["J1<0"]
    by_j1 = node.sort(("J1", -1))  # a sort of the client's: the server pages by offset only
    want_sorted = modea._table(_client_rows(by_j1, queries)).to_pylist()
    assert modea.locate(by_j1, queries).to_pylist() == want_sorted
    pairs = [(r["key"], r["type"]) for r in want]
    assert sorted((r["key"], r["type"]) for r in want_sorted) == sorted(pairs)
    assert [(r["key"], r["type"]) for r in want_sorted] != pairs or len({k for k, _ in pairs}) <= 1


def test_locate_through_catalog_on_the_command_line(served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, base, pairs, root = served
    out = tmp_path / "loc.parquet"
    done = subprocess.run(
        [
            *BROKER,
            "locate",
            "J1>0.5",
            "--catalog",
            str(root / "c.db"),
            "--parent",
            "lab",
            "--base-dir",
            str(base),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out)
    got = sorted(zip(*(table[c].to_pylist() for c in ("key", "type", "file", "dataset", "index"))))
    assert got == _expected(base, pairs, lambda h: h.get("J1") is not None and h["J1"] > 0.5)
    arrays = [a for _, batch in load_batches(table, batch_size=16, workers=1) for a in batch]  # base dir recorded
    assert len(arrays) == table.num_rows
    both = subprocess.run(
        [*BROKER, "locate", "--catalog", str(root / "c.db"), "--url", url], capture_output=True, text=True
    )
    neither = subprocess.run([*BROKER, "locate"], capture_output=True, text=True)
    assert both.returncode == neither.returncode == 2 and "--catalog" in both.stderr
    missing = subprocess.run(
        [*BROKER, "locate", "--catalog", str(root / "c.db"), "--parent", "nowhere"], capture_output=True, text=True
    )
    assert missing.returncode == 1 and "nowhere" in missing.stderr and "Traceback" not in missing.stderr
