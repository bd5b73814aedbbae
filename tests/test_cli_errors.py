"""The CLI as a newcomer meets it: wrong arguments, missing things, unreachable
servers. Each is one line `error: ...`, a non-zero exit, no traceback, and nothing
created or changed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from manifest_broker import __version__
from manifest_broker.cli import app
from manifest_broker.serve import free_port
from manifest_broker.tnr.cli import packager
from tests.conftest import Dataset, tree_state

runner = CliRunner()


def _fails(args: list[str], message: str, code: int = 1, target=app) -> str:  # type: ignore[no-untyped-def]
    result = runner.invoke(target, args)
    flat = " ".join(result.output.split())
    assert result.exit_code == code, result.output
    assert message in flat, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (KeyError, AttributeError, TypeError))
    return flat


def test_versions() -> None:
    assert runner.invoke(app, ["--version"]).output.strip() == f"manifest-broker {__version__}"
    assert __version__ in runner.invoke(packager, ["--version"]).output


def test_serve_refuses_what_it_cannot_serve(tmp_path: Path, spinwave: Dataset) -> None:
    base = str(spinwave.base_dir)
    before = tree_state(tmp_path)
    _fails(["serve", "--catalog", str(tmp_path / "missing.db"), "--base-dir", base], "missing.db does not exist")
    _fails(["serve", "--catalog", str(tmp_path), "--base-dir", base], "is a directory")
    _fails(["serve", "--catalog", "mysql://user@host/db", "--base-dir", base], "unsupported catalog URI")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    _fails(["serve", "--catalog", str(garbage), "--base-dir", base], "not a database the broker can read")
    _fails(["serve", "--catalog", str(garbage), "--base-dir", str(tmp_path / "nope")], "--base-dir")
    after = tree_state(tmp_path)
    assert after == before | {str(garbage): after[str(garbage)]} and not (tmp_path / "missing.db").exists()


def test_an_unreachable_server_or_a_bad_url(spinwave: Dataset) -> None:
    pair = [str(spinwave.pair.hamiltonians), str(spinwave.pair.artifacts), "--base-dir", str(spinwave.base_dir)]
    down = f"http://127.0.0.1:{free_port()}"
    for command in ("verify", "register"):
        _fails([command, *pair, "--url", down], f"{down}: cannot reach the Tiled server")
        _fails([command, *pair, "--url", "127.0.0.1:8000"], "give the server's address with http://", code=2)


def test_generate_on_a_wrong_data_directory(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    _fails(["generate", "spinwave", str(tmp_path / "typo"), str(out)], "typo: data directory not found")
    (tmp_path / "empty").mkdir()
    _fails(["generate", "spinwave", str(tmp_path / "empty"), str(out)], "generated no Hamiltonians")
    assert list(out.glob("*.parquet")) == []  # what the failed run wrote is gone


def test_empty_manifests_are_an_error(spinwave: Dataset) -> None:
    spinwave.write(spinwave.hamiltonians.slice(0, 0), spinwave.artifacts.slice(0, 0))
    result = runner.invoke(app, ["check", str(spinwave.pair.hamiltonians), str(spinwave.pair.artifacts),
                                 "--base-dir", str(spinwave.base_dir), "--json"])  # fmt: skip
    assert result.exit_code == 1
    assert [f["rule"] for f in json.loads(result.stdout)["findings"]] == ["manifest_empty", "manifest_empty"]


def test_parent_must_name_containers(spinwave: Dataset, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.db"
    pair = [str(spinwave.pair.hamiltonians), str(spinwave.pair.artifacts), "--base-dir", str(spinwave.base_dir)]
    assert runner.invoke(app, ["ingest", *pair, "--catalog", str(catalog)]).exit_code == 0
    key = spinwave.hamiltonians["key"][0].as_py()
    array = spinwave.artifacts["type"][0].as_py()
    with sqlite3.connect(catalog) as conn:
        before = conn.execute("SELECT count(*) FROM nodes").fetchone()
    _fails(["ingest", *pair, "--catalog", str(catalog), "--parent", f"{key}/{array}/deeper"],
           f"{key}/{array} is an array, not a container")  # fmt: skip
    with sqlite3.connect(catalog) as conn:
        assert conn.execute("SELECT count(*) FROM nodes").fetchone() == before


@pytest.mark.integration
def test_a_wrong_key_and_a_missing_parent_through_a_real_server(spinwave: Dataset, tmp_path: Path) -> None:
    from manifest_broker.serve import running_server

    catalog = str(tmp_path / "catalog.db")
    pair = [str(spinwave.pair.hamiltonians), str(spinwave.pair.artifacts), "--base-dir", str(spinwave.base_dir)]
    assert runner.invoke(app, ["ingest", *pair, "--catalog", catalog]).exit_code == 0
    with running_server(catalog, spinwave.base_dir) as url:
        _fails(["verify", *pair, "--url", url, "--api-key", "wrongkey"], "refused the connection (HTTP 401)")
        _fails(["verify", *pair, "--url", url, "--api-key", "secret", "--parent", "no/such"],
               "--parent no/such: the server has no node no")  # fmt: skip




@pytest.mark.integration
def test_verify_counts_only_its_own_hamiltonians(spinwave: Dataset, tmp_path: Path) -> None:
    """Two datasets with the same parameter side by side under one parent."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from manifest_broker.serve import running_server

    ham, art = spinwave.hamiltonians, spinwave.artifacts
    other = tmp_path / "other"
    other.mkdir()
    renamed = ham.set_column(0, "huid", pc.binary_join_element_wise("b_", ham["huid"], ""))
    renamed = renamed.set_column(1, "key", pc.binary_join_element_wise("B_", ham["key"], ""))
    pq.write_table(renamed, other / "b_hamiltonians.parquet")
    pq.write_table(art.set_column(0, "huid", pc.binary_join_element_wise("b_", art["huid"], "")), other / "b_artifacts.parquet")
    catalog = str(tmp_path / "catalog.db")
    base = ["--base-dir", str(spinwave.base_dir)]
    first = [str(spinwave.pair.hamiltonians), str(spinwave.pair.artifacts)]
    second = [str(other / "b_hamiltonians.parquet"), str(other / "b_artifacts.parquet")]
    for pair in (first, second):
        assert runner.invoke(app, ["ingest", *pair, *base, "--catalog", catalog, "--parent", "shared"]).exit_code == 0
    with running_server(catalog, spinwave.base_dir) as url:
        result = runner.invoke(app, ["verify", *first, *base, "--url", url, "--api-key", "secret", "--parent", "shared", "--json"])
    assert result.exit_code == 0, result.output
    [query] = json.loads(result.stdout)["queries"]
    assert query["served"] == query["expected"] > 0


