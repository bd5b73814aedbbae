"""The CLI as a newcomer meets it: wrong arguments, missing things, unreachable
servers. Each is one line `error: ...`, a non-zero exit, no traceback, and nothing
created or changed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from manifest_broker import __version__
from manifest_broker.catalog.serve import free_port
from manifest_broker.commandline._tnr import packager
from manifest_broker.commandline.main import app
from tests.conftest import Dataset, tree_state

runner = CliRunner()


def _fails(args: list[str], message: str, code: int = 1, target=app, env: dict | None = None) -> str:  # type: ignore[no-untyped-def]
    result = runner.invoke(target, args, env=env)
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
    result = runner.invoke(
        app,
        [
            "check",
            str(spinwave.pair.hamiltonians),
            str(spinwave.pair.artifacts),
            "--base-dir",
            str(spinwave.base_dir),
            "--json",
        ],
    )
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
    _fails(
        ["ingest", *pair, "--catalog", str(catalog), "--parent", f"{key}/{array}/deeper"],
        f"{key}/{array} is an array, not a container",
    )
    with sqlite3.connect(catalog) as conn:
        assert conn.execute("SELECT count(*) FROM nodes").fetchone() == before


@pytest.mark.integration
def test_a_wrong_key_and_a_missing_parent_through_a_real_server(spinwave: Dataset, tmp_path: Path) -> None:
    from manifest_broker.catalog.serve import running_server

    catalog = str(tmp_path / "catalog.db")
    pair = [str(spinwave.pair.hamiltonians), str(spinwave.pair.artifacts), "--base-dir", str(spinwave.base_dir)]
    assert runner.invoke(app, ["ingest", *pair, "--catalog", catalog]).exit_code == 0
    with running_server(catalog, spinwave.base_dir) as url:
        _fails(["verify", *pair, "--url", url], "refused the connection (HTTP 401)", env={"TILED_API_KEY": "wrongkey"})
        _fails(
            ["verify", *pair, "--url", url, "--parent", "no/such"],
            "--parent no/such: the server has no node no",
            env={"TILED_API_KEY": "secret"},
        )


@pytest.mark.integration
def test_verify_counts_only_its_own_hamiltonians(spinwave: Dataset, tmp_path: Path) -> None:
    """Two datasets with the same parameter side by side under one parent."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from manifest_broker.catalog.serve import running_server

    ham, art = spinwave.hamiltonians, spinwave.artifacts
    other = tmp_path / "other"
    other.mkdir()
    renamed = ham.set_column(0, "huid", pc.binary_join_element_wise("b_", ham["huid"], ""))
    renamed = renamed.set_column(1, "key", pc.binary_join_element_wise("B_", ham["key"], ""))
    pq.write_table(renamed, other / "b_hamiltonians.parquet")
    pq.write_table(
        art.set_column(0, "huid", pc.binary_join_element_wise("b_", art["huid"], "")), other / "b_artifacts.parquet"
    )
    catalog = str(tmp_path / "catalog.db")
    base = ["--base-dir", str(spinwave.base_dir)]
    first = [str(spinwave.pair.hamiltonians), str(spinwave.pair.artifacts)]
    second = [str(other / "b_hamiltonians.parquet"), str(other / "b_artifacts.parquet")]
    for pair in (first, second):
        assert runner.invoke(app, ["ingest", *pair, *base, "--catalog", catalog, "--parent", "shared"]).exit_code == 0
    with running_server(catalog, spinwave.base_dir) as url:
        result = runner.invoke(
            app,
            ["verify", *first, *base, "--url", url, "--parent", "shared", "--json"],
            env={"TILED_API_KEY": "secret"},
        )
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
    pq.write_table(
        pa.table({"huid": [f"h{i}" for i in range(n)], "key": [f"K{i}" for i in range(n)], "J": [1.0, 2.0, 3.0]}), ham
    )
    pq.write_table(
        pa.table({"huid": [f"h{i}" for i in range(n)], "type": ["t"] * n, "file": names, "dataset": ["/x"] * n}), art
    )
    result = runner.invoke(app, ["check", str(ham), str(art), "--base-dir", str(base), "--json"])
    findings = [(f["rule"], f["row"]) for f in json.loads(result.stdout)["findings"] if f["severity"] == "error"]
    assert result.exit_code == 1 and findings == [("file_uri_unsafe", 0), ("file_uri_unsafe", 1)]
    catalog = tmp_path / "catalog.db"
    _fails(["ingest", str(ham), str(art), "--base-dir", str(base), "--catalog", str(catalog)], "nothing was written")
    assert not catalog.exists()


