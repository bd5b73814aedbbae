"""A tNR run end to end: matching, metadata, Iceberg tables, spec files, bad input."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from manifest_broker.commandline.main import app
from manifest_broker.generators.tnr import SyntheticRun, synthesize_run
from manifest_broker.tnr.inputs import RunInputError
from manifest_broker.tnr.lake import catalog, scan
from manifest_broker.tnr.package import package_run
from manifest_broker.tnr.schema import TABLES
from manifest_broker.tnr.spec_files import spec_paths

runner = CliRunner()


@pytest.fixture
def run(tmp_path: Path) -> SyntheticRun:
    return synthesize_run(tmp_path / "run", n_slices=18, seed=3, points=(20, 60))


def _package(run: SyntheticRun, **kwargs: object):  # type: ignore[no-untyped-def]
    return package_run(run.split_file, run.reduced_dir, run.template, **kwargs)  # type: ignore[arg-type]


def _cli(run: SyntheticRun, lake: Path, *extra: str):  # type: ignore[no-untyped-def]
    return runner.invoke(
        app,
        ["tnr", "package", str(run.split_file), str(run.reduced_dir), str(run.template), "--lake", str(lake), *extra],
    )


def test_files_matched_to_intervals_with_every_field(run: SyntheticRun) -> None:
    package = _package(run)
    rows = package.reflectivity.to_pylist()
    assert [r["interval_label"] for r in rows] == run.labels  # sidecar order
    spaced = [r for r in rows if " " in r["interval_label"]]
    assert (
        spaced
        and spaced[0]["filename"]
        == f"r{run.run_number}_{spaced[0]['interval_label'].replace(',', '_').replace(' ', '_')}.txt"
    )
    split = {iv["label"]: iv for iv in json.loads(run.split_file.read_text())["intervals"]}
    for r in rows:
        iv = split[r["interval_label"]]
        assert r["duration_seconds"] == iv["duration_seconds"] and r["interval_type"] == iv["interval_type"]
        assert r["hold_index"] == iv.get("hold_index") and r["n_frequencies"] == iv.get("n_frequencies")
        assert r["avg_ewe_v"] == iv.get("avg_ewe_v")
        # tz_offset 4 h from reduction_options.json, the reducer's UTC = local + offset: 09:01 local is 13:01 UTC
        local = datetime.fromisoformat(iv["start"])
        assert r["interval_start"].utcoffset().total_seconds() == 0
        assert (r["interval_start"].replace(tzinfo=None) - local).total_seconds() == 4 * 3600
    assert package.run["tz_offset_hours"][0].as_py() == 4.0
    assert _package(run, tz_offset=2.0).run["tz_offset_hours"][0].as_py() == 2.0
    # the stray whole-run REFL_ file is left out, with the warning the README promises
    assert package.warnings == [
        f"REFL_{run.run_number}_combined_data_auto.txt is not a slice file r{run.run_number}_<interval>.txt: left out"
    ]
    run_row = package.run.to_pylist()[0]
    assert run_row["reduction_template_xml"] == run.template.read_text()
    assert run_row["incident_angle"] == [0.45, 1.2, 3.5] and run_row["norm_dataset"] == ["218380", "218381", "218382"]
    assert json.loads(run_row["split_metadata_json"]) == json.loads(run.split_file.read_text())


def test_iceberg_tables_idempotent_per_run(run: SyntheticRun, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    first = _cli(run, lake)
    assert first.exit_code == 0, first.output
    assert _cli(run, lake).exit_code == 0  # re-packaging replaces, never duplicates
    other = synthesize_run(tmp_path / "other", run_number=218390, n_slices=5, points=(10, 20))
    assert _cli(other, lake).exit_code == 0
    refl, runs = scan(lake, "reflectivity"), scan(lake, "runs")
    assert sorted(pl.DataFrame(refl).group_by("run_number").len().rows()) == [(218389, 18), (218390, 5)]
    assert runs.num_rows == 2
    table = catalog(lake).load_table("tnr.reflectivity")
    assert [f.name for f in table.spec().fields] == ["run_number"]
    assert all(field.doc for field in table.schema().fields) and {f.name for f in table.schema().fields} <= {
        f[0] for fields in TABLES.values() for f in fields
    }
    assert table.properties["manifest-broker.packager-version"]
    assert str(table.schema().find_field("Q").field_type) == "list<double>"
    assert str(table.schema().find_field("interval_start").field_type) == "timestamptz"
    lazy = pl.scan_iceberg(table).filter(pl.col("run_number") == 218390).select("Q", "n_points").collect()
    assert lazy.height == 5 and [len(q) for q in lazy["Q"]] == lazy["n_points"].to_list()
    query = runner.invoke(
        app,
        [
            "tnr",
            "sql",
            "SELECT count(*) AS n FROM reflectivity JOIN runs USING (run_number)",
            "--lake",
            str(lake),
            "--json",
        ],
    )
    assert json.loads(query.stdout) == [{"n": 23}]
    png = tmp_path / "run.png"
    plotted = runner.invoke(app, ["tnr", "plot", "--run", "218389", "-o", str(png), "--lake", str(lake)])
    assert plotted.exit_code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_validate_only_writes_nothing(run: SyntheticRun, tmp_path: Path) -> None:
    result = _cli(run, tmp_path / "lake", "--validate-only", "-o", str(tmp_path / "out.parquet"))
    assert result.exit_code == 0 and "nothing written" in result.output
    assert not (tmp_path / "lake").exists() and not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize("name", ["out.pq", "data.parquet", "x_metadata.parquet", "noext"])
def test_spec_files_never_collide(run: SyntheticRun, tmp_path: Path, name: str) -> None:
    result = _cli(run, tmp_path / "lake", "-o", str(tmp_path / name))
    assert result.exit_code == 0, result.output
    data_path, meta_path = spec_paths(tmp_path / name)
    assert data_path != meta_path
    data, meta = pq.read_table(data_path), pq.read_table(meta_path)
    assert data.num_rows == 18 and meta.num_rows == 1
    for table in (data, meta):
        assert not any(str(f.type) == "null" for f in table.schema)
    assert data["interval_start"][0].as_py() == "2025-05-02T13:01:00.000000Z"
    assert data.schema.field("Q").type.value_type == "double" and data.schema.field("run_number").type == "int64"
    assert meta["reduction_template_xml"][0].as_py() == run.template.read_text()


def test_drop_in_iceberg_packager(run: SyntheticRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from manifest_broker.commandline._tnr import packager

    monkeypatch.chdir(tmp_path)
    inputs = sorted(run.reduced_dir.iterdir())
    result = runner.invoke(packager, [str(run.split_file), str(run.reduced_dir), str(run.template)])
    assert result.exit_code == 0, result.output
    # The spec's two files go to the working directory; the reduced folder (an input) is left as it was.
    assert (tmp_path / "tnr_data.parquet").is_file() and (tmp_path / "tnr_data_metadata.parquet").is_file()
    assert sorted(run.reduced_dir.iterdir()) == inputs
    assert scan(tmp_path / "lakehouse", "runs").num_rows == 1


def _edit_json(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_bad_input_names_the_file(run: SyntheticRun, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    sidecar = run.reduced_dir / f"r{run.run_number}_eis_reduction.json"

    def fails(message: str, *extra: str) -> None:
        result = _cli(run, lake, *extra)
        assert result.exit_code == 1 and message in result.output.replace("\n", " "), result.output
        assert "Traceback" not in result.output and not lake.exists()

    # an unmatched reduced file and an interval without one: warnings, errors with --strict
    stray = run.reduced_dir / f"r{run.run_number}_leftover.txt"
    stray.write_text("0.1 1 0.1 0.001\n")
    missing = run.reduced_dir / f"r{run.run_number}_{run.labels[3]}.txt"
    kept = missing.read_bytes()
    missing.unlink()
    package = _package(run)
    assert any("leftover.txt matches no interval" in w for w in package.warnings)
    assert any(f"interval '{run.labels[3]}' has no reduced file" in w for w in package.warnings)
    assert package.reflectivity.num_rows == 17
    fails("matches no interval", "--strict")
    stray.unlink()
    missing.write_bytes(kept)

    # a stray file of another run is left out like any stray (the reducer never writes one): an error with --strict
    other_run = run.reduced_dir / f"r{run.run_number + 1}_hold_initial_0.txt"
    other_run.write_text("0.1 1 0.1 0.001\n")
    package = _package(run)
    assert package.reflectivity.num_rows == 18 and package.run_number == run.run_number
    assert any(
        "r218390_hold_initial_0.txt is of run 218390, not of run 218389: left out" in w for w in package.warnings
    )
    fails("is of run 218390, not of run 218389", "--strict")
    other_run.unlink()

    shutil.copy(sidecar, run.reduced_dir / "r1_eis_reduction.json")
    fails("2 reduction sidecars")
    (run.reduced_dir / "r1_eis_reduction.json").unlink()

    saved = sidecar.read_text()
    sidecar.write_text(saved[:40])
    fails("r218389_eis_reduction.json:")
    fails("malformed reduction sidecar JSON")
    sidecar.unlink()
    fails("no r<run>_eis_reduction.json sidecar; give --run-number")
    assert _package(run, run_number=run.run_number).reflectivity.num_rows == 18
    sidecar.write_text(saved)

    xml = run.template.read_text()
    run.template.write_text(xml.replace("</DataSeries>", ""))
    fails("malformed reduction template XML")
    run.template.write_text(xml)

    # two intervals with one cleaned name: the reducer's later write won (a warning; refused with --strict)
    for path in (run.split_file, sidecar):  # the reducer wrote its sidecar from the same split file
        _edit_json(path, lambda s: s["intervals"][4].update(label=s["intervals"][2]["label"]))
    fails("intervals 2 and 4 both write", "--strict")
    package = _package(run)
    assert any(
        "intervals 2 and 4 both write" in w and "the file holds the later one (4)" in w for w in package.warnings
    )
    row = [r for r in package.reflectivity.to_pylist() if r["interval_label"] == run.labels[2]]
    assert len(row) == 1 and row[0]["split_index"] == 4


def test_bad_reduced_file_stops_the_run(run: SyntheticRun, tmp_path: Path) -> None:
    target = run.reduced_dir / f"r{run.run_number}_{run.labels[5]}.txt"
    target.write_text("0.1 1 0.1 0.001\n0.2 1 0.1\n")
    result = _cli(run, tmp_path / "lake")
    assert result.exit_code == 1 and f"{target.name}:2: expected 4 values" in result.output.replace("\n", "")
    with pytest.raises(RunInputError):
        package_run(run.split_file, run.reduced_dir / "nope", run.template)


def test_package_many(tmp_path: Path) -> None:
    root = tmp_path / "campaign"
    for i in range(3):
        synthesize_run(root / f"run{i}", run_number=218400 + i, n_slices=6, seed=i, points=(10, 30))
    broken = root / "run1" / "reduced" / "r218401_hold_initial_0.txt"
    broken.write_text("0.1 1 0.1\n")
    lake = tmp_path / "lake"
    result = runner.invoke(app, ["tnr", "package-many", str(root), "--lake", str(lake), "--jobs", "2"])
    assert result.exit_code == 1 and "expected 4 values" in result.output
    assert sorted(scan(lake, "runs")["run_number"].to_pylist()) == [218400, 218402]
    broken.unlink()  # now only a warning: an interval without its file
    result = runner.invoke(app, ["tnr", "package-many", str(root), "--lake", str(lake)])
    assert result.exit_code == 0, result.output
    counts = dict(pl.DataFrame(scan(lake, "reflectivity")).group_by("run_number").len().rows())
    assert counts == {218400: 6, 218401: 5, 218402: 6}


@pytest.mark.parametrize("entry", ["broker", "iceberg-packager"])
def test_a_package_process_imports_no_pandas(run: SyntheticRun, tmp_path: Path, entry: str) -> None:
    """pyarrow imports pandas whenever it can (0.3-0.6 s of a run); `tnr package` and
    the drop-in never use it, and in a process of their own they do not import it,
    while the package is still written whole."""
    import subprocess
    import sys

    if entry == "broker":
        call = "from manifest_broker.commandline.main import run as main"
        argv = [
            "broker",
            "tnr",
            "package",
            *map(str, (run.split_file, run.reduced_dir, run.template)),
            "--lake",
            str(tmp_path / "lake"),
            "--json",
        ]
    else:
        call = "from manifest_broker.commandline._tnr import iceberg_packager as main"
        argv = [
            "iceberg-packager",
            *map(str, (run.split_file, run.reduced_dir, run.template)),
            "-o",
            str(tmp_path / "out" / "tnr.parquet"),
        ]
    script = (
        f"import atexit, sys\nsys.argv = {argv!r}\n"
        "atexit.register(lambda: print('pandas imported:', 'pandas' in sys.modules, file=sys.stderr))\n"
        f"{call}\nmain()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "pandas imported: False" in done.stderr, done.stderr
    if entry == "broker":
        assert json.loads(done.stdout)["slices"] == len(run.labels)
    else:
        assert pq.read_table(tmp_path / "out" / "tnr.parquet").num_rows == len(run.labels)
