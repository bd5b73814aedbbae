"""Several `broker ingest` processes on one catalog, started together: each one
completes (waiting for the others where it must), the catalog is initialised once,
and the result equals a sequential run. Also: a catalog whose initialisation was cut
short is completed by the next run, and SQLite catalogs end up in WAL mode."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from manifest_broker.catalog.database import engine, locate
from manifest_broker.catalog.write import init_catalog
from tests.integration.catalog_dump import dump
from tests.pg import new_database
from tests.reliability.conftest import batched_dataset, broker

pytestmark = pytest.mark.integration
BACKENDS = ["sqlite", "postgresql"]


def _catalog(backend: str, tmp_path: Path, request: pytest.FixtureRequest, name: str) -> str:
    if backend == "sqlite":
        return str(tmp_path / f"{name}.db")
    return new_database(request.getfixturevalue("postgres_server"))


def _together(runs: list[list[str]], cache: Path) -> list[tuple[int, str]]:
    processes = [broker(*args, cache=cache) for args in runs]
    return [(p.wait(timeout=300), p.stdout.read() if p.stdout else "") for p in processes]


def _ingest_args(pair: tuple[Path, Path], base: Path, catalog: str) -> list[str]:
    return ["ingest", str(pair[0]), str(pair[1]), "--base-dir", str(base), "--catalog", catalog, "--parent", "lab"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("trial", range(2))
def test_same_dataset_three_writers_new_catalog(
    backend: str, trial: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    base = tmp_path / "data"
    base.mkdir()
    pair = batched_dataset(base, tmp_path / "m", "same", 400)
    catalog, reference = (_catalog(backend, tmp_path, request, n) for n in ("together", "sequential"))
    outcomes = _together([_ingest_args(pair, base, catalog)] * 3, tmp_path / "cache")
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    created = [out for _, out in outcomes if "created 400 Hamiltonians" in out]
    assert len(created) == 1 and sum("nothing to add" in out for _, out in outcomes) == 2, outcomes
    [(code, _)] = _together([_ingest_args(pair, base, reference)], tmp_path / "cache")
    assert code == 0
    assert dump(catalog) == dump(reference)


@pytest.mark.parametrize("backend", BACKENDS)
def test_different_datasets_sharing_a_file(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Three datasets reading rows of one HDF5 file: one asset row, shared, whoever
    writes first (PostgreSQL failed with a unique-key violation here)."""
    base = tmp_path / "data"
    base.mkdir()
    pairs = [batched_dataset(base, tmp_path / "m", f"part{i}", 300, first=300 * i, rows=900) for i in range(3)]
    catalog, reference = (_catalog(backend, tmp_path, request, n) for n in ("together", "sequential"))
    initialised = init_catalog(locate(catalog))  # an existing catalog this time
    assert initialised
    outcomes = _together([_ingest_args(p, base, catalog) for p in pairs], tmp_path / "cache")
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    for pair in pairs:
        [(code, _)] = _together([_ingest_args(pair, base, reference)], tmp_path / "cache")
        assert code == 0
    together = dump(catalog)
    assert together == dump(reference)
    assert len(together["assets"]) == 1 and len(together["nodes"]) == 1 + 1 + 3 * 900


def _tables(uri: str) -> set[str]:
    location = locate(uri)
    eng = engine(location)
    with eng.connect() as conn:
        names = {
            r[0]
            for r in conn.execute(
                sa.text(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    if location.dialect == "sqlite"
                    else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            )
        }
    eng.dispose()
    return names


@pytest.mark.parametrize("backend", BACKENDS)
def test_catalog_left_without_its_stamp_is_completed(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    base = tmp_path / "data"
    base.mkdir()
    pair = batched_dataset(base, tmp_path / "m", "stamp", 50)
    catalog, reference = (_catalog(backend, tmp_path, request, n) for n in ("cut", "clean"))
    assert init_catalog(locate(catalog))
    eng = engine(locate(catalog))
    with eng.begin() as conn:  # a kill between tiled's table creation and its alembic stamp
        conn.execute(sa.text("DROP TABLE alembic_version"))
    eng.dispose()
    outcomes = _together([_ingest_args(pair, base, catalog), _ingest_args(pair, base, reference)], tmp_path / "cache")
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert dump(catalog) == dump(reference) and "alembic_version" in _tables(catalog)


def test_sqlite_catalog_cut_mid_creation_is_rebuilt(tmp_path: Path) -> None:
    """Tiled creates SQLite tables one statement at a time: a kill leaves some of them."""
    from tiled.catalog import orm
    from tiled.catalog.core import Base

    base = tmp_path / "data"
    base.mkdir()
    pair = batched_dataset(base, tmp_path / "m", "cut", 50)
    catalog, reference = str(tmp_path / "cut.db"), str(tmp_path / "clean.db")
    eng = sa.create_engine(f"sqlite:///{catalog}")
    Base.metadata.create_all(eng, tables=[orm.Node.__table__, orm.Structure.__table__])
    eng.dispose()
    outcomes = _together([_ingest_args(pair, base, catalog), _ingest_args(pair, base, reference)], tmp_path / "cache")
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert dump(catalog) == dump(reference)  # triggers included
    assert _tables(catalog) == _tables(reference)


def test_foreign_database_is_still_refused(tmp_path: Path) -> None:
    catalog = tmp_path / "other.db"
    with sqlite3.connect(catalog) as conn:
        conn.execute("CREATE TABLE nodes (id INTEGER)")
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    base = tmp_path / "data"
    base.mkdir()
    pair = batched_dataset(base, tmp_path / "m", "foreign", 5)
    [(code, out)] = _together([_ingest_args(pair, base, str(catalog))], tmp_path / "cache")
    assert code == 1 and "is not a Tiled catalog" in out and "invoices" in out
    with sqlite3.connect(catalog) as conn:
        assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master")} == {"nodes", "invoices"}


def test_sqlite_catalogs_are_switched_to_wal(tmp_path: Path) -> None:
    """Tiled's own initialisation asks for WAL inside a transaction, where SQLite
    ignores it: a `tiled catalog init` catalog is in rollback-journal mode, and a
    reader then fails with "database is locked" while a writer commits."""
    import subprocess
    import sys

    base = tmp_path / "data"
    base.mkdir()
    pair = batched_dataset(base, tmp_path / "m", "wal", 5)
    by_tiled = tmp_path / "by_tiled.db"
    subprocess.run(
        [sys.executable, "-m", "tiled", "catalog", "init", f"sqlite:///{by_tiled}"], check=True, capture_output=True
    )
    with sqlite3.connect(by_tiled) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    by_broker = tmp_path / "by_broker.db"
    outcomes = _together(
        [_ingest_args(pair, base, str(by_tiled)), _ingest_args(pair, base, str(by_broker))], tmp_path / "c"
    )
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    for catalog in (by_tiled, by_broker):
        with sqlite3.connect(catalog) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
