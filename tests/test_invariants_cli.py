"""Findings of issue #26 that live between commands, inputs and options, each
checked through the command line on files written by hand (no server needed):
the rule that explains it, not the one case."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from manifest_broker.commandline.main import app
from tests.conftest import tree_state

runner = CliRunner()


def _pair(manifests: Path, data: Path, name: str, keys: list[str], units: str = "meV") -> None:
    """One manifest pair `<name>_*` in `manifests`, one HDF5 file per key in `data`."""
    manifests.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    for i, key in enumerate(keys):
        with h5py.File(data / f"{key}.h5", "w") as f:
            f["spectrum"] = np.full((4, 3), float(i))
    pq.write_table(
        pa.table(
            {
                "huid": [f"u-{k}" for k in keys],
                "key": keys,
                "J1": [0.5 + i for i in range(len(keys))],
                "units": [units] * len(keys),
            }
        ),
        manifests / f"{name}_hamiltonians.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "huid": [f"u-{k}" for k in keys],
                "type": ["spectrum"] * len(keys),
                "file": [f"{k}.h5" for k in keys],
                "dataset": ["/spectrum"] * len(keys),
            }
        ),
        manifests / f"{name}_artifacts.parquet",
    )


def _json(args: list[str], code: int) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return json.loads(result.stdout)  # exactly one document, or this raises


def _keys(catalog: Path) -> set[str]:
    with sqlite3.connect(catalog) as con:
        return {r[0] for r in con.execute("SELECT key FROM nodes WHERE parent IS NOT NULL")}


def test_two_pairs_of_one_name_in_different_folders_are_two_datasets(tmp_path: Path) -> None:
    """Pairs are told apart by their full paths: a/x_* and b/x_* were stored by the
    bare name `x`, so check, ingest and register kept only the last pair."""
    data = tmp_path / "data"
    _pair(tmp_path / "a", data, "x", ["A_1", "A_2"])
    _pair(tmp_path / "b", data, "x", ["B_1", "B_2", "B_3"])
    given = [str(tmp_path / "a"), str(tmp_path / "b"), "--base-dir", str(data)]
    report = _json(["check", *given], 0)
    assert report["hamiltonians"] == 5 and report["artifacts"] == 5
    catalog = tmp_path / "cat.db"
    result = _json(["ingest", *given, "--catalog", str(catalog)], 0)
    assert result["created_hamiltonians"] == 5
    assert {"A_1", "A_2", "B_1", "B_2", "B_3"} <= _keys(catalog)
    # equal keys in the two pairs are a collision between two datasets, named as such
    _pair(tmp_path / "c", data, "x", ["A_1"])
    report = _json(["check", str(tmp_path / "a"), str(tmp_path / "c"), "--base-dir", str(data)], 1)
    assert "key_collision" in {f["rule"] for f in report["findings"]}


PARENTS = ["..", ".", "x?y", "x#y", " lab ", "lab/../x", "a%2Fb", "lab\tx", "a//b"]


@pytest.mark.parametrize("parent", PARENTS)
def test_a_parent_is_held_to_the_key_rules(tmp_path: Path, parent: str) -> None:
    """Each segment of --parent becomes a node key: it obeys the key rule (check,
    ingest, register, verify, locate), a usage error before any work."""
    data = tmp_path / "data"
    _pair(tmp_path / "m", data, "x", ["K_1"])
    given = [str(tmp_path / "m"), "--base-dir", str(data), "--parent", parent]
    before = tree_state(tmp_path)
    for command in (
        ["check"],
        ["ingest", "--catalog", str(tmp_path / "cat.db")],
        ["register", "--url", "http://127.0.0.1:9"],
        ["verify", "--url", "http://127.0.0.1:9"],
    ):
        answer = _json([*command, *given], 2)
        assert "--parent" in answer["error"] and "segment" in answer["error"], answer
    answer = _json(["locate", "--url", "http://127.0.0.1:9", "--parent", parent], 2)
    assert "--parent" in answer["error"]
    assert tree_state(tmp_path) == before


def test_a_good_parent_passes_with_outer_slashes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _pair(tmp_path / "m", data, "x", ["K_1"])
    catalog = tmp_path / "cat.db"
    _json(
        ["ingest", str(tmp_path / "m"), "--base-dir", str(data), "--catalog", str(catalog), "--parent", "/lab/run 1/"],
        0,
    )
    assert {"lab", "run 1", "K_1"} <= _keys(catalog)


def test_check_against_a_catalog_that_is_not_there_or_not_one(tmp_path: Path) -> None:
    """`check --catalog typo.db` said OK and skipped key_in_catalog; `ingest --catalog`
    on someone's empty file turned it into a catalog."""
    data = tmp_path / "data"
    _pair(tmp_path / "m", data, "x", ["K_1"])
    given = [str(tmp_path / "m"), "--base-dir", str(data)]
    answer = _json(["check", *given, "--catalog", str(tmp_path / "typo.db")], 1)
    assert "typo.db" in answer["error"] and "does not exist" in answer["error"]
    assert not (tmp_path / "typo.db").exists()
    empty = tmp_path / "table.parquet"
    empty.write_bytes(b"")
    for command in ("check", "ingest"):
        answer = _json([command, *given, "--catalog", str(empty)], 1)
        assert "table.parquet" in answer["error"], answer
    assert empty.stat().st_size == 0


