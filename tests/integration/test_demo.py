"""`broker demo`, the README's first command, end to end and again (idempotent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from manifest_broker.cli import app
from tests.integration.catalog_dump import dump

pytestmark = pytest.mark.integration


def test_demo_runs_twice(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["demo", "--workdir", str(tmp_path), "-n", "3"])
    assert first.exit_code == 0, first.output
    assert "0 problem(s)" in first.output
    catalog = str(tmp_path / "catalog.db")
    nodes = dump(catalog)["nodes"]
    assert len(nodes) == 1 + 1 + (3 + 30 + 3 + 3) + (33 + 60 + 12 + 6)  # root, /demo, Hamiltonians, artifacts
    second = runner.invoke(app, ["demo", "--workdir", str(tmp_path), "-n", "3"])
    assert second.exit_code == 0 and "nothing to add" in second.output
    assert dump(catalog)["nodes"] == nodes
    from manifest_broker.tnr.lake import scan

    assert scan(tmp_path / "lakehouse", "reflectivity").num_rows == 24  # re-packaged, not duplicated
    assert (tmp_path / "tnr_218389.png").stat().st_size > 20_000
    # it ends with the commands to serve and read what it built, each on one line
    assert (
        f"TILED_API_KEY=secret broker serve --catalog {tmp_path / 'catalog.db'} --base-dir {tmp_path / 'data'}"
        in second.output
    )
    assert f"catalog('{tmp_path / 'lakehouse'}').load_table('tnr.reflectivity')" in second.output