# Each documented command given a missing path, a directory or a file of the wrong
# kind: (arguments, the message's key words, exit code). {missing}, {folder}, {text}
# (a text file named like a manifest), {down} (a closed port) are filled in below.
BAD_PATHS = {
    "ingest, a text file as manifest": (
        ["ingest", "{text_h}", "{text_a}", "--base-dir", "{folder}", "--catalog", "{folder}/new.db"],
        "the manifests break the contract",
        1,
    ),
    "check, a directory as manifest": (
        ["check", "{folder}", "{folder}", "--base-dir", "{folder}"],
        "a directory without a <name>_hamiltonians.parquet",
        1,
    ),
    "check, manifests missing": (
        ["check", "{missing}", "{missing}", "--base-dir", "{folder}"],
        "missing: manifest not found",
        1,
    ),
    "register, server down": (
        ["register", "{text_h}", "{text_a}", "--base-dir", "{folder}", "--url", "{down}"],
        "cannot reach the Tiled server",
        1,
    ),
    "locate, server down": (["locate", "--url", "{down}"], "cannot reach the Tiled server", 1),
    "delete, catalog missing": (["delete", "x", "--catalog", "{missing}", "--yes"], "does not exist", 1),
    "delete, a directory as catalog": (["delete", "x", "--catalog", "{folder}", "--yes"], "is a directory", 1),
    "explore, directory missing": (["explore", "{missing}"], "missing: does not exist", 1),
    "explore, a file as directory": (["explore", "{text_h}"], "is a file, not a directory", 1),
    "generate, script missing": (["generate", "{missing}", "{folder}", "{folder}/out"], "not found", 1),
    "tnr package, split missing": (
        ["tnr", "package", "{missing}", "{folder}", "{missing}", "--lake", "{folder}/lake"],
        "split file not found; nothing was written",
        1,
    ),
    "tnr package, text as split": (
        ["tnr", "package", "{text_h}", "{folder}", "{text_h}", "--lake", "{folder}/lake"],
        "malformed split file JSON",
        1,
    ),
    "tnr package-many, root missing": (
        ["tnr", "package-many", "{missing}", "--lake", "{folder}/lake"],
        "missing: does not exist",
        1,
    ),
    "tnr package-many, a file as root": (
        ["tnr", "package-many", "{text_h}", "--lake", "{folder}/lake"],
        "is a file, not a directory",
        1,
    ),
    "tnr package-many, nothing in root": (
        ["tnr", "package-many", "{folder}", "--lake", "{folder}/lake"],
        "no run found",
        1,
    ),
    "tnr sql, lake missing": (["tnr", "sql", "select 1", "--lake", "{folder}/lake"], "no lake here", 1),
    "tnr plot, lake missing": (
        ["tnr", "plot", "--run", "1", "-o", "{folder}/p.png", "--lake", "{folder}/lake"],
        "no lake here",
        1,
    ),
    "tnr check, lake missing": (["tnr", "check", "--lake", "{folder}/lake"], "no lake here", 1),
    "tnr maintain, lake missing": (["tnr", "maintain", "--lake", "{folder}/lake"], "no lake here", 1),
}


