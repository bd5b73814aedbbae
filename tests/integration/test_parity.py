"""The bulk writer's rows are indistinguishable from Tiled's own: the same manifests
registered through a real server (tiled.client) and through the writer dump equal,
table by table, ignoring only ids and timestamps."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifest_broker.catalog import locate
from manifest_broker.contract import check_manifests
from manifest_broker.generate import synthesize
from manifest_broker.manifests import ManifestPair
from manifest_broker.plan import plan_nodes
from manifest_broker.register import register_plan
from manifest_broker.serve import running_server
from manifest_broker.write import init_catalog, write_plan
from tests.integration.catalog_dump import dump
from tests.integration.conftest import new_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ManifestPair]]:
    root = tmp_path_factory.mktemp("mixed")
    for layout, n in (("spinwave", 3), ("edrixs", 4), ("vdp", 2)):
        synthesize(layout, root, n, seed=5)
    pairs = [ManifestPair(root / "manifests" / f"{l}_hamiltonians.parquet", root / "manifests" / f"{l}_artifacts.parquet")
             for l in ("spinwave", "edrixs", "vdp")]  # fmt: skip
    return root / "data", pairs


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_bulk_rows_equal_tiled_rows(mixed: tuple[Path, list[ManifestPair]], tmp_path: Path, backend: str,
                                    request: pytest.FixtureRequest) -> None:  # fmt: skip
    base, pairs = mixed
    if backend == "sqlite":
        via_tiled, via_bulk = str(tmp_path / "tiled.db"), str(tmp_path / "bulk.db")
    else:
        server = request.getfixturevalue("postgres_server")
        via_tiled, via_bulk = new_database(server), new_database(server)
    plan = plan_nodes(check_manifests(pairs, base))
    assert init_catalog(locate(via_tiled)) and init_catalog(locate(via_bulk))
    with running_server(via_tiled, base, log=tmp_path / "serve.log") as url:
        from tiled.client import from_uri

        result = register_plan(from_uri(url, api_key="secret"), plan, parent="facility/run1")
    assert result.created_hamiltonians == 3 + 4 + 2 and result.created_arrays == 6 + 8 + 22
    written = write_plan(locate(via_bulk), plan, parent="facility/run1")
    assert written.created_nodes == 2 + 9 + 36

    a, b = dump(via_tiled), dump(via_bulk)
    for table in a:
        assert a[table] == b[table], f"table {table} differs"
    # the comparison covered real content
    assert len(a["nodes"]) == 1 + 2 + 9 + 36 and len(a["structures"]) >= 5
    assert any('"slice": "3"' in row[3] for row in a["data_sources"])
    assert {row[2] for row in a["closure"]} == {0, 1, 2, 3, 4}
