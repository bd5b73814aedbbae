"""Every contract rule, broken on purpose: the report names rule, manifest and row."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from manifest_broker.catalog.contract import ContractReport, check_manifests
from manifest_broker.commandline.main import app
from tests.conftest import Dataset, tree_state

runner = CliRunner()


def findings(report: ContractReport, rule: str) -> list[dict]:
    return [f for f in report.findings.to_pylist() if f["rule"] == rule]


def set_cell(table: pa.Table, column: str, row: int, value: object) -> pa.Table:
    values = table[column].to_pylist()
    values[row] = value
    field = table.schema.field(column)
    return table.set_column(table.schema.get_field_index(column), field, pa.array(values, field.type))


def run_check(ds: Dataset, *extra: str) -> tuple[int, dict]:
    args = [
        "check",
        str(ds.pair.hamiltonians),
        str(ds.pair.artifacts),
        "--base-dir",
        str(ds.base_dir),
        "--json",
        *extra,
    ]
    before = tree_state(ds.root)
    result = runner.invoke(app, args)
    assert tree_state(ds.root) == before, "a check must write nothing"
    return result.exit_code, json.loads(result.stdout)


def test_clean_datasets_pass(spinwave: Dataset, edrixs: Dataset, vdp: Dataset, multimodal: Dataset) -> None:
    report = check_manifests([spinwave.pair, edrixs.pair, vdp.pair, multimodal.pair], spinwave.base_dir)
    assert report.ok, report.findings.to_pylist()
    assert report.findings.num_rows == 0
    assert report.probe is not None and report.probe.files == 4 + 1 + 22 + 3


@pytest.mark.parametrize(
    ("column", "value_type", "rule"),
    [("index", pa.float64(), "column_type"), ("index", pa.string(), "column_type"), ("type", None, "column_missing")],
)
def test_schema_rules(edrixs: Dataset, column: str, value_type: pa.DataType | None, rule: str) -> None:
    art = edrixs.artifacts
    if value_type is None:
        art = art.drop_columns([column])
    else:
        art = art.set_column(art.schema.get_field_index(column), column, pc.cast(art[column], value_type))
    edrixs.write(artifacts=art)
    code, out = run_check(edrixs)
    assert code == 1
    hits = [f for f in out["findings"] if f["rule"] == rule]
    assert hits and hits[0]["column"] == column and hits[0]["manifest"] == str(edrixs.pair.artifacts)


def test_integer_huid_is_a_type_error(spinwave: Dataset) -> None:
    ham = spinwave.hamiltonians
    spinwave.write(hamiltonians=ham.set_column(0, "huid", pa.array(range(ham.num_rows))))
    report = check_manifests([spinwave.pair], spinwave.base_dir)
    assert [f["column"] for f in findings(report, "column_type")] == ["huid"]


def test_missing_and_duplicate_huid(spinwave: Dataset) -> None:
    ham = set_cell(set_cell(spinwave.hamiltonians, "huid", 1, None), "huid", 3, "sw_00001")
    spinwave.write(hamiltonians=ham)
    report = check_manifests([spinwave.pair], spinwave.base_dir)
    assert [f["row"] for f in findings(report, "huid_missing")] == [1]
    assert [f["row"] for f in findings(report, "huid_duplicate")] == [0, 3]
    assert "rows 0, 3" in findings(report, "huid_duplicate")[0]["message"]
    # the artifacts of the Hamiltonians whose huid was blanked or renamed are orphans now
    orphans = findings(report, "artifact_orphan")
    assert {f["value"] for f in orphans} == {"sw_00002", "sw_00004"} and len(orphans) == 4


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "null or empty"),
        ("a/b", "path separator"),
        ("tab\there", "control"),
        (" padded", "white space"),
        (None, "null"),
    ],
)
def test_key_invalid(spinwave: Dataset, key: str | None, message: str) -> None:
    spinwave.write(hamiltonians=set_cell(spinwave.hamiltonians, "key", 2, key))
    code, out = run_check(spinwave)
    assert code == 1
    hits = [f for f in out["findings"] if f["rule"] == "key_invalid"]
    assert len(hits) == 1 and hits[0]["row"] == 2 and message in hits[0]["message"]


def test_key_duplicate_and_collision_across_datasets(spinwave: Dataset, multimodal: Dataset) -> None:
    spinwave.write(hamiltonians=set_cell(spinwave.hamiltonians, "key", 1, "H_sw_00001"))
    multimodal.write(hamiltonians=set_cell(multimodal.hamiltonians, "key", 2, "H_sw_00003"))
    report = check_manifests([spinwave.pair, multimodal.pair], spinwave.base_dir)
    assert [f["row"] for f in findings(report, "key_duplicate")] == [0, 1]
    collisions = findings(report, "key_collision")
    assert {(f["manifest"], f["row"]) for f in collisions} == {
        (str(spinwave.pair.hamiltonians), 2),
        (str(multimodal.pair.hamiltonians), 2),
    }
    # the other dataset named by its manifest's path (two datasets may share a name in different folders)
    assert any(f"another dataset ({multimodal.pair.hamiltonians}, row 2)" in f["message"] for f in collisions)


def test_key_in_catalog(spinwave: Dataset, tmp_path: Path) -> None:
    import sqlite3
    import subprocess

    catalog = tmp_path / "catalog.db"
    subprocess.run([sys.executable, "-m", "tiled", "catalog", "init", f"sqlite:///{catalog}"], check=True)
    with sqlite3.connect(catalog) as db:  # a node as Tiled would hold it
        db.execute(
            "INSERT INTO nodes(key, parent, structure_family, metadata, specs) "
            "VALUES ('H_sw_00004', 0, 'container', '{}', '[]')"
        )
    before = catalog.read_bytes()
    code, out = run_check(spinwave, "--catalog", str(catalog))
    assert code == 1
    hits = [f for f in out["findings"] if f["rule"] == "key_in_catalog"]
    assert [(h["row"], h["value"]) for h in hits] == [(3, "H_sw_00004")]
    assert catalog.read_bytes() == before
    # under another parent there is no collision
    report = check_manifests([spinwave.pair], spinwave.base_dir, catalog=str(catalog), parent="elsewhere")
    assert report.ok
    # the same Hamiltonian registered before (same huid) is a re-run, as `ingest` says: no collision
    huid = spinwave.hamiltonians["huid"][3].as_py()
    with sqlite3.connect(catalog) as db:
        db.execute("UPDATE nodes SET metadata = json_object('huid', ?) WHERE key = 'H_sw_00004'", (huid,))
    assert check_manifests([spinwave.pair], spinwave.base_dir, catalog=str(catalog)).ok


def test_catalog_that_is_not_tiled(spinwave: Dataset, tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-catalog.db"
    bogus.write_bytes(b"hello" * 100)
    report = check_manifests([spinwave.pair], spinwave.base_dir, catalog=str(bogus))
    [hit] = findings(report, "catalog_unusable")
    assert "not" in hit["message"]


def test_orphan_and_childless_hamiltonian(spinwave: Dataset) -> None:
    art = spinwave.artifacts
    art = set_cell(art, "huid", 0, "ghost")
    art = set_cell(art, "huid", 1, "ghost")
    spinwave.write(artifacts=art)
    report = check_manifests([spinwave.pair], spinwave.base_dir)
    assert [f["row"] for f in findings(report, "artifact_orphan")] == [0, 1]
    [warn] = findings(report, "hamiltonian_without_artifacts")
    assert warn["severity"] == "warning" and warn["value"] == "sw_00001"


def test_childless_hamiltonian_is_only_a_warning(spinwave: Dataset) -> None:
    art = spinwave.artifacts
    spinwave.write(artifacts=art.filter(pc.not_equal(art["huid"], "sw_00002")))
    code, out = run_check(spinwave)
    assert code == 0 and out["warnings"] == 1 and out["errors"] == 0


def test_type_duplicate_suggests_names(vdp: Dataset) -> None:
    art = vdp.artifacts
    # two magnetization curves of the same Hamiltonian both called mh_curve
    art = set_cell(set_cell(art, "type", 1, "mh_curve"), "type", 2, "mh_curve")
    vdp.write(artifacts=art)
    report = check_manifests([vdp.pair], vdp.base_dir)
    hits = findings(report, "type_duplicate")
    assert [h["row"] for h in hits] == [1, 2]
    # same dataset path (/curve) in both: the file name disambiguates
    assert "mh_curve_mh_x_7T" in hits[0]["message"] and "mh_curve_mh_y_7T" in hits[1]["message"]


def test_type_invalid(spinwave: Dataset) -> None:
    spinwave.write(artifacts=set_cell(spinwave.artifacts, "type", 5, "a/b"))
    report = check_manifests([spinwave.pair], spinwave.base_dir)
    assert [f["row"] for f in findings(report, "type_invalid")] == [5]


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.h5", "sub/../../x.h5", ""])
def test_file_invalid(spinwave: Dataset, path: str) -> None:
    spinwave.write(artifacts=set_cell(spinwave.artifacts, "file", 4, path))
    report = check_manifests([spinwave.pair], spinwave.base_dir)
    assert [f["row"] for f in findings(report, "file_invalid")] == [4]
    assert not [f for f in report.findings.to_pylist() if f["rule"].startswith("file_") and f["rule"] != "file_invalid"]


def _point_row_at(ds: Dataset, row: int, name: str) -> None:
    ds.write(artifacts=set_cell(ds.artifacts, "file", row, name))


def test_file_problems_each_have_their_own_message(spinwave: Dataset, tmp_path: Path) -> None:
    base = spinwave.base_dir
    (base / "a_directory.h5").mkdir()
    (base / "zero.h5").write_bytes(b"")
    (base / "text.h5").write_text("Q R dR dQ\n1 2 3 4\n")
    whole = (base / "sw_00001.h5").read_bytes()
    (base / "truncated.h5").write_bytes(whole[: len(whole) // 3])
    outside = tmp_path / "elsewhere.h5"
    outside.write_bytes(whole)
    (base / "escape.h5").symlink_to(outside)
    (base / "inside_link.h5").symlink_to(base / "sw_00002.h5")
    art = spinwave.artifacts
    for row, name in enumerate(
        ["a_directory.h5", "zero.h5", "text.h5", "truncated.h5", "escape.h5", "nope.h5", "inside_link.h5"]
    ):
        art = set_cell(art, "file", row, name)
    spinwave.write(artifacts=art)
    code, out = run_check(spinwave)
    assert code == 1
    by_row = {f["row"]: f for f in out["findings"] if f["rule"].startswith("file_")}
    assert by_row[0]["rule"] == "file_not_regular" and "directory" in by_row[0]["message"]
    assert by_row[1]["rule"] == "file_empty" and "0 bytes" in by_row[1]["message"]
    assert by_row[2]["rule"] == "file_not_hdf5"
    assert by_row[3]["rule"] == "file_corrupt" and "truncated" in by_row[3]["message"]
    assert by_row[4]["rule"] == "file_outside_base"
    assert by_row[5]["rule"] == "file_missing"
    assert 6 not in by_row  # a symlink that stays inside the base directory is fine
    assert "Traceback" not in json.dumps(out)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to drop privileges")
def test_unreadable_file(tmp_path: Path) -> None:
    """Permission denied has its own message. Root reads everything, so when run as
    root the file is opened in a forked child that has dropped to user nobody (only
    the h5py part runs there: polars' thread pool does not survive a fork)."""
    import tempfile

    from manifest_broker.catalog.probe import _probe_file

    base = Path(tempfile.mkdtemp(prefix="broker-perm-"))
    os.chmod(base, 0o755)
    locked = base / "locked.h5"
    with h5py.File(locked, "w") as f:
        f["x"] = np.arange(3)
    os.chmod(locked, 0o000)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            [(_dataset, status, message, *_rest)] = _probe_file(str(locked), ["/x"], str(base))
            os.write(write_end, json.dumps([status, message]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        status, message = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert status == "unreadable" and "permission denied" in message


def test_dataset_rules(spinwave: Dataset) -> None:
    base = spinwave.base_dir
    with h5py.File(base / "odd.h5", "w") as f:
        f.create_group("group_only")
        ragged = f.create_dataset("ragged", (3,), dtype=h5py.vlen_dtype(np.float64))
        ragged[0] = np.arange(3.0)
        f.create_dataset("empty", shape=(0, 4), dtype="f4")
    art = spinwave.artifacts
    for row, (file, dataset) in enumerate(
        [
            ("sw_00001.h5", "/nope"),
            ("odd.h5", "/group_only"),
            ("odd.h5", "/ragged"),
            ("odd.h5", "/empty"),
            ("odd.h5", ""),
        ]
    ):
        art = set_cell(set_cell(art, "file", row, file), "dataset", row, dataset)
    spinwave.write(artifacts=art)
    report = check_manifests([spinwave.pair], base)
    rules = {f["row"]: f["rule"] for f in report.findings.to_pylist() if f["column"] == "dataset"}
    assert rules == {
        0: "dataset_missing",
        1: "dataset_not_a_dataset",
        2: "dataset_ragged",
        3: "dataset_empty",
        4: "dataset_invalid",
    }
    assert findings(report, "dataset_empty")[0]["severity"] == "warning"


def test_index_rules(edrixs: Dataset, spinwave: Dataset) -> None:
    art = edrixs.artifacts
    art = set_cell(art, "index", 0, 6)  # first axis has length 6
    art = set_cell(art, "index", 1, -1)
    art = set_cell(art, "index", 2, None)  # null on a batched dataset
    art = set_cell(art, "index", 3, 4)  # duplicates row 4's locator
    edrixs.write(artifacts=art)
    report = check_manifests([edrixs.pair], edrixs.base_dir)
    assert [f["row"] for f in findings(report, "index_out_of_range")] == [0, 1]
    assert "length 6" in findings(report, "index_out_of_range")[0]["message"]
    assert [f["row"] for f in findings(report, "index_inconsistent")] == [2]
    assert [f["row"] for f in findings(report, "locator_duplicate")] == [3, 4]
    # an index into a scalar dataset
    with h5py.File(spinwave.base_dir / "sw_00001.h5") as f:
        assert f["params/J1"].shape == ()
    art = (
        set_cell(set_cell(spinwave.artifacts, "dataset", 0, "/params/J1"), "index", 0, 0)
        if "index" in spinwave.artifacts.column_names
        else set_cell(
            spinwave.artifacts.append_column("index", pa.nulls(spinwave.artifacts.num_rows, pa.int64())), "index", 0, 0
        )
    )
    art = set_cell(art, "dataset", 0, "/params/J1")
    spinwave.write(artifacts=art)
    report = check_manifests([spinwave.pair], spinwave.base_dir)
    assert "scalar" in findings(report, "index_out_of_range")[0]["message"]


def test_metadata_rules(spinwave: Dataset) -> None:
    ham = spinwave.hamiltonians
    ham = set_cell(ham, "J1", 1, float("nan"))
    ham = ham.append_column("curve", pa.array([[1.0], [2.0], [float("inf")], None]))
    ham = ham.append_column("blob", pa.array([b"x", b"y", b"z", b"w"]))
    ham = ham.append_column("label", pa.array(["NaN", "Infinity", "fine", None]))  # strings are fine
    spinwave.write(hamiltonians=ham)
    report = check_manifests([spinwave.pair], spinwave.base_dir)
    assert sorted((f["column"], f["row"]) for f in findings(report, "metadata_not_finite")) == [("J1", 1), ("curve", 2)]
    assert [f["column"] for f in findings(report, "metadata_binary")] == ["blob"]


def test_no_parameter_variation(spinwave: Dataset) -> None:
    ham = spinwave.hamiltonians
    for p in ("J1", "J2", "K", "D"):
        ham = ham.set_column(ham.schema.get_field_index(p), p, pa.array([1.0] * ham.num_rows))
    spinwave.write(hamiltonians=ham)
    code, out = run_check(spinwave)
    assert code == 0
    assert [f["rule"] for f in out["findings"]] == ["no_parameter_variation"]


def test_unreadable_manifest(spinwave: Dataset) -> None:
    spinwave.pair.artifacts.write_text("huid,type\n")
    code, out = run_check(spinwave)
    assert code == 1 and out["findings"][0]["rule"] == "manifest_unreadable"


def test_odd_number_of_manifests_is_a_usage_error(spinwave: Dataset) -> None:
    result = runner.invoke(app, ["check", str(spinwave.pair.hamiltonians), "--base-dir", str(spinwave.base_dir)])
    assert result.exit_code == 2 and "pairs" in result.output


def test_feedback_message(spinwave: Dataset, tmp_path: Path) -> None:
    spinwave.write(artifacts=set_cell(spinwave.artifacts, "file", 0, "missing.h5"))
    feedback = tmp_path / "feedback.md"
    result = runner.invoke(
        app,
        [
            "check",
            str(spinwave.pair.hamiltonians),
            str(spinwave.pair.artifacts),
            "--base-dir",
            str(spinwave.base_dir),
            "--feedback",
            str(feedback),
        ],
    )
    assert result.exit_code == 1
    text = feedback.read_text()
    assert "Files must be accessible from the server" in text
    assert "missing.h5" in text and "row 0" in text and "What I need:" in text


def test_a_mistyped_data_directory_is_said_once(spinwave: Dataset, tmp_path: Path) -> None:
    for wrong, what in ((tmp_path / "dat", "does not exist"), (spinwave.pair.hamiltonians, "is a file")):
        report = check_manifests([spinwave.pair], wrong, use_cache=False)
        [hit] = findings(report, "base_dir_missing")
        assert hit["manifest"] == str(wrong) and what in hit["message"] and "--base-dir" in hit["message"]
        first = report.findings.to_pylist()[0]
        assert first["rule"] == "base_dir_missing"  # shown above the file_missing of every row
        assert len(findings(report, "file_missing")) == spinwave.artifacts.num_rows
    assert findings(check_manifests([spinwave.pair], spinwave.base_dir, use_cache=False), "base_dir_missing") == []