def test_outputs_whose_suffix_disagrees_with_their_format_are_refused(tmp_path: Path) -> None:
    """`locate -o loc.csv` wrote Parquet into a .csv; so would `sql -o`."""
    data = tmp_path / "data"
    _pair(tmp_path / "m", data, "x", ["K_1"])
    answer = _json(["locate", "--url", "http://127.0.0.1:9", "-o", str(tmp_path / "loc.csv")], 2)
    assert "loc.csv" in answer["error"] and ".parquet" in answer["error"]
    ham, art = (str(tmp_path / "m" / f"x_{k}.parquet") for k in ("hamiltonians", "artifacts"))
    answer = _json(
        ["sql", "SELECT 1", "--ham", ham, "--art", art, "--format", "parquet", "-o", str(tmp_path / "out.csv")], 2
    )
    assert ".parquet" in answer["error"] and not (tmp_path / "out.csv").exists()


def test_a_piped_findings_table_is_plain_text(tmp_path: Path) -> None:
    """Piped, the findings table printed `error[/]` and turned `T[meV]` into `T\\[meV]`."""
    data = tmp_path / "data"
    _pair(tmp_path / "m", data, "x", ["K_1", "T[meV]"])
    (data / "T[meV].h5").unlink()
    result = runner.invoke(app, ["check", str(tmp_path / "m"), "--base-dir", str(data)])
    assert result.exit_code == 1, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines() if "\t" in line]
    assert rows[0][:2] == ["rule", "severity"], result.stdout
    assert [(r[1], r[5]) for r in rows[1:]] == [("error", "T[meV].h5")], result.stdout
    assert "[/]" not in result.stdout and "\\[" not in result.stdout


