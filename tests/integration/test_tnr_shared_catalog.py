"""A lake shared by several writers: pyiceberg's SqlCatalog on a real PostgreSQL (and
the embedded SQLite one), concurrent `broker tnr package-many` processes, every
run exactly once, every snapshot readable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from manifest_broker.generators.tnr import synthesize_run
from manifest_broker.tnr.lake import catalog, check_lake, locate_lake
from tests.pg import new_database

pytestmark = pytest.mark.integration


def _campaigns(root: Path, writers: int, runs_per_writer: int) -> dict[int, int]:
    """One campaign folder per writer; returns run number -> slices."""
    expected = {}
    for w in range(writers):
        for r in range(runs_per_writer):
            number = 300000 + 100 * w + r
            run = synthesize_run(root / f"w{w}" / f"run{r}", run_number=number, n_slices=4, seed=number, points=(5, 12))
            expected[number] = len(run.labels)
    return expected


def _concurrently(root: Path, writers: int, lake: str, *extra: str) -> None:
    broker = str(Path(sys.executable).parent / "broker")
    processes = [
        subprocess.Popen(
            [broker, "tnr", "package-many", str(root / f"w{w}"), "--lake", lake, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for w in range(writers)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output


def _every_run_once_every_snapshot_readable(cat, expected: dict[int, int]) -> None:  # type: ignore[no-untyped-def]
    import polars as pl

    runs = cat.load_table("tnr.runs").scan().to_arrow()
    assert sorted(runs["run_number"].to_pylist()) == sorted(expected)
    refl = pl.DataFrame(cat.load_table("tnr.reflectivity").scan().to_arrow())
    assert dict(refl.group_by("run_number").len().rows()) == expected
    assert check_lake(cat) == []
    for name in ("reflectivity", "runs"):
        table = cat.load_table(f"tnr.{name}")
        for snapshot in table.snapshots():
            table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()


def test_four_writers_twenty_runs_on_postgresql(postgres_server: str, tmp_path: Path) -> None:
    expected = _campaigns(tmp_path / "campaign", writers=4, runs_per_writer=5)
    uri, warehouse = new_database(postgres_server), tmp_path / "shared-warehouse"
    _concurrently(tmp_path / "campaign", 4, uri, "--warehouse", str(warehouse))
    _every_run_once_every_snapshot_readable(catalog(locate_lake(uri, warehouse), create=False), expected)
    # a second round re-packages every run: still exactly once
    _concurrently(tmp_path / "campaign", 4, uri, "--warehouse", str(warehouse))
    _every_run_once_every_snapshot_readable(catalog(locate_lake(uri, warehouse), create=False), expected)


def test_two_writers_on_one_embedded_lake(tmp_path: Path) -> None:
    expected = _campaigns(tmp_path / "campaign", writers=2, runs_per_writer=6)
    lake = tmp_path / "lake"
    _concurrently(tmp_path / "campaign", 2, str(lake))
    _every_run_once_every_snapshot_readable(catalog(lake, create=False), expected)
