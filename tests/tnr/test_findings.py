"""The tNR findings of the whole-surface review, each built by hand from the spec and
shared/notes/tnr-formats.md, each a test that failed before its fix: campaigns read
their own files, ambiguous inputs are refused, the reducer's sidecar and naming as
they really are, what is stored when the offset is unknown, finite R ranges, orphan
files of a killed packaging, no child left behind, numbers in JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
from typer.testing import CliRunner

from manifest_broker.commandline.main import app
from manifest_broker.tnr.campaign import find_runs, package_many
from manifest_broker.tnr.inputs import RunInputError
from manifest_broker.tnr.lake import maintain, scan
from manifest_broker.tnr.package import package_run
from tests.tnr.spec_run import PLAIN, RUN, TEMPLATE, kill_between_commits, spec_run

runner = CliRunner()


def _options(reduced: Path, **paths: str) -> None:
    (reduced / "reduction_options.json").write_text(json.dumps({"tz_offset": 5.0, **paths}))


def test_a_copied_campaign_reads_its_own_template(tmp_path: Path) -> None:
    original = tmp_path / "campaign" / "run"
    split, reduced, xml = spec_run(original)
    # The reducer recorded absolute paths of the machine and folder where it ran.
    _options(reduced, intervals_file=str(split), template_file=str(xml))
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "campaign", copy)
    edited = TEMPLATE.replace("<q_step>-0.02</q_step>", "<q_step>-0.01</q_step>")
    (copy / "run" / xml.name).write_text(edited)
    [summary] = package_many(copy, tmp_path / "lake", "tnr")
    assert summary.error is None, summary.error
    [row] = scan(tmp_path / "lake", "runs").to_pylist()
    assert row["q_step"] == [-0.01] and row["reduction_template_xml"] == edited
    assert row["template_path"] == str((copy / "run" / xml.name).resolve())
    assert row["split_path"] == str((copy / "run" / split.name).resolve())
    assert row["reduced_dir"] == str((copy / "run" / "reduced").resolve())


def test_a_recorded_path_outside_the_run_is_read_only_inside_a_root_the_user_names(tmp_path: Path) -> None:
    """#24: reduction_options.json is the provider's data; a path in it outside the
    run's folder is refused, unless the user names a root that holds it."""
    split, reduced, xml = spec_run(tmp_path / "shared")
    elsewhere = tmp_path / "campaign" / "run"
    shutil.copytree(reduced, elsewhere / "reduced")
    _options(elsewhere / "reduced", intervals_file=str(split), template_file=str(xml))
    [refused] = find_runs(tmp_path / "campaign")
    assert isinstance(refused, RunInputError) and "outside" in str(refused) and str(split.name) in str(refused)
    [found] = find_runs(tmp_path / "campaign", inputs_root=tmp_path)
    assert not isinstance(found, RunInputError)
    assert found.template_file == xml and any("lies outside the run's folder" in w for w in found.warnings)


def test_two_split_files_beside_a_run_are_refused(tmp_path: Path) -> None:
    split, reduced, _ = spec_run(tmp_path / "campaign" / "run")
    (reduced / "reduction_options.json").unlink(missing_ok=True)
    shutil.copy(split, split.with_name("another-split.json"))
    [found] = find_runs(tmp_path / "campaign")
    assert isinstance(found, RunInputError) and "2 split files beside the run" in str(found)
    assert "intervals_file" in str(found)