@pytest.mark.parametrize("case", sorted(BAD_PATHS))
def test_every_command_given_a_bad_path(case: str, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    text_h, text_a = tmp_path / "notes_hamiltonians.parquet", tmp_path / "notes_artifacts.parquet"
    for text in (text_h, text_a):
        text.write_text("a text file, not Parquet")
    fill = {
        "missing": str(tmp_path / "missing"),
        "folder": str(folder),
        "text_h": str(text_h),
        "text_a": str(text_a),
        "down": f"http://127.0.0.1:{free_port()}",
    }
    args, message, code = BAD_PATHS[case]
    before = tree_state(tmp_path)
    _fails([a.format(**fill) for a in args], message, code)
    assert tree_state(tmp_path) == before  # nothing created or changed, not even a lock file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", text_a.name, text_h.name]
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("command", ["check", "ingest"])
def test_duckdb_out_of_memory_is_one_error_and_writes_nothing(
    edrixs: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("BROKER_DUCKDB_MEMORY", "1MB")
    catalog = tmp_path / "c.db"
    manifests = [str(edrixs.pair.hamiltonians), str(edrixs.pair.artifacts)]
    args = [command, *manifests, "--base-dir", str(edrixs.base_dir), "--no-cache", "--json"]
    if command == "ingest":
        args += ["--catalog", str(catalog)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    error = json.loads(result.stdout)
    assert "BROKER_DUCKDB_MEMORY=1MB" in error["error"] and "nothing was written" in error["error"]
    assert not catalog.exists()


_SIZES = st.builds(
    "{}{}{}".format,
    st.one_of(st.integers(0, 10**25), st.floats(0, 1e25, allow_nan=False, allow_infinity=False)),
    st.sampled_from(["", " "]),
    st.sampled_from(["B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB", "kb", "gib", "PB", "XB", ""]),
)


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(_SIZES, st.text(max_size=12)))
def test_any_duckdb_memory_value_is_taken_by_duckdb_or_refused_as_a_usage_error(value: str) -> None:
    """Whatever $BROKER_DUCKDB_MEMORY holds, the broker either refuses it (a usage
    error, exit 2) or DuckDB takes it when a connection is made (was: a size past
    DuckDB's range passed the broker's check, then a traceback)."""
    import os

    import duckdb

    from manifest_broker import queries
    from manifest_broker.errors import BrokerError

    before = os.environ.get("BROKER_DUCKDB_MEMORY")
    if "\x00" in value:
        return  # the environment cannot hold it
    os.environ["BROKER_DUCKDB_MEMORY"] = value
    try:
        try:
            given_limit = queries.given_memory_limit()
        except BrokerError as refused:
            assert refused.exit_code == 2
            return
        if given_limit is None:
            assert not value  # unset and empty are the default
            return
        duckdb.connect(config={"memory_limit": given_limit}).close()
    finally:
        if before is None:
            os.environ.pop("BROKER_DUCKDB_MEMORY", None)
        else:
            os.environ["BROKER_DUCKDB_MEMORY"] = before


@pytest.mark.parametrize(
    ("value", "code"),
    [(v, 2) for v in ["abc", "0", "0MB", "-5GB", "12XB", "5 G B", "99999999999999999999TB"]]
    + [(v, 0) for v in ["256 MB", "1GiB", "2gb"]],
)
def test_the_duckdb_memory_limit_is_taken_in_duckdbs_units_and_only_them(
    edrixs: Dataset, value: str, code: int
) -> None:
    manifests = [str(edrixs.pair.hamiltonians), str(edrixs.pair.artifacts)]
    result = runner.invoke(
        app,
        ["check", *manifests, "--base-dir", str(edrixs.base_dir), "--no-cache", "--json"],
        env={"BROKER_DUCKDB_MEMORY": value},
    )
    assert result.exit_code == code, result.output
    if code:
        assert "BROKER_DUCKDB_MEMORY" in json.loads(result.stdout)["error"]
