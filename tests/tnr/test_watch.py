"""`broker tnr watch`: runs dropped into a folder while it watches are packaged once
each, a run is never packaged before its sidecar is there, a killed watcher started
again neither loses nor duplicates a run, and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from manifest_broker.generators.tnr import synthesize_campaign
from manifest_broker.tnr.lake import LakeError, catalog, check_lake, scan

pytestmark = pytest.mark.slow
BROKER = str(Path(sys.executable).parent / "broker")


def _drop(run: Path, into: Path) -> None:
    """Copy a run the way the reducer writes it: split file, template and reduced
    files first, the sidecar last."""
    target = into / run.name
    (target / "reduced").mkdir(parents=True)
    for path in sorted(run.iterdir()):
        if path.is_file():
            shutil.copy(path, target / path.name)
    sidecars = sorted((run / "reduced").glob("r*_eis_reduction.json"))
    for path in sorted((run / "reduced").iterdir()):
        if path not in sidecars:
            shutil.copy(path, target / "reduced" / path.name)
    for path in sidecars:
        shutil.copy(path, target / "reduced" / (path.name + ".part"))
        os.replace(target / "reduced" / (path.name + ".part"), target / "reduced" / path.name)


def _runs(lake: Path) -> list[int]:
    try:
        return sorted(scan(lake, "runs")["run_number"].to_pylist())
    except LakeError:
        return []


def _wait_for(lake: Path, count: int, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while len(_runs(lake)) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{_runs(lake)} after {timeout}s"
        time.sleep(0.1)


def _watcher(folder: Path, lake: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [BROKER, "tnr", "watch", str(folder), "--lake", str(lake), "--poll", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_runs_dropped_in_are_packaged_once_across_a_kill_and_a_restart(tmp_path: Path) -> None:
    made = synthesize_campaign(tmp_path / "made", 4, n_slices=8, points=(20, 40), flavour="savetxt")
    folder, lake = tmp_path / "incoming", tmp_path / "lake"
    folder.mkdir()
    # A run without its sidecar yet is not complete: nothing is packaged.
    half = folder / made[0].root.name
    shutil.copytree(made[0].root, half, ignore=shutil.ignore_patterns("r*_eis_reduction.json"))
    watcher = _watcher(folder, lake)
    try:
        time.sleep(1.5)
        assert _runs(lake) == [] and watcher.poll() is None
        shutil.rmtree(half)
        for run in made[:2]:
            _drop(run.root, folder)
        _wait_for(lake, 2, watcher)
        watcher.send_signal(signal.SIGKILL)  # killed with nothing in flight, or in the middle of a run
        watcher.wait(timeout=30)
        for run in made[2:]:
            _drop(run.root, folder)
        watcher = _watcher(folder, lake)  # started again: finishes the job, repeats nothing
        _wait_for(lake, 4, watcher)
        time.sleep(1.0)  # a few more looks: nothing is packaged twice
        watcher.send_signal(signal.SIGTERM)
        out, err = watcher.communicate(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, err
    assert "Traceback" not in err and out.count("packaged run") == 2, out
    assert _runs(lake) == [r.run_number for r in made]
    slices = scan(lake, "reflectivity")
    assert slices.num_rows == sum(len(r.labels) for r in made)
    assert check_lake(catalog(lake, create=False), "tnr") == []


def test_a_changed_run_is_packaged_again_and_a_bad_one_is_reported_once(tmp_path: Path) -> None:
    made = synthesize_campaign(tmp_path / "made", 2, n_slices=4, points=(10, 20), flavour="savetxt")
    folder, lake = tmp_path / "incoming", tmp_path / "lake"
    folder.mkdir()
    _drop(made[0].root, folder)
    _drop(made[1].root, folder)
    broken = folder / made[1].root.name / made[1].split_file.name
    broken.write_text("{ not json")
    once = subprocess.run(
        [BROKER, "tnr", "watch", str(folder), "--lake", str(lake), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # --once says that a run it saw was not packaged, by its exit code too (#27)
    assert once.returncode == 1 and once.stdout.count("packaged run") == 1, once.stdout + once.stderr
    assert f"1 run(s) seen but not packaged: {folder / made[1].root.name / 'reduced'}" in once.stderr
    assert [line for line in once.stderr.splitlines() if line.startswith("error:")][0].count("split file") >= 1
    first = scan(lake, "runs").to_pylist()[0]["package_id"]
    again = subprocess.run(
        [BROKER, "tnr", "watch", str(folder), "--lake", str(lake), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.stdout.count("packaged run") == 0, again.stdout
    # The reducer rewrites a slice: the run is packaged again, replacing its rows.
    reduced = folder / made[0].root.name / "reduced"
    slice_file = next(reduced.glob("r*_hold_*.txt"))
    slice_file.write_text(slice_file.read_text())
    os.utime(slice_file, ns=(time.time_ns(), time.time_ns() + 10**9))
    third = subprocess.run(
        [BROKER, "tnr", "watch", str(folder), "--lake", str(lake), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert third.stdout.count("packaged run") == 1
    rows = scan(lake, "runs").to_pylist()
    assert len(rows) == 1 and rows[0]["package_id"] != first


def test_a_sidecar_that_is_a_fifo_is_said_and_never_opened(tmp_path: Path) -> None:
    """`watch --once` on a run whose sidecar is a FIFO said nothing and exited 0 (the
    folder listing took regular files only); the run is named with why, exit 1."""
    made = synthesize_campaign(tmp_path / "made", 1, n_slices=4, points=(10, 20), flavour="savetxt")
    folder, lake = tmp_path / "incoming", tmp_path / "lake"
    folder.mkdir()
    _drop(made[0].root, folder)
    reduced = folder / made[0].root.name / "reduced"
    (sidecar,) = reduced.glob("r*_eis_reduction.json")
    sidecar.unlink()
    os.mkfifo(sidecar)
    once = subprocess.run(
        [BROKER, "tnr", "watch", str(folder), "--lake", str(lake), "--once"], capture_output=True, text=True, timeout=60
    )
    assert once.returncode == 1, once.stdout + once.stderr
    assert "FIFO" in once.stderr and "1 run(s) seen but not packaged" in once.stderr, once.stderr