CARD = """\
card_version: 1
dataset: hand
parameters:
  - {name: J1, type: float, units: meV}
artifacts:
  - {type: spectrum, dataset: /spectrum}
count: {hamiltonians: 1}
"""


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (("parameters:", "paramters:"), "'paramters': not a field of a dataset card; did you mean 'parameters'?"),
        (("count:", "cuont:"), "'cuont': not a field of a dataset card; did you mean 'count'?"),
        (("units: meV", "unit: meV"), "parameters[0].'unit': not a field of a dataset card; did you mean 'units'?"),
        (("dataset: /spectrum", "datset: /spectrum"), "did you mean 'dataset'?"),
        (("dataset: hand", "dataset: hand\nwhatever: 1"), "'whatever': not a field of a dataset card; the fields are"),
    ],
)
def test_a_misspelt_card_field_is_an_error_naming_the_nearest(
    tmp_path: Path, change: tuple[str, str], said: str
) -> None:
    """A misspelt top-level field was dropped, and `check --card` said OK with its rules skipped."""
    data = tmp_path / "data"
    _pair(tmp_path / "m", data, "x", ["K_1"])
    card = tmp_path / "card.yaml"
    card.write_text(CARD)
    _json(["check", str(tmp_path / "m"), "--base-dir", str(data), "--card", str(card)], 0)
    card.write_text(CARD.replace(*change, 1))
    answer = _json(["check", str(tmp_path / "m"), "--base-dir", str(data), "--card", str(card)], 1)
    assert said in answer["error"] and str(card) in answer["error"]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("card_version: 1\na: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n", "a YAML alias"),
        ("card_version: 1\nfindings: " + "[" * 200 + "]" * 200 + "\n", "nested more than 32 levels"),
        ("card_version: 1\ndataset: " + "{a: " * 200 + "1" + "}" * 200 + "\n", "nested more than 32 levels"),
        ("card_version: 1\ncount: {hamiltonians: " + "9" * 5000 + "}\n", "an integer of more than 30 digits"),
        ("card_version: 1\ndescription: '" + "x" * (1 << 20) + "'\n", "a dataset card is at most 1,048,576"),
    ],
)
def test_a_card_is_read_within_limits(tmp_path: Path, text: str, said: str) -> None:
    """#24: an alias bomb echoed a 72 MB error line, deep nesting was a RecursionError,
    a 5,000-digit integer a ValueError; each is now one short error."""
    data = tmp_path / "data"
    _pair(tmp_path / "m", data, "x", ["K_1"])
    card = tmp_path / "card.yaml"
    card.write_text(text)
    result = runner.invoke(app, ["check", str(tmp_path / "m"), "--base-dir", str(data), "--card", str(card)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.startswith("error: ") and said in result.output and len(result.output) < 400


def test_synth_into_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    """The README: a missing folder is one error and nothing is done (synth made the parents)."""
    for layout in ("spinwave", "tnr"):
        answer = _json(["synth", layout, str(tmp_path / "nowhere" / "out"), "-n", "1"], 1)
        assert "folder" in answer["error"] and "does not exist" in answer["error"], answer
    assert list(tmp_path.iterdir()) == []


def test_a_generator_that_writes_no_manifest_or_reads_another_layout_fails(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _pair(tmp_path / "m", data, "x", ["K_1"])
    script = tmp_path / "nothing.py"
    script.write_text(
        "import pandas as pd\n\ndef generate(output_dir, n_hamiltonians=None):\n"
        "    return (pd.DataFrame({'huid': ['a'], 'key': ['K']}),\n"
        "            pd.DataFrame({'huid': ['a'], 'type': ['t'], 'file': ['K_1.h5'], 'dataset': ['/x']}))\n"
    )
    answer = _json(["generate", str(script), str(data), str(tmp_path / "out")], 1)
    assert "wrote no manifest" in answer["error"], answer
    for layout in ("vdp", "edrixs"):  # a built-in layout on another layout's folder
        answer = _json(["generate", layout, str(data), str(tmp_path / "out")], 1)
        assert f"not a {layout} dataset" in answer["error"] and "is missing" in answer["error"], answer


def test_a_dask_address_that_is_not_one_is_one_clean_error(tmp_path: Path) -> None:
    """`--dask notanaddress`: the error, then 20 s later a `Client.__del__` traceback."""
    import subprocess
    import sys

    data = tmp_path / "data"
    _pair(tmp_path / "m", data, "x", ["K_1"])
    code = "from manifest_broker.commandline.main import app; app()"
    for address, exit_code in (("notanaddress", 2), ("tcp://127.0.0.1:9", 1)):
        done = subprocess.run(
            [sys.executable, "-c", code, "check", str(tmp_path / "m"), "--base-dir", str(data), "--dask", address],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == exit_code, done.stderr
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def test_sql_with_nested_results_and_with_the_manifests_swapped(tmp_path: Path) -> None:
    """`broker sql` crashed on a struct or `list_zip` result (every format but Parquet)
    and with --ham and --art swapped (a DuckDB binder traceback)."""
    data = tmp_path / "data"
    _pair(tmp_path / "m", data, "x", ["K_1"])
    ham, art = (str(tmp_path / "m" / f"x_{k}.parquet") for k in ("hamiltonians", "artifacts"))
    query = "SELECT key, {'a': 1, 'b': [1, 2]} AS s, list_zip([1, 2], ['a', 'b']) AS z FROM hamiltonians"
    table = runner.invoke(app, ["sql", query, "--ham", ham, "--art", art])
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[1].split("\t") == ["K_1", '{"a":1,"b":[1,2]}', '[{"":1,"":"a"},{"":2,"":"b"}]']
    csv = runner.invoke(app, ["sql", query, "--ham", ham, "--art", art, "--format", "csv"])
    assert csv.exit_code == 0 and csv.stdout.splitlines()[0] == '"key","s","z"', csv.output
    rows = json.loads(runner.invoke(app, ["sql", query, "--ham", ham, "--art", art, "--format", "json"]).stdout)
    assert rows == [{"key": "K_1", "s": {"a": 1, "b": [1, 2]}, "z": '[{"":1,"":"a"},{"":2,"":"b"}]'}]
    answer = _json(["sql", "SELECT count(*) FROM hamiltonians", "--ham", art, "--art", ham], 1)
    assert "look swapped" in answer["error"] and answer["where"] == art


def test_update_metadata_with_other_files_is_refused(tmp_path: Path) -> None:
    """`ingest --update-metadata` with the same huids but other files pointed the
    metadata (and Mode A locators) at the new files while the arrays read the old."""
    data = tmp_path / "data"
    _pair(tmp_path / "m", data, "x", ["K_1", "K_2"])
    catalog = tmp_path / "cat.db"
    given = [str(tmp_path / "m"), "--base-dir", str(data), "--catalog", str(catalog), "--parent", "lab"]
    _json(["ingest", *given], 0)
    # new parameter values, same files: updated
    ham = tmp_path / "m" / "x_hamiltonians.parquet"
    table = pq.read_table(ham)
    pq.write_table(table.set_column(2, "J1", pa.array([9.0, 9.5])), ham)
    assert _json(["ingest", *given, "--update-metadata"], 0)["updated_metadata"] == ["K_1", "K_2"]
    # K_2's artifact moved to another file: refused, and nothing changed
    with h5py.File(data / "other.h5", "w") as f:
        f["spectrum"] = np.full((4, 3), 7.0)
    art = tmp_path / "m" / "x_artifacts.parquet"
    table = pq.read_table(art)
    pq.write_table(table.set_column(2, "file", pa.array(["K_1.h5", "other.h5"])), art)
    before = tree_state(tmp_path / "cat.db")
    answer = _json(["ingest", *given, "--update-metadata"], 1)
    assert "K_2/spectrum" in answer["error"] and "other.h5" in answer["error"], answer
    assert tree_state(tmp_path / "cat.db") == before
    with sqlite3.connect(catalog) as con:
        paths = [json.loads(m).get("path_spectrum", "") for (m,) in con.execute("SELECT metadata FROM nodes")]
    assert not any(p.endswith("other.h5") for p in paths)


def test_upload_into_a_catalog_that_holds_the_nodes_uploads_them(tmp_path: Path) -> None:
    """`ingest --upload DIR` into a catalog that held the nodes (registered from the
    files) uploaded nothing; a server that cannot read the files could not serve them."""
    data = tmp_path / "data"
    _pair(tmp_path / "m", data, "x", ["K_1", "K_2"])
    catalog, storage = tmp_path / "cat.db", tmp_path / "storage"
    given = [str(tmp_path / "m"), "--base-dir", str(data), "--catalog", str(catalog), "--parent", "lab"]
    _json(["ingest", *given], 0)
    answer = _json(["ingest", *given, "--upload", str(storage)], 0)
    assert answer["created_arrays"] == 2 and answer["existing_hamiltonians"] == 2, answer
    with sqlite3.connect(catalog) as con:
        managed = sorted(r[0] for r in con.execute("SELECT management FROM data_sources"))
        metadata = [json.loads(m) for (m,) in con.execute("SELECT metadata FROM nodes WHERE key LIKE 'K_%'")]
    assert managed == ["writable", "writable"] and [p for p in storage.rglob("*") if p.is_file()]
    assert all(m["path_spectrum"].startswith(str(data.resolve())) for m in metadata)  # Mode A still names the files
    again = _json(["ingest", *given, "--upload", str(storage)], 0)
    assert again["created_arrays"] == 0 and again["existing_arrays"] == 2, again


def test_a_generator_that_exits_is_an_error_not_the_brokers_exit(tmp_path: Path) -> None:
    """`sys.exit(0)` inside generate() ended `broker generate` with exit 0 and no
    manifest (and no --json document); `sys.exit(3)` with exit 3."""
    data = tmp_path / "data"
    _pair(tmp_path / "m", data, "x", ["K_1"])
    for code in ("0", "3", "'bye'"):
        script = tmp_path / f"exits_{len(code)}.py"
        script.write_text(f"import sys\n\ndef generate(output_dir, n_hamiltonians=None):\n    sys.exit({code})\n")
        answer = _json(["generate", str(script), str(data), str(tmp_path / "out")], 1)
        assert "sys.exit(" in answer["error"] and answer["exit_code"] == 1, answer
    script = tmp_path / "exits_on_import.py"
    script.write_text("import sys\nsys.exit(0)\n")
    answer = _json(["generate", str(script), str(data), str(tmp_path / "out")], 1)
    assert "while being imported" in answer["error"], answer
