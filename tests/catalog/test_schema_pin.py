"""No Tiled the writer does not know: the dependency admits exactly the release the
writer is tested against, its catalog schema is the one the writer produces rows
for, and a catalog at another revision is refused with what to do about it."""

from __future__ import annotations

import re
import sqlite3
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from manifest_broker.catalog.database import SUPPORTED_REVISIONS, TILED_RELEASE, CatalogError, check_catalog, locate
from manifest_broker.catalog.write import init_catalog

ROOT = Path(__file__).resolve().parents[2]


def test_the_dependency_admits_only_the_tested_tiled() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (tiled,) = [d for d in dependencies if re.match(r"tiled\b", d)]
    assert re.fullmatch(rf"tiled\[server\]=={re.escape(TILED_RELEASE)}", tiled), tiled
    assert version("tiled") == TILED_RELEASE


def test_the_installed_tileds_schema_is_the_one_the_writer_writes() -> None:
    from tiled.catalog.core import REQUIRED_REVISION

    assert REQUIRED_REVISION in SUPPORTED_REVISIONS


@pytest.mark.parametrize(
    ("revision", "advice"),
    [("3e87cbeb195b", "tiled catalog upgrade-database"), ("f00dfeedbeef", "no such revision")],
    ids=["older", "unknown"],
)
def test_a_catalog_at_another_revision_is_refused_with_what_to_do(tmp_path: Path, revision: str, advice: str) -> None:
    catalog = tmp_path / "catalog.db"
    init_catalog(locate(str(catalog)))
    with sqlite3.connect(catalog) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    with pytest.raises(CatalogError) as refused:
        check_catalog(str(catalog))
    message = str(refused.value)
    assert revision in message and SUPPORTED_REVISIONS[0] in message and advice in message
