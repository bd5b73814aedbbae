"""A real `tiled serve` keeps answering while `broker ingest` writes 100,000 nodes into
its catalog: zero failed requests (listings, metadata searches, array reads from four
client threads, no retries), and the new nodes are served right after the commit."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.readers import reads_during_ingest
from manifest_broker.catalog.manifests import ManifestPair
from tests.pg import new_database
from tests.reliability.conftest import warm_and_bulk

pytestmark = pytest.mark.integration
BULK = 20_000  # x 3 nodes = 60,000


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ManifestPair, ManifestPair]:
    return warm_and_bulk(tmp_path_factory.mktemp("load"), 200, BULK)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_no_read_fails_while_60k_nodes_are_ingested(
    datasets: tuple[Path, ManifestPair, ManifestPair], backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    base, warm, bulk = datasets
    catalog = (
        str(tmp_path / "served.db") if backend == "sqlite" else new_database(request.getfixturevalue("postgres_server"))
    )
    load = reads_during_ingest(catalog, base, warm, bulk, log=tmp_path / "serve.log", cache=tmp_path / "cache")
    print(f"\n{backend}:\n{load.summary()}")
    assert load.ingest_exit == 0, load.ingest_output
    assert f"created {BULK} Hamiltonians" in load.ingest_output
    during, _, _ = load.latency(during=True)
    assert during >= 20, "the readers must really have run during the ingest"
    assert {r.kind for r in load.requests} == {"listing", "search", "array", "root"}
    assert load.failures == []
    assert load.seen_after == BULK
