"""The benchmark cases."""

from __future__ import annotations

import functools
import os
import shutil
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import typer

from benchmarks.measure import measured

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
DEFAULT_WORKDIR = Path(os.environ.get("BROKER_BENCH_DIR", "/tmp/broker-bench"))


@app.callback()
def main() -> None:
    """Benchmarks of manifest-broker, each beside its peer where it has one."""


def _write_small_files(base: str, datasets: int, ids: list[int]) -> None:
    import h5py

    for i in ids:
        folder = Path(base) / f"{i // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        with h5py.File(folder / f"h{i:06d}.h5", "w") as f:
            for d in range(datasets):
                f.create_dataset(f"d{d}", data=np.full(8, i + d, dtype="f4"))


def _check_fixture(workdir: Path, files: int, per_file: int) -> tuple[Path, Path, Path]:
    from generators.manifest_files import run_parallel

    root = workdir / f"check-{files}x{per_file}"
    base, manifests = root / "data", root / "manifests"
    marker = root / "complete"
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        base.mkdir(parents=True)
        run_parallel(functools.partial(_write_small_files, str(base), per_file), range(files), chunk=2000)
        marker.touch()
    manifests.mkdir(parents=True, exist_ok=True)
    ids = np.arange(files)
    huids = pa.array([f"h{i:06d}" for i in ids])
    rng = np.random.default_rng(0)
    pq.write_table(pa.table({"huid": huids, "key": pa.array([f"H_{h}" for h in huids.to_pylist()]),
                             "J1": rng.random(files), "J2": rng.random(files)}),
                   manifests / "bench_hamiltonians.parquet")  # fmt: skip
    file_col = [f"{i // 1000:03d}/h{i:06d}.h5" for i in ids]
    pq.write_table(
        pa.table({
            "huid": np.repeat(np.array(huids.to_pylist(), dtype=object), per_file),
            "type": np.tile(np.array([f"t{d}" for d in range(per_file)], dtype=object), files),
            "file": np.repeat(np.array(file_col, dtype=object), per_file),
            "dataset": np.tile(np.array([f"/d{d}" for d in range(per_file)], dtype=object), files),
            "temperature_K": np.tile(np.arange(per_file, dtype="f8"), files),
        }),
        manifests / "bench_artifacts.parquet",
    )  # fmt: skip
    return base, manifests / "bench_hamiltonians.parquet", manifests / "bench_artifacts.parquet"


@app.command()
def check(
    files: Annotated[int, typer.Option(help="Distinct HDF5 files.")] = 100_000,
    per_file: Annotated[int, typer.Option(help="Artifacts (datasets) per file.")] = 10,
    workdir: Annotated[Path, typer.Option()] = DEFAULT_WORKDIR,
) -> None:
    """Contract check of FILES x PER_FILE artifact rows: SQL rules, probing, cached re-check."""
    from pipeline.contract import check_manifests
    from pipeline.manifests import ManifestPair

    t0 = time.perf_counter()
    base, ham, art = _check_fixture(workdir, files, per_file)
    print(f"fixture: {files} files x {per_file} datasets ready in {time.perf_counter() - t0:.1f}s ({base})")
    cache = workdir / "probe-cache"
    shutil.rmtree(cache, ignore_errors=True)
    pair = ManifestPair(ham, art)
    rows = files * per_file
    with measured("first check") as first:
        report = check_manifests([pair], base, cache_dir=cache)
    assert report.ok, report.findings.slice(0, 5).to_pylist()
    with measured("cached re-check") as again:
        second = check_manifests([pair], base, cache_dir=cache)
    assert second.ok and second.probe is not None and second.probe.opened == 0
    rules = report.seconds["rules"] + report.seconds["schema"]
    probe = report.seconds["probe"]
    print(f"{'measure':<34}{'value':>16}")
    print(f"{'artifact rows':<34}{rows:>16,}")
    print(f"{'SQL rules (schema + row rules)':<34}{rules:>15.2f}s  ({rows / rules:,.0f} rows/s)")
    print(f"{'probe, cold (open every file)':<34}{probe:>15.2f}s  ({files / probe:,.0f} files/s, {os.cpu_count()} processes)")
    print(f"{'first check, total':<34}{first.seconds:>15.2f}s  peak RSS {first.peak_rss_mb:,.0f} MiB")
    print(f"{'re-check from probe cache, total':<34}{again.seconds:>15.2f}s  peak RSS {again.peak_rss_mb:,.0f} MiB")
    print(f"{'speed-up of the cached re-check':<34}{first.seconds / again.seconds:>15.1f}x")
