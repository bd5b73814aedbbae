"""Metadata indexes (#25): on PostgreSQL the broker's index serves the very
statement Tiled's catalog adapter issues for ``Key(col) > x`` (captured from
Tiled's own engine, then ``EXPLAIN``ed with its own parameters); on SQLite no such
index can serve the range, and the broker creates none."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from manifest_broker.catalog.database import locate
from manifest_broker.catalog.index import IndexRefused, create_indexes, index_name, list_indexes
from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.write import CatalogTarget
from tests.pg import new_database
from tests.reliability.conftest import BROKER, batched_dataset

pytestmark = pytest.mark.integration

HAMILTONIANS = 3000  # 9,000 nodes: enough for the planner to prefer an index for a narrow range


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ManifestPair]:
    root = tmp_path_factory.mktemp("index")
    (root / "data").mkdir()
    return root / "data", ManifestPair(*batched_dataset(root / "data", root / "m", "bt", HAMILTONIANS))


def tiled_search(uri: str, query: Any, parent: str = "lab") -> list[tuple[str, Any]]:
    """The statements Tiled's catalog adapter sends to the database for a first page
    and an exact count of ``query`` under ``parent``, as its engine sends them, each
    with the plan the database makes for it with those very parameters."""

    async def run() -> list[tuple[str, Any]]:
        from tiled.catalog import from_uri

        adapter = from_uri(locate(uri).tiled_uri)
        captured: list[tuple[str, Any]] = []

        @sa.event.listens_for(adapter.context.engine.sync_engine, "before_cursor_execute")
        def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            if "FROM nodes" in statement and "metadata" in statement and "WHERE nodes.parent" in statement:
                captured.append((statement, parameters))

        try:
            node = (await adapter.lookup_adapter([parent])).search(query)
            await node.keys_range(0, 300)
            await node.exact_len()
            plans = []
            async with adapter.context.session() as db:
                raw = (await (await db.connection()).get_raw_connection()).driver_connection
                for statement, parameters in captured:
                    if adapter.context.engine.dialect.name == "postgresql":
                        rows = await raw.fetch("EXPLAIN " + statement, *parameters)
                        plans.append((statement, "\n".join(r[0] for r in rows)))
                    else:
                        cursor = await raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)
                        plans.append((statement, "\n".join(str(r[-1]) for r in await cursor.fetchall())))
            return plans
        finally:
            await adapter.context.engine.dispose()

    return asyncio.run(run())


def _broker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BROKER, *args], capture_output=True, text=True)


def test_postgresql_plans_tiled_range_search_through_the_index(
    data: tuple[Path, ManifestPair], postgres_server: str
) -> None:
    from tiled.queries import Key

    base, pair = data
    uri = new_database(postgres_server)
    run = ingest([pair], base, uri, parent="lab")
    assert run.indexes == ["J1", "J2"]  # the Hamiltonians' numeric parameters, by default
    listed = json.loads(_broker("index", "list", "--catalog", uri, "--json").stdout)
    assert [(i["name"], i["key"]) for i in listed["indexes"]] == sorted((index_name(k), k) for k in ("J1", "J2"))
    plans = tiled_search(uri, Key("J1") > 0.995)
    assert len(plans) == 2  # the first page and the count
    for statement, plan in plans:
        assert "(nodes.metadata #> $" in statement  # Tiled's own expression, path bound
        assert index_name("J1") in plan, plan
    for query in (Key("J2") <= 0.004, Key("J1") >= 0.996):
        assert all(index_name(query.key) in plan for _, plan in tiled_search(uri, query))

    dropped = _broker("index", "drop", "J1", "--catalog", uri, "--json")
    assert json.loads(dropped.stdout) == {"dropped": [index_name("J1")]}
    for _, plan in tiled_search(uri, Key("J1") > 0.995):
        assert "broker_ix_" not in plan  # the same statement, now without an index to use
    assert [i.key for i in list_indexes(locate(uri))] == ["J2"]
    missing = _broker("index", "drop", "nope", "--catalog", uri)
    assert missing.returncode == 1 and "no broker index for 'nope'" in missing.stderr


def test_indexes_survive_delete_reingest_and_tiled_upgrade(
    data: tuple[Path, ManifestPair], postgres_server: str
) -> None:
    base, pair = data
    uri = new_database(postgres_server)
    ingest([pair], base, uri, parent="lab")
    created = _broker("index", "create", "J1", "nested.depth", "--catalog", uri)
    assert created.returncode == 0, created.stderr
    before = list_indexes(locate(uri))
    assert [i.key for i in before] == sorted(["J1", "J2", "nested.depth"], key=index_name)
    deleted = _broker("delete", "lab", "--catalog", uri, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert list_indexes(locate(uri)) and [i.name for i in list_indexes(locate(uri))] == [i.name for i in before]
    ingest([pair], base, uri, parent="lab")
    assert [(i.name, i.definition) for i in list_indexes(locate(uri))] == [(i.name, i.definition) for i in before]
    tiled = Path(sys.executable).with_name("tiled")
    upgraded = subprocess.run(
        [str(tiled), "catalog", "upgrade-database", locate(uri).tiled_uri], capture_output=True, text=True
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert [(i.name, i.definition) for i in list_indexes(locate(uri))] == [(i.name, i.definition) for i in before]
    dropped = json.loads(_broker("index", "drop", "--all", "--catalog", uri, "--json").stdout)
    assert sorted(dropped["dropped"]) == sorted(i.name for i in before) and not list_indexes(locate(uri))


def test_sqlite_cannot_use_an_index_for_tiled_range_search(data: tuple[Path, ManifestPair], tmp_path: Path) -> None:
    """Why the broker creates no index on SQLite: Tiled binds the JSON path, and
    SQLite matches an expression index only against the literal expression. With an
    index made by hand, Tiled's statement still searches by ``parent = ?`` alone; the same
    statement with the path written in uses the range too."""
    from tiled.queries import Key

    base, pair = data
    catalog = str(tmp_path / "c.db")
    run = ingest([pair], base, catalog, parent="lab")
    assert run.indexes == []  # none by default on SQLite
    refused = _broker("index", "create", "J1", "--catalog", catalog)
    assert refused.returncode == 1 and "SQLite cannot use a metadata index" in refused.stderr
    with pytest.raises(IndexRefused):
        create_indexes(locate(catalog), ["J1"])
    with sqlite3.connect(catalog) as con:
        assert not con.execute("SELECT name FROM sqlite_master WHERE name LIKE 'broker_ix_%'").fetchall()
        con.execute("""CREATE INDEX broker_ix_by_hand ON nodes (parent, json_extract(metadata, '$."J1"'))""")
    plans = tiled_search(catalog, Key("J1") > 0.995)
    assert len(plans) == 2
    page_statement, page_plan = plans[0]
    assert "JSON_EXTRACT(nodes.metadata, ?) > ?" in page_statement  # the path is a bound parameter
    # parent = ? alone (through Tiled's ix_nodes_parent, or the new index's first column):
    # every child of the container is read and the range tested row by row
    assert "(parent=?)" in page_plan and ">?" not in page_plan, page_plan
    literal = page_statement.replace("JSON_EXTRACT(nodes.metadata, ?)", """json_extract(nodes.metadata, '$."J1"')""")
    with sqlite3.connect(catalog) as con:
        params = (1, 0.995, 300, 0)
        detail = " ".join(r[-1] for r in con.execute("EXPLAIN QUERY PLAN " + literal, params))
    assert "broker_ix_by_hand (parent=? AND <expr>>?)" in detail, detail
    listed = json.loads(_broker("index", "list", "--catalog", catalog, "--json").stdout)
    assert [i["name"] for i in listed["indexes"]] == ["broker_ix_by_hand"]
    assert _broker("index", "drop", "--all", "--catalog", catalog).returncode == 0
    assert not list_indexes(locate(catalog))
    os.remove(catalog)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_chunked_plan_writes_the_same_catalog(
    data: tuple[Path, ManifestPair],
    tmp_path: Path,
    backend: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above PLAN_CHUNK Hamiltonians the plan is made chunk by chunk while the one
    transaction writes: the catalog is the one a single plan writes, a re-run adds
    nothing, and a failure in a later chunk leaves nothing of the earlier ones."""
    from manifest_broker.catalog import ingest as ingest_module
    from manifest_broker.catalog import write
    from tests.integration.catalog_dump import dump, integrity_problems

    base, pair = data

    def fresh(name: str) -> str:
        if backend == "sqlite":
            return str(tmp_path / f"{name}.db")
        return new_database(request.getfixturevalue("postgres_server"))

    whole, chunked = fresh("whole"), fresh("chunked")
    ingest([pair], base, CatalogTarget(whole, indexes=False), parent="lab")
    monkeypatch.setattr(ingest_module, "PLAN_CHUNK", 700)  # 3,000 Hamiltonians: 5 chunks, the last one short
    run = ingest([pair], base, CatalogTarget(chunked, indexes=False), parent="lab")
    assert run.plan is None and run.result is not None and run.result.created_nodes == 3 * HAMILTONIANS + 1
    assert dump(chunked) == dump(whole) and not any(integrity_problems(chunked).values())
    again = ingest([pair], base, CatalogTarget(chunked, indexes=False), parent="lab")
    assert again.result is not None and again.result.created_nodes == 0
    assert again.result.existing_hamiltonians == HAMILTONIANS and again.result.existing_arrays == 2 * HAMILTONIANS

    failing = fresh("failing")
    calls = {"n": 0}
    real = write._write_chunk

    def third_fails(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("stopped in the third chunk")
        return real(*args, **kwargs)

    monkeypatch.setattr(write, "_write_chunk", third_fails)
    with pytest.raises(RuntimeError, match="third chunk"):
        ingest([pair], base, CatalogTarget(failing, indexes=False), parent="lab")
    from manifest_broker.catalog.database import existing_keys

    assert existing_keys(failing, "lab").num_rows == 0  # the two chunks written before are rolled back
