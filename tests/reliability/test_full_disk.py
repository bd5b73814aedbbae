"""A catalog, a lake and a probe cache each on a small filesystem (a real tmpfs with a
size limit) that fills during the run: a one-line error naming the path (a warning,
for the cache, whose loss only slows the next check), and everything as it was."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest

from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.generators.tnr import synthesize_run
from manifest_broker.tnr.lake import scan
from tests.integration.catalog_dump import dump, integrity_problems
from tests.reliability.conftest import BROKER, batched_dataset, warm_and_bulk

pytestmark = pytest.mark.integration


@contextmanager
def small_filesystem(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at a new directory below ``where`` (needs root, as
    on the CI machine; a machine that cannot mount fails this test, it never skips)."""
    mount = where / f"small-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True, capture_output=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(path: Path) -> Path:
    """Write zeros to ``path`` until its filesystem is full."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return path


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*BROKER, *args], capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}
    )


def _one_line_error(done: subprocess.CompletedProcess, path: Path) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("error:") and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert str(path) in done.stderr and "Traceback" not in done.stderr


def test_catalog_filesystem_fills(tmp_path: Path) -> None:
    base, warm, bulk = warm_and_bulk(tmp_path, 30, 5000)
    with small_filesystem(tmp_path, "2m") as small:
        catalog = small / "catalog.db"
        ingest([warm], base, str(catalog), parent="warm")
        before = dump(str(catalog))
        done = _run(
            "ingest",
            str(bulk.hamiltonians),
            str(bulk.artifacts),
            "--base-dir",
            str(base),
            "--catalog",
            str(catalog),
            "--parent",
            "bulk",
        )
        _one_line_error(done, catalog)
        assert "full" in done.stderr and "nothing was written" in done.stderr
        assert dump(str(catalog)) == before
        assert all(v == 0 for v in integrity_problems(str(catalog)).values())
        # a new catalog that cannot even be initialised: refused the same way, completed later
        fresh = small / "fresh.db"
        filler = _fill(small / "filler")
        done = _run(
            "ingest", str(warm.hamiltonians), str(warm.artifacts), "--base-dir", str(base), "--catalog", str(fresh)
        )
        _one_line_error(done, fresh)
        filler.unlink()
        done = _run(
            "ingest", str(warm.hamiltonians), str(warm.artifacts), "--base-dir", str(base), "--catalog", str(fresh)
        )
        assert done.returncode == 0, done.stderr
        assert all(v == 0 for v in integrity_problems(str(fresh)).values())


def test_lake_filesystem_fills(tmp_path: Path) -> None:
    small_run = synthesize_run(tmp_path / "small", run_number=218001, n_slices=4, seed=1, points=(20, 30))
    big_run = synthesize_run(tmp_path / "big", run_number=218002, n_slices=400, seed=2, points=(3000, 4000))
    with small_filesystem(tmp_path, "3m") as small:
        lake = small / "lake"
        done = _run(
            "tnr",
            "package",
            str(small_run.split_file),
            str(small_run.reduced_dir),
            str(small_run.template),
            "--lake",
            str(lake),
        )
        assert done.returncode == 0, done.stderr
        before = {t: pl.DataFrame(scan(lake, t)).sort("run_number") for t in ("runs", "reflectivity")}
        done = _run(
            "tnr",
            "package",
            str(big_run.split_file),
            str(big_run.reduced_dir),
            str(big_run.template),
            "--lake",
            str(lake),
        )
        _one_line_error(done, lake)
        for table, rows in before.items():
            assert pl.DataFrame(scan(lake, table)).sort("run_number").equals(rows)
        check = _run("tnr", "check", "--lake", str(lake))
        assert check.returncode == 0, check.stdout + check.stderr


def test_probe_cache_filesystem_full(tmp_path: Path) -> None:
    base = tmp_path / "data"
    base.mkdir()
    pair = ManifestPair(*batched_dataset(base, tmp_path / "m", "c", 50, file="c.h5"))
    with small_filesystem(tmp_path, "64k") as small:
        cache = small / "cache"
        cache.mkdir()
        _fill(cache / "filler")
        old = sorted(cache.iterdir())
        catalog = tmp_path / "catalog.db"
        done = _run(
            "ingest",
            str(pair.hamiltonians),
            str(pair.artifacts),
            "--base-dir",
            str(base),
            "--catalog",
            str(catalog),
            env={"BROKER_CACHE_DIR": str(cache)},
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr.startswith("warning: probe cache not updated") and str(cache) in done.stderr
        assert "created 50 Hamiltonians" in done.stdout
        assert sorted(cache.iterdir()) == old  # no partial file left behind