def test_paths_a_file_uri_cannot_carry(tmp_path: Path) -> None:
    import h5py
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = tmp_path / "data"
    (base / "run?1").mkdir(parents=True)
    names = ["a#b.h5", "run?1/x.h5", "100% ok.h5"]
    for name in names:
        with h5py.File(base / name, "w") as f:
            f["x"] = np.arange(3.0)
    n = len(names)
    ham, art = tmp_path / "u_hamiltonians.parquet", tmp_path / "u_artifacts.parquet"
    pq.write_table(pa.table({"huid": [f"h{i}" for i in range(n)], "key": [f"K{i}" for i in range(n)], "J": [1.0, 2.0, 3.0]}), ham)
    pq.write_table(pa.table({"huid": [f"h{i}" for i in range(n)], "type": ["t"] * n, "file": names, "dataset": ["/x"] * n}), art)
    result = runner.invoke(app, ["check", str(ham), str(art), "--base-dir", str(base), "--json"])
    findings = [(f["rule"], f["row"]) for f in json.loads(result.stdout)["findings"] if f["severity"] == "error"]
    assert result.exit_code == 1 and findings == [("file_uri_unsafe", 0), ("file_uri_unsafe", 1)]
    catalog = tmp_path / "catalog.db"
    _fails(["ingest", str(ham), str(art), "--base-dir", str(base), "--catalog", str(catalog)], "nothing was written")
    assert not catalog.exists()
