"""`broker sql`: DuckDB over the manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from manifest_broker.commandline.main import app
from tests.conftest import Dataset

runner = CliRunner()


def test_locators_view(edrixs: Dataset, tmp_path: Path) -> None:
    args = ["--ham", str(edrixs.pair.hamiltonians), "--art", str(edrixs.pair.artifacts)]
    result = runner.invoke(
        app,
        [
            "sql",
            "SELECT type, count(*) AS n, max(index) AS top FROM locators GROUP BY type ORDER BY type",
            *args,
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"type": "rixs", "n": 6, "top": 5}, {"type": "xas", "n": 6, "top": 5}]
    out = tmp_path / "q.parquet"
    result = runner.invoke(
        app,
        ["sql", "SELECT key, tenDq FROM hamiltonians WHERE tenDq > 1", *args, "--format", "parquet", "-o", str(out)],
    )
    assert result.exit_code == 0
    expected = [
        k for k, v in zip(edrixs.hamiltonians["key"].to_pylist(), edrixs.hamiltonians["tenDq"].to_pylist()) if v > 1
    ]
    assert pq.read_table(out)["key"].to_pylist() == expected
    result = runner.invoke(app, ["sql", "SELECT * FROM nowhere", *args])
    assert result.exit_code == 1 and "nowhere" in result.output


def test_sql_without_index_column(spinwave: Dataset) -> None:
    result = runner.invoke(
        app,
        [
            "sql",
            "SELECT count(*) AS n FROM locators WHERE index IS NULL",
            "--ham",
            str(spinwave.pair.hamiltonians),
            "--art",
            str(spinwave.pair.artifacts),
            "--format",
            "csv",
        ],
    )
    assert result.exit_code == 0 and result.stdout.splitlines() == ['"n"', "8"]
