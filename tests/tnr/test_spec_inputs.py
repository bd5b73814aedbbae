"""tNR runs built by hand from the spec and shared/notes/tnr-formats.md, not by
generators/: the spec's inputs only (no reduction_options.json), a template with
no optional element, no sidecar, per-frequency split files, the reducer's clock,
other encodings, schema evolution, all-or-nothing commits and a lake that stays small."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from manifest_broker.commandline._tnr import packager
from manifest_broker.commandline.main import app
from manifest_broker.tnr.lake import LakeError, catalog, check_lake, scan, write_run
from manifest_broker.tnr.package import package_run
from tests.tnr.spec_run import FILES, INTERVALS, PLAIN, RUN, TEMPLATE, kill_between_commits, spec_run

runner = CliRunner()


def _rows(lake: Path, name: str) -> pl.DataFrame:
    """A table's rows in a stable order (NaN equal to NaN when compared)."""
    order = ["package_id", "slice_index"] if name == "reflectivity" else ["package_id"]
    return pl.DataFrame(scan(lake, name)).sort(order)


def _package_cli(split: Path, reduced: Path, xml: Path, lake: Path, *extra: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["tnr", "package", str(split), str(reduced), str(xml), "--lake", str(lake), *extra])


def test_only_the_spec_inputs_package_into_a_fresh_lake(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    lake = tmp_path / "lake"
    result = _package_cli(split, reduced, xml, lake)
    assert result.exit_code == 0, result.output
    assert "no tz_offset in reduction_options.json" in result.output and "Traceback" not in result.output
    runs = scan(lake, "runs").to_pylist()
    assert len(runs) == 1
    row = runs[0]
    assert (row["run_number"], row["reduction_options_json"], row["event_file"], row["theta_offset"]) == (
        RUN,
        None,
        None,
        None,
    )
    assert row["reduction_template_xml"] == TEMPLATE and row["tz_offset_hours"] is None
    assert (row["total_duration"], row["n_intervals"], row["n_reduced_files"], row["mantid_version"]) == (
        1320.0,
        4,
        4,
        "6.12.0",
    )
    assert row["incident_angle"] == [0.45] and row["angle_offset"] == [None] and row["data_sets"] == ["218389"]
    refl = pl.DataFrame(scan(lake, "reflectivity")).sort("slice_index")
    assert refl["filename"].to_list() == [f"r{RUN}_{n}.txt" for n in FILES]
    assert refl["interval_label"].to_list() == [iv["label"] for iv in INTERVALS]
    assert refl["n_points"].to_list() == [2, 3, 2, 3] and refl["n_nan"].to_list() == [0, 1, 0, 1]
    assert refl["q_summing"].to_list() == [None, "False", None, "False"]
    assert refl["package_id"].n_unique() == 1 and refl["package_id"][0] == row["package_id"]
    # polars reads the Iceberg table itself
    table = catalog(lake).load_table("tnr.reflectivity")
    eis = pl.scan_iceberg(table).filter(pl.col("interval_type") == "eis").select("interval_label", "Q").collect()
    assert eis["interval_label"].to_list() == ["sequence_1_eis_1", "Cell 7, OCV scan 04 after"]


def test_a_template_without_optional_elements(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run", template="<Reduction>\n</Reduction>\n")
    lake = tmp_path / "lake"
    result = _package_cli(split, reduced, xml, lake)
    assert result.exit_code == 0, result.output
    row = scan(lake, "runs").to_pylist()[0]
    assert (row["instrument_name"], row["mantid_version"], row["n_angles"], row["data_sets"], row["q_step"]) == (
        None,
        None,
        0,
        [],
        [],
    )


@pytest.mark.parametrize("command", ["broker", "iceberg-packager"])
def test_no_sidecar_with_run_number(tmp_path: Path, command: str) -> None:
    split, reduced, xml = spec_run(tmp_path / "run", sidecar=False)
    lake, out = tmp_path / "lake", tmp_path / "out" / "tnr.parquet"
    out.parent.mkdir()
    args = [str(split), str(reduced), str(xml), "--lake", str(lake), "-o", str(out)]
    invoke = (
        (lambda a: runner.invoke(app, ["tnr", "package", *a]))
        if command == "broker"
        else (lambda a: runner.invoke(packager, a))
    )
    refused = invoke(args)
    assert refused.exit_code == 1 and "give --run-number" in refused.output and not lake.exists() and not out.exists()
    # an output folder that cannot be made is refused before anything is read or written (#27: one that does not
    # exist yet is created, as the reference does)
    (tmp_path / "afile").write_text("")
    missing = invoke([*args[:-1], str(tmp_path / "afile" / "nowhere" / "tnr.parquet"), "--run-number", str(RUN)])
    assert missing.exit_code == 1 and "cannot create its folder" in missing.output and not lake.exists()
    result = invoke([*args, "--run-number", str(RUN)])
    assert result.exit_code == 0, result.output
    row = scan(lake, "runs").to_pylist()[0]
    assert (row["run_number"], row["total_duration"], row["reduction_metadata_json"]) == (RUN, None, None)
    assert pa.parquet.read_table(out).num_rows == 4
    assert pa.parquet.read_table(out.with_name("tnr_metadata.parquet"))["run_number"].to_pylist() == [RUN]


def test_the_reducers_clock_utc_is_local_plus_offset(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    (reduced / "reduction_options.json").write_text(json.dumps({"tz_offset": 5.0, "theta_offset": 0, "scan_index": 1}))
    package = package_run(split, reduced, xml)
    first = package.reflectivity.to_pylist()[0]
    # local 22:58 on May 1 with the reducer's default 5.0 (US Eastern standard) is 03:58 UTC on May 2
    assert first["interval_start"] == datetime(2025, 5, 2, 3, 58, tzinfo=UTC)
    assert package.run["tz_offset_hours"].to_pylist() == [5.0]
    # --tz-offset takes the same convention and wins over the options file
    given = package_run(split, reduced, xml, tz_offset=4.0).reflectivity.to_pylist()[1]
    assert given["interval_start"] == datetime(2025, 5, 2, 2, 59, tzinfo=UTC)
    assert given["interval_end"] == datetime(2025, 5, 2, 2, 59, 30, 500000, tzinfo=UTC)


def test_theta_offset_may_change_type_between_runs(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for number, theta in ((RUN, 0), (RUN + 1, 0.5)):
        split, reduced, xml = spec_run(tmp_path / str(number), run=number)
        (reduced / "reduction_options.json").write_text(json.dumps({"theta_offset": theta, "tz_offset": 5}))
        result = _package_cli(split, reduced, xml, lake)
        assert result.exit_code == 0, result.output
    assert sorted(r["theta_offset"] for r in scan(lake, "runs").to_pylist()) == [0.0, 0.5]


def test_per_frequency_split_files_match_by_filename(tmp_path: Path) -> None:
    root = tmp_path / "run"
    reduced = root / "reduced"
    reduced.mkdir(parents=True)
    intervals = [
        {
            "filename": f"scan {f}.mpt",
            "frequency_hz": hz,
            "measurement_index": k,
            "start": f"2025-05-01T22:{10 * f + k:02d}:00",
            "end": f"2025-05-01T22:{10 * f + k:02d}:30",
            "duration_seconds": 30.0,
            "ewe_v": 0.1,
            "z_ohm": 12.5,
            "im_z_ohm": -3.0,
            "phase_deg": -13.5,
        }
        for f in (1, 2)
        for k, hz in enumerate((1000.0, 100.0, 10.0))
    ]
    split = root / "per-frequency.json"
    split.write_text(
        json.dumps(
            {
                "source_directory": "/eis",
                "pattern": "*.mpt",
                "resolution": "per-frequency",
                "n_intervals": 6,
                "intervals": intervals,
            }
        )
    )
    for f in (1, 2):  # the reducer names files after `filename`; the last frequency of each file overwrote the others
        (reduced / f"r{RUN}_scan_{f}.mpt.txt").write_text(PLAIN)
    xml = root / "t.xml"
    xml.write_text(TEMPLATE)
    strict = _package_cli(split, reduced, xml, tmp_path / "lake", "--run-number", str(RUN), "--strict")
    assert strict.exit_code == 1 and "both write" in strict.output
    package = package_run(split, reduced, xml, run_number=RUN)
    rows = package.reflectivity.to_pylist()
    assert [(r["interval_label"], r["split_index"], r["frequency_hz"], r["z_ohm"]) for r in rows] == [
        ("scan 1.mpt", 2, 10.0, 12.5),
        ("scan 2.mpt", 5, 10.0, 12.5),
    ]
    assert sum("both write" in w for w in package.warnings) == 4


def test_template_encodings(tmp_path: Path) -> None:
    latin = '<?xml version="1.0" encoding="ISO-8859-1"?>\n' + TEMPLATE.replace("REFL", "REFL \u00e9t\u00e9")
    split, reduced, xml = spec_run(tmp_path / "run")
    xml.write_bytes(latin.encode("latin-1"))
    package = package_run(split, reduced, xml)
    row = package.run.to_pylist()[0]
    assert row["reduction_template_xml"] == latin and row["template_encoding"] == "iso8859-1"
    assert row["instrument_name"] == "REFL \u00e9t\u00e9"
    xml.write_bytes(TEMPLATE.replace("REFL", "REFL \u00e9t\u00e9").encode("latin-1"))  # no declaration: not UTF-8
    lake = tmp_path / "lake"
    result = _package_cli(split, reduced, xml, lake)
    assert result.exit_code == 1 and "Traceback" not in result.output and not lake.exists()
    assert (
        f"{xml}:2: reduction template is not valid utf-8 (invalid continuation byte); declare its encoding"
        in result.output
    )


def test_a_directory_where_a_file_belongs(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    lake = tmp_path / "lake"
    for args in ((reduced, reduced, xml), (split, split, xml), (split, reduced, reduced)):
        result = _package_cli(*args, lake)  # type: ignore[arg-type]
        assert result.exit_code == 1 and "Traceback" not in result.output and not lake.exists(), result.output
        assert "is a directory" in result.output or "is not a directory" in result.output


def test_an_older_table_schema_is_evolved(tmp_path: Path) -> None:
    """A lake made by an older packager (fewer fields) gains the new ones; old rows read null."""
    from manifest_broker.tnr.lake import TABLE_PROPERTIES
    from manifest_broker.tnr.schema import REFLECTIVITY, RUNS, iceberg_schema, partition_spec

    lake = tmp_path / "lake"
    newer = {"warnings_json", "template_sha256", "template_encoding", "frequency_hz", "phase_deg", "split_index"}
    cat = catalog(lake)
    cat.create_namespace("tnr")
    for name, fields in (("reflectivity", REFLECTIVITY), ("runs", RUNS)):
        schema = iceberg_schema([f for f in fields if f[0] not in newer])
        cat.create_table(
            f"tnr.{name}", schema=schema, partition_spec=partition_spec(schema), properties=TABLE_PROPERTIES
        )
    split, reduced, xml = spec_run(tmp_path / "run")
    result = _package_cli(split, reduced, xml, lake)
    assert result.exit_code == 0, result.output
    refl = catalog(lake).load_table("tnr.reflectivity")
    assert {"frequency_hz", "phase_deg", "split_index"} <= set(refl.schema().column_names)
    assert scan(lake, "runs").to_pylist()[0]["template_sha256"] is not None
    assert scan(lake, "reflectivity")["split_index"].to_pylist() == [0, 1, 2, 3]


def test_a_failing_second_commit_leaves_both_tables_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyiceberg.table import Transaction

    split, reduced, xml = spec_run(tmp_path / "run")
    lake = tmp_path / "lake"
    first = package_run(split, reduced, xml)
    write_run(lake, first)
    before = {name: _rows(lake, name) for name in ("reflectivity", "runs")}
    (reduced / f"r{RUN}_{FILES[0]}.txt").write_text(PLAIN + PLAIN)  # the new packaging differs
    second = package_run(split, reduced, xml)
    real_commit = Transaction.commit_transaction

    def failing(self: Transaction):  # type: ignore[no-untyped-def]
        if self._table.name()[-1] == "runs":
            raise OSError(28, "No space left on device")
        return real_commit(self)

    monkeypatch.setattr(Transaction, "commit_transaction", failing)
    with pytest.raises(LakeError, match="was put back, the lake is as before"):
        write_run(lake, second)
    monkeypatch.setattr(Transaction, "commit_transaction", real_commit)
    for name in ("reflectivity", "runs"):
        assert _rows(lake, name).equals(before[name]), name
    assert check_lake(catalog(lake)) == []


def test_a_kill_between_the_commits_is_found_and_mended(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    lake = tmp_path / "lake"
    assert _package_cli(split, reduced, xml, lake).exit_code == 0
    before = {name: _rows(lake, name) for name in ("reflectivity", "runs")}
    old_id = before["runs"]["package_id"][0]

    kill_between_commits(split, reduced, xml, lake)
    checked = runner.invoke(app, ["tnr", "check", "--lake", str(lake)])
    assert checked.exit_code == 1 and f"run {RUN}: reflectivity has packaging(s)" in " ".join(checked.output.split())
    repaired = runner.invoke(app, ["tnr", "check", "--lake", str(lake), "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert f"reflectivity put back to packaging {old_id}" in " ".join(repaired.output.split())
    for name in ("reflectivity", "runs"):
        assert _rows(lake, name).equals(before[name]), name

    kill_between_commits(split, reduced, xml, lake)  # and a later packaging of the run mends it by itself
    again = _package_cli(split, reduced, xml, lake)
    assert again.exit_code == 0 and "repaired:" in again.output
    assert runner.invoke(app, ["tnr", "check", "--lake", str(lake)]).exit_code == 0
    runs = scan(lake, "runs").to_pylist()
    assert len(runs) == 1 and set(scan(lake, "reflectivity")["package_id"].to_pylist()) == {runs[0]["package_id"]}


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_ten_repackagings_keep_the_lake_small(tmp_path: Path) -> None:
    from manifest_broker.generators.tnr import synthesize_run

    run = synthesize_run(tmp_path / "run", n_slices=120, seed=1, points=(200, 300))
    lake = tmp_path / "lake"
    for _ in range(10):
        result = _package_cli(run.split_file, run.reduced_dir, run.template, lake)
        assert result.exit_code == 0, result.output
    tables = [catalog(lake).load_table(f"tnr.{name}") for name in ("reflectivity", "runs")]
    live = sum(sum(t.inspect.data_files()["file_size_in_bytes"].to_pylist()) for t in tables)
    warehouse = _tree_bytes(lake / "warehouse")
    assert warehouse <= 2 * live, (warehouse, live)
    assert all(len(t.snapshots()) <= 2 for t in tables)
    assert scan(lake, "reflectivity").num_rows == 120 and scan(lake, "runs").num_rows == 1
    kept = runner.invoke(app, ["tnr", "maintain", "--lake", str(lake), "--keep", "1"])
    assert kept.exit_code == 0 and "tnr.reflectivity: 1 snapshot(s) expired" in kept.output
    assert _tree_bytes(lake / "warehouse") < warehouse


def test_read_commands_never_create_a_lake(tmp_path: Path) -> None:
    lake = tmp_path / "nowhere"
    for args in (
        ["tnr", "sql", "SELECT 1", "--lake", str(lake)],
        ["tnr", "plot", "--run", "1", "-o", str(tmp_path / "p.png"), "--lake", str(lake)],
        ["tnr", "check", "--lake", str(lake)],
        ["tnr", "maintain", "--lake", str(lake)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and "no lake here" in result.output and "Traceback" not in result.output, (
            result.output
        )
    assert not lake.exists()


def test_an_interval_field_of_the_wrong_type(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    data = json.loads(split.read_text())
    data["intervals"][0]["hold_index"] = "first"
    split.write_text(json.dumps(data))
    lake = tmp_path / "lake"
    result = _package_cli(split, reduced, xml, lake)
    assert result.exit_code == 1 and "Traceback" not in result.output and not lake.exists()
    assert f"{split}: an interval field has an unexpected type" in result.output
