"""New SQLite catalogs copied from a template Tiled made: the same catalog as Tiled's
own initialisation, served by a real `tiled serve`, and never a broken one."""

from __future__ import annotations

import datetime
import sqlite3
from pathlib import Path

import pytest

from manifest_broker.catalog.database import locate
from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.serve import running_server
from manifest_broker.catalog.write import init_catalog
from tests.conftest import Dataset
from tests.integration.catalog_dump import dump

pytestmark = pytest.mark.integration


def _schema(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall())


def _root_created(path: Path) -> datetime.datetime:
    with sqlite3.connect(path) as db:
        (created,) = db.execute("SELECT time_created FROM nodes WHERE id = 0").fetchone()
    return datetime.datetime.fromisoformat(created).replace(tzinfo=datetime.UTC)


def test_a_copy_of_the_template_is_tileds_catalog(tmp_path: Path, spinwave: Dataset) -> None:
    templates = tmp_path / "templates"
    by_tiled, by_tiled_too, copied = tmp_path / "tiled.db", tmp_path / "tiled2.db", tmp_path / "copy.db"
    assert init_catalog(locate(str(by_tiled)), template_dir=templates)
    (template,) = templates.glob("catalog-template-*.db")
    assert sorted(p.name for p in templates.iterdir()) == [template.name]  # no -wal/-shm beside it
    assert init_catalog(locate(str(by_tiled_too)))  # Tiled's way, no template involved
    assert init_catalog(locate(str(copied)), template_dir=templates)
    assert _schema(copied) == _schema(by_tiled_too)
    assert dump(str(copied)) == dump(str(by_tiled_too))
    age = datetime.datetime.now(datetime.UTC) - _root_created(copied)
    assert datetime.timedelta(0) <= age < datetime.timedelta(seconds=30)
    with sqlite3.connect(copied) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    # The copy takes data and serves it like any catalog.
    run = ingest([spinwave.pair], spinwave.base_dir, str(copied), use_cache=False)
    assert run.result is not None and run.result.created_hamiltonians == 4
    from tiled.client import from_uri

    with running_server(str(copied), spinwave.base_dir) as url:
        client = from_uri(url, api_key="secret")
        assert len(client) == 4
        for key in client:
            for name in client[key]:
                assert client[key][name].read().size > 0


@pytest.mark.parametrize("damage", ["garbage", "holds_nodes", "unknown_revision"])
def test_a_damaged_template_is_not_used(tmp_path: Path, damage: str) -> None:
    templates = tmp_path / "templates"
    init_catalog(locate(str(tmp_path / "first.db")), template_dir=templates)
    (template,) = templates.glob("catalog-template-*.db")
    if damage == "garbage":
        template.write_bytes(b"not a database" * 100)
    else:
        with sqlite3.connect(template) as db:
            if damage == "holds_nodes":
                db.execute(
                    "INSERT INTO nodes (id, parent, key, structure_family, metadata, specs) "
                    "VALUES (7, 0, 'stray', 'container', '{}', '[]')"
                )
            else:
                db.execute("UPDATE alembic_version SET version_num = 'f00dfeed'")
    target = tmp_path / "new.db"
    assert init_catalog(locate(str(target)), template_dir=templates)
    assert _schema(target) == _schema(tmp_path / "first.db")
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT count(*) FROM nodes").fetchone() == (1,)
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("917dbbcfc4b1",)]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []
