"""#24 (tNR side files stay with the run) and the silent findings of #26/#27, each
built by hand from the spec's inputs (tests/tnr/test_spec_inputs.py) and tried as a
provider's folder would carry them: paths and symlinks out of the run, FIFOs, an
oversized template, a sidecar listing an interval twice, stray files, an offset no
time zone has, a run folder without its sidecar, and a watcher waiting in silence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from manifest_broker.commandline._tnr import packager
from manifest_broker.commandline.main import app
from manifest_broker.tnr.campaign import find_runs, package_many
from manifest_broker.tnr.inputs import LIMITS, RunInputError
from manifest_broker.tnr.lake import scan
from manifest_broker.tnr.package import package_run
from tests.tnr.spec_run import RUN, spec_run

runner = CliRunner()
BROKER = str(Path(sys.executable).parent / "broker")
SECRET = "<Reduction><secret>root:x:0:0</secret></Reduction>"


def _options(reduced: Path, **values: object) -> None:
    (reduced / "reduction_options.json").write_text(json.dumps({"tz_offset": 5.0, **values}))


def _outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.xml"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    return secret


def _no_secret_in(lake: Path) -> None:
    for path in lake.rglob("*") if lake.exists() else []:
        if path.is_file():
            assert b"root:x:0:0" not in path.read_bytes(), path


@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_a_template_path_out_of_the_run_is_refused(tmp_path: Path, how: str) -> None:
    secret = _outside(tmp_path)
    split, reduced, xml = spec_run(tmp_path / "campaign" / "run")
    xml.unlink()  # nothing of that name beside the run either
    named = os.path.relpath(secret, reduced) if how == "relative" else str(secret)
    _options(reduced, template_file=named)
    summaries = package_many(tmp_path / "campaign", tmp_path / "lake", "tnr")
    assert [s.error for s in summaries][0] is not None and "outside" in summaries[0].error
    _no_secret_in(tmp_path / "lake")
    # the same file, inside a root the user names: read, with the warning that it lies outside the run
    [found] = find_runs(tmp_path / "campaign", inputs_root=tmp_path)
    assert not isinstance(found, RunInputError) and found.template_file.resolve() == secret


@pytest.mark.parametrize("which", ["template", "options", "sidecar", "split"])
def test_a_symlink_out_of_the_run_is_refused(tmp_path: Path, which: str) -> None:
    secret = _outside(tmp_path)
    split, reduced, xml = spec_run(tmp_path / "campaign" / "run")
    _options(reduced)
    target = {
        "template": xml,
        "options": reduced / "reduction_options.json",
        "sidecar": reduced / f"r{RUN}_eis_reduction.json",
        "split": split,
    }[which]
    if which in ("options", "sidecar", "split"):
        secret.write_text(target.read_text())  # a valid file, but from outside
    target.unlink()
    target.symlink_to(secret)
    summaries = package_many(tmp_path / "campaign", tmp_path / "lake", "tnr")
    assert len(summaries) == 1 and summaries[0].error and "outside" in summaries[0].error, summaries
    _no_secret_in(tmp_path / "lake")


def test_a_fifo_is_never_opened(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "campaign" / "run")
    os.mkfifo(reduced / "reduction_options.json")
    started = time.monotonic()
    result = subprocess.run(
        [BROKER, "tnr", "package-many", str(tmp_path / "campaign"), "--lake", str(tmp_path / "lk")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "FIFO" in result.stderr + result.stdout, result
    once = subprocess.run(
        [BROKER, "tnr", "watch", str(tmp_path / "campaign"), "--lake", str(tmp_path / "lk"), "--once"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert once.returncode == 1 and "FIFO" in once.stderr, once
    assert time.monotonic() - started < 60


def test_a_template_over_the_limit_is_refused_naming_it(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    with open(xml, "ab") as handle:
        handle.truncate(LIMITS["reduction template"] + 1)
    with pytest.raises(RunInputError, match=r"REF_L.*\.xml.*over the limit of 16,777,216"):
        package_run(split, reduced, xml)


def test_a_sidecar_listing_an_interval_twice_is_an_error_naming_it(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    sidecar = reduced / f"r{RUN}_eis_reduction.json"
    data = json.loads(sidecar.read_text())
    data["intervals"].append(dict(data["intervals"][1]))
    sidecar.write_text(json.dumps(data))
    label = data["intervals"][1]["label"]
    with pytest.raises(RunInputError, match=f"intervals listed more than once: {label}"):
        package_run(split, reduced, xml)


def test_q_ranges_are_finite_only_like_r_ranges(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    first = sorted(reduced.glob(f"r{RUN}_hold*.txt"))[0]
    first.write_text("inf 0.5 0.1 0.001\n0.02 0.4 0.1 0.001\n-inf 0.3 0.1 0.001\n0.03 inf 0.1 0.001\n")
    rows = package_run(split, reduced, xml).reflectivity.to_pylist()
    row = next(r for r in rows if r["filename"] == first.name)
    assert (row["Q_min"], row["Q_max"], row["R_min"], row["R_max"]) == (0.02, 0.03, 0.3, 0.5)


@pytest.mark.parametrize(("offset", "code"), [("-12", 0), ("14", 0), ("-12.5", 2), ("14.5", 2), ("100", 2)])
def test_tz_offset_in_the_range_real_zones_use(tmp_path: Path, offset: str, code: int) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    result = runner.invoke(
        app,
        [
            "tnr",
            "package",
            str(split),
            str(reduced),
            str(xml),
            "--lake",
            str(tmp_path / "lk"),
            "--tz-offset",
            offset,
            "--validate-only",
        ],
    )
    assert result.exit_code == code, result.output


def test_an_offset_no_zone_has_in_the_options_names_the_file(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    _options(reduced, tz_offset=100)
    with pytest.raises(RunInputError, match=r"reduction_options.json: tz_offset 100 h is outside"):
        package_run(split, reduced, xml)


def test_package_many_names_a_run_folder_without_its_sidecar(tmp_path: Path) -> None:
    spec_run(tmp_path / "campaign" / "done", run=RUN)
    split, reduced, xml = spec_run(tmp_path / "campaign" / "half", run=RUN + 1, sidecar=False)
    summaries = package_many(tmp_path / "campaign", tmp_path / "lake", "tnr")
    errors = [s.error for s in summaries if s.error]
    assert len(errors) == 1 and f"{reduced}: reduced files but no r<run>_eis_reduction.json sidecar" in errors[0]
    assert scan(tmp_path / "lake", "runs")["run_number"].to_pylist() == [RUN]


def test_a_relative_root_is_made_absolute(tmp_path: Path) -> None:
    spec_run(tmp_path / "campaign" / "run")
    result = subprocess.run(
        [BROKER, "tnr", "package-many", "campaign", "--lake", "lake", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    [run] = json.loads(result.stdout)["runs"]
    assert run["reduced_dir"] == str(tmp_path / "campaign" / "run" / "reduced")


def test_watch_says_which_run_it_waits_on_and_why_once(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "incoming" / "run")
    sidecar = reduced / f"r{RUN}_eis_reduction.json"
    data = json.loads(sidecar.read_text())
    data["reduced_files"] = [f"/elsewhere/r{RUN}_not_written_yet.txt"]
    sidecar.write_text(json.dumps(data))
    once = subprocess.run(
        [BROKER, "tnr", "watch", str(tmp_path / "incoming"), "--lake", str(tmp_path / "lk"), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert once.returncode == 1, once
    assert (
        once.stderr.count(
            f"waiting: {reduced}: waiting for 1 reduced file(s) its sidecar lists and the folder "
            f"lacks (first: r{RUN}_not_written_yet.txt)"
        )
        == 1
    ), once.stderr
    watcher = subprocess.Popen(
        [BROKER, "tnr", "watch", "incoming", "--lake", str(tmp_path / "lk"), "--poll", "0.05"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert watcher.stderr is not None
    lines = [watcher.stderr.readline() for _ in range(2)]  # "watching ...", then the first wait
    assert lines[1].startswith("waiting: incoming/run/reduced: waiting for 1 reduced file(s)"), lines
    time.sleep(1.0)  # twenty more looks
    watcher.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, err = watcher.communicate(timeout=30)
    assert time.monotonic() - started <= 1.0
    assert watcher.returncode == 130 and err.count("waiting:") == 0 and "Traceback" not in err, err


def test_sigterm_stops_watch_at_once_with_exit_0(tmp_path: Path) -> None:
    """SIGTERM is how a service is stopped: exit 0, within a second of the signal
    (once started: a signal during the start-up imports waits for them)."""
    split, reduced, xml = spec_run(tmp_path / "incoming" / "run")
    (reduced / f"r{RUN}_eis_reduction.json").write_text("{")  # being written: the watcher says it waits
    watcher = subprocess.Popen(
        [BROKER, "tnr", "watch", str(tmp_path / "incoming"), "--lake", str(tmp_path / "lk"), "--poll", "5"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watcher.stderr is not None
    lines = [watcher.stderr.readline() for _ in range(2)]
    assert "is not whole JSON (yet)" in lines[1], lines
    time.sleep(0.5)
    watcher.send_signal(signal.SIGTERM)
    started = time.monotonic()
    _, err = watcher.communicate(timeout=30)
    assert time.monotonic() - started <= 1.0 and watcher.returncode == 0, err


def test_the_drop_in_creates_the_output_folder_as_the_reference_does(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    out = tmp_path / "output" / "tnr_dataset.parquet"  # the reference's own example; output/ does not exist yet
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "iceberg-packager"),
            str(split),
            str(reduced),
            str(xml),
            "-o",
            str(out),
            "--lake",
            str(tmp_path / "lk"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert out.is_file() and out.with_name("tnr_dataset_metadata.parquet").is_file()
    (tmp_path / "afile").write_text("")  # a folder cannot be made below a file: refused before any work
    refused = runner.invoke(
        app,
        [
            "tnr",
            "package",
            str(split),
            str(reduced),
            str(xml),
            "-o",
            str(tmp_path / "afile" / "new" / "x.parquet"),
            "--lake",
            str(tmp_path / "lk2"),
        ],
    )
    assert refused.exit_code == 1 and "cannot create its folder" in refused.output, refused.output
    assert not (tmp_path / "lk2").exists()


def test_an_output_that_is_a_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    (tmp_path / "out.parquet").mkdir()
    result = runner.invoke(
        app,
        [
            "tnr",
            "package",
            str(split),
            str(reduced),
            str(xml),
            "-o",
            str(tmp_path / "out.parquet"),
            "--lake",
            str(tmp_path / "lk"),
        ],
    )
    assert result.exit_code == 1 and "is a directory" in result.output and not (tmp_path / "lk").exists()


def test_validate_only_without_a_sidecar_is_valid_with_a_warning(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run", sidecar=False)
    result = runner.invoke(packager, [str(split), str(reduced), str(xml), "--validate-only", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["run_number"] == RUN and answer["written"] is False
    assert any(f"no r<run>_eis_reduction.json sidecar; validated as run {RUN}" in w for w in answer["warnings"])
    packaged = runner.invoke(app, ["tnr", "package", str(split), str(reduced), str(xml), "--lake", str(tmp_path / "l")])
    assert packaged.exit_code == 1 and "give --run-number" in packaged.output


def test_a_lake_whose_folder_does_not_exist_is_an_error(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    result = runner.invoke(
        app, ["tnr", "package", str(split), str(reduced), str(xml), "--lake", str(tmp_path / "nodir" / "lk")]
    )
    assert result.exit_code == 1 and "does not exist" in result.output and not (tmp_path / "nodir").exists()