def test_a_sidecar_without_intervals_or_run_number(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    sidecar = reduced / f"r{RUN}_eis_reduction.json"
    data = json.loads(sidecar.read_text())
    del data["intervals"], data["run_number"]
    sidecar.write_text(json.dumps(data))
    package = package_run(split, reduced, xml)
    assert package.run_number == RUN  # from the sidecar's file name
    assert package.reflectivity["interval_label"].to_pylist()[0] == "hold_initial_0"  # the split file's order
    assert package.reflectivity.num_rows == 4
    assert any("no intervals listed" in w for w in package.warnings)


def test_a_stray_file_of_another_run_is_left_out(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    (reduced / f"r{RUN + 1}_hold_initial_0.txt").write_text(PLAIN)
    package = package_run(split, reduced, xml)
    assert package.reflectivity.num_rows == 4 and package.run_number == RUN
    assert any(f"is of run {RUN + 1}" in w for w in package.warnings)


def test_per_frequency_intervals_are_eis(tmp_path: Path) -> None:
    root = tmp_path / "run"
    (root / "reduced").mkdir(parents=True)
    intervals = [
        {
            "filename": "scan 1.mpt",
            "frequency_hz": 1000.0,
            "measurement_index": 0,
            "start": "2025-05-01T22:10:00",
            "end": "2025-05-01T22:10:30",
            "duration_seconds": 30.0,
        }
    ]
    split = root / "split.json"
    split.write_text(
        json.dumps(
            {"source_directory": "/eis", "pattern": "*.mpt", "resolution": "per-frequency", "intervals": intervals}
        )
    )
    (root / "reduced" / f"r{RUN}_scan_1.mpt.txt").write_text(PLAIN)
    (root / "t.xml").write_text(TEMPLATE)
    package = package_run(split, root / "reduced", root / "t.xml", run_number=RUN)
    assert package.reflectivity["interval_type"].to_pylist() == ["eis"]


def test_an_unknown_offset_is_stored_as_unknown(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    package = package_run(split, reduced, xml)  # no reduction_options.json, no --tz-offset
    assert package.run["tz_offset_hours"].to_pylist() == [None]
    first = package.reflectivity.to_pylist()[0]
    assert first["interval_start"].isoformat() == "2025-05-01T22:58:00+00:00"  # taken as UTC, as the warning says


def test_r_range_is_over_finite_values(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    (reduced / f"r{RUN}_hold_initial_0.txt").write_text(
        "1e-2 inf 1e-2 2e-4\n2e-2 -inf 1e-2 5e-4\n3e-2 0.5 1e-2 5e-4\n4e-2 nan 1e-2 5e-4\n"
    )
    row = package_run(split, reduced, xml).reflectivity.to_pylist()[0]
    assert (row["R_min"], row["R_max"]) == (0.5, 0.5)


def test_maintain_removes_what_a_killed_packaging_left_and_nothing_else(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    lake = tmp_path / "lake"
    assert (
        runner.invoke(app, ["tnr", "package", str(split), str(reduced), str(xml), "--lake", str(lake)]).exit_code == 0
    )
    live_before = {name: scan(lake, name).num_rows for name in ("reflectivity", "runs")}
    # A packaging killed after writing its data file, before any commit.
    warehouse = lake / "warehouse"
    data_dir = next(p for p in warehouse.rglob("data") if "reflectivity" in str(p))
    stray = data_dir / f"run_number={RUN}" / "0123456789abcdef-killed.parquet"
    shutil.copy(next((data_dir / f"run_number={RUN}").glob("*.parquet")), stray)
    # And one killed between its commits (repaired by the next packaging).
    kill_between_commits(split, reduced, xml, lake)
    assert (
        runner.invoke(app, ["tnr", "package", str(split), str(reduced), str(xml), "--lake", str(lake)]).exit_code == 0
    )
    young = maintain(lake, orphan_age_hours=1.0)  # younger than the retention window: kept
    assert sum(m.orphans for m in young.values()) == 0 and stray.exists()
    old = time.time() - 7200
    for path in warehouse.rglob("*"):
        os.utime(path, (old, old))
    done = maintain(lake, orphan_age_hours=1.0)
    assert not stray.exists() and sum(m.orphans for m in done.values()) >= 1
    assert {name: scan(lake, name).num_rows for name in ("reflectivity", "runs")} == live_before
    assert runner.invoke(app, ["tnr", "check", "--lake", str(lake)]).exit_code == 0


def test_package_many_with_two_jobs_leaves_no_process_behind(tmp_path: Path) -> None:
    for i in range(3):
        split, reduced, xml = spec_run(tmp_path / "campaign" / f"run{i}", run=RUN + i)
        _options(reduced)
    broker = str(Path(sys.executable).parent / "broker")
    process = psutil.Popen(
        [broker, "tnr", "package-many", str(tmp_path / "campaign"), "--lake", str(tmp_path / "lake"), "--jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen: set[psutil.Process] = set()
    while process.poll() is None:
        try:
            seen |= set(process.children(recursive=True))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
    assert seen, "the campaign ran no worker process"
    deadline = time.monotonic() + 5
    while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_sql_json_keeps_numbers_numbers(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    lake = tmp_path / "lake"
    assert (
        runner.invoke(app, ["tnr", "package", str(split), str(reduced), str(xml), "--lake", str(lake)]).exit_code == 0
    )
    result = runner.invoke(
        app,
        [
            "tnr",
            "sql",
            "SELECT sum(n_points) AS points, avg(Q_min) AS q FROM reflectivity",
            "--lake",
            str(lake),
            "--json",
        ],
    )
    [row] = json.loads(result.stdout)
    # 2 + 3 + 2 + 3 rows in the four files (savetxt and headed, alternately); a sum is a HUGEINT (Decimal) in DuckDB
    assert row == {"points": 10, "q": 0.01}
