"""The benchmark cases."""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
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
    from manifest_broker.generators.manifest_files import run_parallel

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
    pq.write_table(
        pa.table(
            {
                "huid": huids,
                "key": pa.array([f"H_{h}" for h in huids.to_pylist()]),
                "J1": rng.random(files),
                "J2": rng.random(files),
            }
        ),
        manifests / "bench_hamiltonians.parquet",
    )
    file_col = [f"{i // 1000:03d}/h{i:06d}.h5" for i in ids]
    pq.write_table(
        pa.table(
            {
                "huid": np.repeat(np.array(huids.to_pylist(), dtype=object), per_file),
                "type": np.tile(np.array([f"t{d}" for d in range(per_file)], dtype=object), files),
                "file": np.repeat(np.array(file_col, dtype=object), per_file),
                "dataset": np.tile(np.array([f"/d{d}" for d in range(per_file)], dtype=object), files),
                "temperature_K": np.tile(np.arange(per_file, dtype="f8"), files),
            }
        ),
        manifests / "bench_artifacts.parquet",
    )
    return base, manifests / "bench_hamiltonians.parquet", manifests / "bench_artifacts.parquet"


@app.command()
def check(
    files: Annotated[int, typer.Option(help="Distinct HDF5 files.")] = 100_000,
    per_file: Annotated[int, typer.Option(help="Artifacts (datasets) per file.")] = 10,
    workdir: Annotated[Path, typer.Option()] = DEFAULT_WORKDIR,
) -> None:
    """Contract check of FILES x PER_FILE artifact rows: SQL rules, probing, cached re-check."""
    from manifest_broker.catalog.contract import check_manifests
    from manifest_broker.catalog.manifests import ManifestPair

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
    print(
        f"{'probe, cold (open every file)':<34}{probe:>15.2f}s  ({files / probe:,.0f} files/s, {os.cpu_count()} processes)"
    )
    print(f"{'first check, total':<34}{first.seconds:>15.2f}s  peak RSS {first.peak_rss_mb:,.0f} MiB")
    print(f"{'re-check from probe cache, total':<34}{again.seconds:>15.2f}s  peak RSS {again.peak_rss_mb:,.0f} MiB")
    print(f"{'speed-up of the cached re-check':<34}{first.seconds / again.seconds:>15.1f}x")


def _wide_fixture(folder: Path, columns: int, rows: int = 3) -> tuple[Path, Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / "data"
    base.mkdir(exist_ok=True)
    import h5py

    with h5py.File(base / "f.h5", "w") as f:
        f["x"] = np.arange(3.0)
    rng = np.random.default_rng(0)
    ham = {"huid": [f"h{i}" for i in range(rows)], "key": [f"k{i}" for i in range(rows)]}
    ham |= {f"c{c}": rng.random(rows) for c in range(columns)}
    pq.write_table(pa.table(ham), folder / "w_hamiltonians.parquet")
    pq.write_table(
        pa.table({"huid": ham["huid"], "type": ["t"] * rows, "file": ["f.h5"] * rows, "dataset": ["/x"] * rows}),
        folder / "w_artifacts.parquet",
    )
    return base, folder / "w_hamiltonians.parquet", folder / "w_artifacts.parquet"


@app.command()
def wide(
    columns: Annotated[str, typer.Option(help="Comma-separated metadata column counts.")] = "10000,30000,100000",
    repeats: Annotated[int, typer.Option(help="Runs of each, median reported.")] = 3,
    workdir: Annotated[Path, typer.Option()] = DEFAULT_WORKDIR,
) -> None:
    """The contract's metadata rules on manifests of many metadata columns (3 rows):
    whole-process time and peak RSS of the check per column count, and the ratio of
    the largest to the smallest (linear: the ratio of the column counts)."""
    counts = [int(c) for c in columns.split(",")]
    results: dict[int, tuple[float, float]] = {}
    for n in counts:
        base, ham, art = _wide_fixture(workdir / f"wide-{n}", n)
        script = (
            "import sys\nfrom pathlib import Path\nfrom manifest_broker.catalog.contract import check_manifests\n"
            "from manifest_broker.catalog.manifests import ManifestPair\n"
            f"r = check_manifests([ManifestPair(Path({str(ham)!r}), Path({str(art)!r}))], Path({str(base)!r}), "
            "use_cache=False)\nprint(r.errors)\n"
        )
        runs = [_launched([sys.executable, "-c", script])[:2] for _ in range(repeats)]
        results[n] = (statistics.median(r[0] for r in runs), max(r[1] for r in runs))
    print(f"{'metadata columns':>18}{'check, median s':>18}{'peak RSS MiB':>14}{'us per column':>15}")
    for n, (seconds, peak) in results.items():
        print(f"{n:>18,}{seconds:>18.2f}{peak:>14,.0f}{seconds / n * 1e6:>15.0f}")
    lo, hi = counts[0], counts[-1]
    print(f"time ratio {hi:,} / {lo:,} columns: {results[hi][0] / results[lo][0]:.1f}x for {hi / lo:.0f}x the columns")


def _scale_fixture(workdir: Path, n: int) -> Path:
    """A batched file for the scale curve: /spectra (n, 8) float32 and two
    parameter arrays; manifests with two artifacts per Hamiltonian."""
    import h5py

    root = workdir / f"scale-{n}"
    marker = root / "complete"
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        (root / "data").mkdir(parents=True)
        rng = np.random.default_rng(0)
        with h5py.File(root / "data" / "scale.h5", "w") as f:
            f.create_dataset("spectra", data=rng.random((n, 8), dtype="f4"), chunks=(min(n, 4096), 8))
            f.create_dataset("xas", data=rng.random((n, 4)))
        huids = [f"s{i:07d}" for i in range(n)]
        (root / "manifests").mkdir()
        pq.write_table(
            pa.table({"huid": huids, "key": [f"H_{h}" for h in huids], "J1": rng.random(n), "J2": rng.random(n)}),
            root / "manifests" / "scale_hamiltonians.parquet",
        )
        index = np.arange(n, dtype="int64")
        pq.write_table(
            pa.table(
                {
                    "huid": huids + huids,
                    "type": ["rixs"] * n + ["xas"] * n,
                    "file": ["scale.h5"] * (2 * n),
                    "dataset": ["/spectra"] * n + ["/xas"] * n,
                    "index": np.concatenate([index, index]),
                }
            ),
            root / "manifests" / "scale_artifacts.parquet",
        )
        marker.touch()
    return root


def _layout_fixture(workdir: Path, layout: str, n: int) -> Path:
    from manifest_broker.generators.generate import synthesize

    root = workdir / f"{layout}-{n}"
    if not (root / "complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        synthesize(layout, root, n, seed=0)
        (root / "complete").touch()
    return root


def _raw_ceiling(source: Path, target: Path) -> tuple[int, float]:
    """Plain bulk inserts of the rows the writer produced, into a fresh catalog of
    the same schema with Tiled's triggers dropped: the floor of what any writer pays."""
    import sqlite3

    from manifest_broker.catalog.database import locate
    from manifest_broker.catalog.write import init_catalog

    init_catalog(locate(str(target)))
    src = sqlite3.connect(source)
    tables = {
        "structures": "id, structure",
        "nodes": "id, parent, key, structure_family, metadata, specs",
        "nodes_closure": "ancestor, descendant, depth",
        "assets": "id, data_uri, is_directory, size",
        "data_sources": "id, node_id, structure_id, mimetype, parameters, properties, management, structure_family",
        "data_source_asset_association": "data_source_id, asset_id, parameter, num",
    }
    rows = {
        t: src.execute(
            f"SELECT {c} FROM {t} WHERE {'id' if t in ('nodes', 'assets', 'data_sources') else '1'} > 0"
        ).fetchall()
        for t, c in tables.items()
    }
    fts = src.execute("SELECT id, metadata FROM nodes WHERE id > 0").fetchall()
    src.close()
    rows["nodes_closure"] = [r for r in rows["nodes_closure"] if r[1] != 0]
    db = sqlite3.connect(target, isolation_level=None)
    started = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f'DROP TRIGGER "{name}"')
    for table, columns in tables.items():
        marks = ", ".join("?" * len(columns.split(",")))
        db.executemany(f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({marks})", rows[table])
    db.executemany("INSERT INTO metadata_fts5 (rowid, metadata) VALUES (?, ?)", fts)
    db.execute("COMMIT")
    seconds = time.perf_counter() - started
    db.close()
    return len(fts), seconds


@app.command()
def ingest(
    layout: Annotated[
        str, typer.Option(help="edrixs, vdp, multimodal, spinwave, or scale (small batched rows).")
    ] = "edrixs",
    n: Annotated[int, typer.Option("-n", help="Hamiltonians.")] = 10_000,
    tiled_nodes: Annotated[
        int, typer.Option(help="Nodes registered through Tiled's per-node HTTP path (a prefix of the same plan).")
    ] = 600,
    workdir: Annotated[Path, typer.Option()] = DEFAULT_WORKDIR,
) -> None:
    """Bulk writer vs Tiled's per-node path vs the raw-insert ceiling, same manifests, same run."""
    import pyarrow.compute as pc

    from manifest_broker.catalog.contract import check_manifests
    from manifest_broker.catalog.database import locate
    from manifest_broker.catalog.manifests import ManifestPair
    from manifest_broker.catalog.plan import NodePlan, plan_nodes
    from manifest_broker.catalog.register import register_plan
    from manifest_broker.catalog.serve import running_server
    from manifest_broker.catalog.write import init_catalog, write_plan

    t0 = time.perf_counter()
    root = _scale_fixture(workdir, n) if layout == "scale" else _layout_fixture(workdir, layout, n)
    name = layout
    pair = ManifestPair(
        root / "manifests" / f"{name}_hamiltonians.parquet", root / "manifests" / f"{name}_artifacts.parquet"
    )
    print(f"fixture {layout} n={n} ready in {time.perf_counter() - t0:.1f}s")
    runs = workdir / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    init_catalog(locate(str(runs / "warm.db")))  # imports and first-use costs, outside the timings

    with measured("check") as check_m:
        report = check_manifests([pair], root / "data", use_cache=False)  # cold: every file opened
    assert report.ok
    with measured("plan") as plan_m:
        plan = plan_nodes(report.checked())
    nodes = plan.nodes
    bulk_db = runs / "bulk.db"
    init_catalog(locate(str(bulk_db)))
    with measured("write") as write_m:
        written = write_plan(locate(str(bulk_db)), plan)
    assert written.created_nodes == nodes

    raw_nodes, raw_seconds = _raw_ceiling(bulk_db, runs / "raw.db")

    # Tiled's own path: one HTTP request per node, on a prefix of the same plan.
    n_ham = max(1, tiled_nodes * plan.hamiltonians.num_rows // nodes)
    prefix_keys = plan.hamiltonians["key"].slice(0, n_ham)
    subset = NodePlan(
        plan.hamiltonians.slice(0, n_ham),
        plan.arrays.filter(pc.is_in(plan.arrays["parent_key"], prefix_keys)),
        plan.structures,
        plan.assets,
    )
    tiled_db = runs / "tiled.db"
    init_catalog(locate(str(tiled_db)))
    with running_server(str(tiled_db), root / "data") as url:
        from tiled.client import from_uri

        with measured("tiled") as tiled_m:
            registered = register_plan(lambda: from_uri(url, api_key="secret"), subset, workers=1)
    tiled_count = registered.created_hamiltonians + registered.created_arrays

    bulk_rate = nodes / (plan_m.seconds + write_m.seconds)
    tiled_rate = tiled_count / tiled_m.seconds
    raw_rate = raw_nodes / raw_seconds
    print(
        f"\n{layout}: {plan.hamiltonians.num_rows:,} Hamiltonians, {plan.arrays.num_rows:,} artifacts = {nodes:,} nodes"
    )
    print(f"{'path':<44}{'nodes':>10}{'seconds':>10}{'nodes/s':>12}{'peak RSS':>12}")
    print(
        f"{'contract check (not in nodes/s)':<44}{nodes:>10,}{check_m.seconds:>10.2f}{'':>12}{check_m.peak_rss_mb:>9,.0f} MiB"
    )
    print(
        f"{'bulk writer: plan + write (this project)':<44}{nodes:>10,}{plan_m.seconds + write_m.seconds:>10.2f}{bulk_rate:>12,.0f}{max(plan_m.peak_rss_mb, write_m.peak_rss_mb):>9,.0f} MiB"
    )
    print(
        f"{'  of which write (one transaction)':<44}{nodes:>10,}{write_m.seconds:>10.2f}{nodes / write_m.seconds:>12,.0f}"
    )
    print(
        f"{'bulk writer end to end (check+plan+write)':<44}{nodes:>10,}{check_m.seconds + plan_m.seconds + write_m.seconds:>10.2f}{nodes / (check_m.seconds + plan_m.seconds + write_m.seconds):>12,.0f}"
    )
    print(
        f"{'Tiled per-node path (HTTP, tiled.client)':<44}{tiled_count:>10,}{tiled_m.seconds:>10.2f}{tiled_rate:>12,.0f}{tiled_m.peak_rss_mb:>9,.0f} MiB"
    )
    print(f"{'raw ceiling (bulk inserts, triggers off)':<44}{raw_nodes:>10,}{raw_seconds:>10.2f}{raw_rate:>12,.0f}")
    print(
        f"\nbulk / Tiled per-node: {bulk_rate / tiled_rate:,.1f}x   write / raw ceiling: {100 * (nodes / write_m.seconds) / raw_rate:.0f}%   "
        f"(plan + write) / raw ceiling: {100 * bulk_rate / raw_rate:.0f}%"
    )


def _tnr_fixture(workdir: Path, runs: int, slices: int, flavour: str) -> list[Path]:
    """``runs`` synthetic runs of ``slices`` slices whose reduced files are all of one
    format (``savetxt``: what the event-splitting reducer writes per slice;
    ``library``: the reduction library's headed fixed-width files)."""
    from manifest_broker.generators.tnr import synthesize_run

    roots = []
    for i in range(runs):
        root = workdir / f"tnr-{flavour}-{slices}" / f"run_{218389 + i}"
        if not (root / "complete").exists():
            shutil.rmtree(root, ignore_errors=True)
            synthesize_run(root, run_number=218389 + i, n_slices=slices, seed=i, flavour=flavour)
            (root / "complete").touch()
        roots.append(root)
    return roots


def _big_file_fixture(workdir: Path, rows: int, flavour: str) -> Path:
    """A run of one slice whose reduced file has ``rows`` rows, in one format: numpy
    savetxt rows, or the reduction library's (its real header, ``%20.16f`` rows)."""
    from manifest_broker.generators.tnr import synthesize_run

    root = workdir / f"tnr-bigfile-{flavour}-{rows}"
    if not (root / "complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        run = synthesize_run(root, run_number=218500, n_slices=1, seed=5, points=(10, 10), flavour=flavour)
        rng = np.random.default_rng(5)
        q = np.sort(rng.uniform(0.008, 0.2, rows))
        data = np.column_stack([q, np.exp(-q * 60), np.full(rows, 1e-3), q * 0.027])
        target = run.reduced_dir / f"r218500_{run.labels[0]}.txt"
        if flavour == "savetxt":
            np.savetxt(target, data, fmt="%.18e")
        else:
            header = [line for line in target.read_text().splitlines() if line.startswith("#")]
            np.savetxt(
                target, data, fmt="%20.16f", delimiter="  ", header="\n".join(h[2:] for h in header), comments="# "
            )
        (root / "complete").touch()
    return root


def _timed_process(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one whole process."""
    seconds, peak, _ = _launched(command, env)
    return seconds, peak


def _launched(
    command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of one whole process, measured by a
    small launcher (benchmarks/launch.py) so that this process's memory is not counted."""
    import json
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json") as result, tempfile.TemporaryFile("w+") as out:
        launcher = [sys.executable, str(Path(__file__).with_name("launch.py")), result.name, *command]
        process = subprocess.run(launcher, stdout=out, stderr=subprocess.PIPE, env=env, cwd=cwd)
        measured_run = json.loads(Path(result.name).read_text() or "{}")
        out.seek(0)
        stdout = out.read()
    if process.returncode != 0 or measured_run.get("code") != 0:
        raise SystemExit(f"{' '.join(command)} failed ({measured_run.get('code')}):\n{process.stderr.decode()[-2000:]}")
    return measured_run["seconds"], measured_run["peak_mib"], stdout


class Reference:
    """The peer of `broker tnr package`: the real reference tool (``iceberg_packager``
    of mdoucet/analyzer, from a checkout and a Python that has its dependencies), or,
    without one, the project's re-implementation of its method
    (benchmarks/reference_packager.py: numpy.loadtxt per file, pandas, two Parquet files)."""

    def __init__(self, repo: Path | None, python: str | None) -> None:
        self.repo = repo
        self.python = python or sys.executable
        self.name = (
            f"reference tool (iceberg_packager, {repo})"
            if repo
            else "reference method (our re-implementation: loadtxt + pandas + Parquet)"
        )

    def command(self, split: Path, reduced: Path, template: Path, out: Path) -> list[str]:
        if self.repo:
            return [
                self.python,
                "-m",
                "analyzer_tools.utils.iceberg_packager",
                str(split),
                str(reduced),
                str(template),
                "-o",
                str(out),
            ]
        return [
            self.python,
            str(Path(__file__).with_name("reference_packager.py")),
            str(split),
            str(reduced),
            str(template),
            "-o",
            str(out),
        ]

    def env(self) -> dict[str, str] | None:
        return {**os.environ, "PYTHONPATH": str(self.repo)} if self.repo else None


def _compare(
    label: str,
    mb: float,
    files: int,
    commands: Callable[[int], dict[str, tuple[list[str], dict | None]]],
    repeats: int,
    baseline: str,
) -> dict[str, float]:
    """Run every command ``repeats`` times, interleaved (a busy moment hits every one
    alike); print medians, min, throughput, peak RSS and the ratio to ``baseline``."""
    times: dict[str, list[float]] = {}
    peaks: dict[str, float] = {}
    for i in range(repeats):
        for name, (command, env) in commands(i).items():
            seconds, peak = _timed_process(command, env)
            times.setdefault(name, []).append(seconds)
            peaks[name] = max(peaks.get(name, 0.0), peak)
    reference = statistics.median(times[baseline])
    print(f"\n{label}: {files:,} reduced file(s), {mb:.1f} MB; median of {repeats} interleaved whole-process runs")
    print(f"{'command':<72}{'median s':>10}{'min s':>8}{'MB/s':>8}{'peak RSS':>12}{'vs peer':>9}")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:<72}{median:>10.2f}{min(values):>8.2f}{mb / median:>8.1f}{peaks[name]:>8,.0f} MiB"
            f"{reference / median:>8.2f}x"
        )
    return {name: statistics.median(values) for name, values in times.items()}


def _run_case(label: str, root: Path, out: Path, repeats: int, reference: Reference) -> None:
    split, reduced, template = _run_args(root)
    bin_dir = Path(sys.executable).parent
    mb = sum(p.stat().st_size for p in reduced.glob("r*_*.txt")) / 1e6
    files = len(list(reduced.glob("r*_*.txt")))

    def commands(i: int) -> dict[str, tuple[list[str], dict | None]]:
        case = out / f"{label}-{i}"
        shutil.rmtree(case, ignore_errors=True)
        case.mkdir(parents=True)
        return {
            reference.name: (reference.command(split, reduced, template, case / "ref.parquet"), reference.env()),
            "broker tnr package (both Iceberg commits)": (
                [
                    str(bin_dir / "broker"),
                    "tnr",
                    "package",
                    str(split),
                    str(reduced),
                    str(template),
                    "--lake",
                    str(case / "lake"),
                ],
                None,
            ),
        }

    _compare(label, mb, files, commands, repeats, reference.name)
    _split_case(label, split, reduced, template, out, repeats)


_SPLIT_SCRIPT = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from manifest_broker.tnr.package import package_run
t1 = time.perf_counter()
package = package_run(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
t2 = time.perf_counter()
from manifest_broker.tnr.lake import write_run
import pyiceberg.catalog.sql, pyiceberg.io.pyarrow, pyiceberg.table  # what the commits import
t3 = time.perf_counter()
write_run(Path(sys.argv[4]), package, "tnr")
t4 = time.perf_counter()
print(json.dumps({"imports": (t1 - t0) + (t3 - t2), "read": t2 - t1, "commit": t4 - t3}))
"""


def _split_case(label: str, split: Path, reduced: Path, template: Path, out: Path, repeats: int) -> None:
    """Where one `broker tnr package`'s time goes, each part timed in a fresh process:
    imports (the reading stack, then the Iceberg stack), reading and conforming the
    run, and the commits (catalog, tables on a new lake, both appends, snapshot
    expiry; median of ``repeats``)."""
    parts: dict[str, list[float]] = {}
    for i in range(repeats):
        lake = out / f"split-{i}"
        shutil.rmtree(lake, ignore_errors=True)
        done = subprocess.run(
            [sys.executable, "-c", _SPLIT_SCRIPT, str(split), str(reduced), str(template), str(lake)],
            capture_output=True,
            text=True,
            check=True,
        )
        for name, seconds in json.loads(done.stdout.strip().splitlines()[-1]).items():
            parts.setdefault(name, []).append(seconds)
    print(
        f"{label}, split in process (median of {repeats}): "
        + ", ".join(f"{name} {statistics.median(values):.2f}s" for name, values in parts.items())
    )


def _campaign_case(root: Path, out: Path, repeats: int, reference: Reference) -> None:
    """A campaign: the reference run once per run, one after the other (a shell loop),
    against `package-many` with one and two jobs."""
    runs = sorted(p for p in root.iterdir() if p.is_dir())
    bin_dir = Path(sys.executable).parent
    mb = sum(p.stat().st_size for run in runs for p in (run / "reduced").glob("r*_*.txt")) / 1e6
    files = sum(len(list((run / "reduced").glob("r*_*.txt"))) for run in runs)

    def commands(i: int) -> dict[str, tuple[list[str], dict | None]]:
        case = out / f"campaign-{i}"
        shutil.rmtree(case, ignore_errors=True)
        case.mkdir(parents=True)
        loop = " && ".join(shlex.join(reference.command(*_run_args(run), case / f"{run.name}.parquet")) for run in runs)
        return {
            f"{reference.name}, looped": (["bash", "-c", loop], reference.env()),
            "broker tnr package-many --jobs 1": (
                [
                    str(bin_dir / "broker"),
                    "tnr",
                    "package-many",
                    str(root),
                    "--lake",
                    str(case / "lake1"),
                    "--jobs",
                    "1",
                ],
                None,
            ),
            "broker tnr package-many --jobs 2": (
                [
                    str(bin_dir / "broker"),
                    "tnr",
                    "package-many",
                    str(root),
                    "--lake",
                    str(case / "lake2"),
                    "--jobs",
                    "2",
                ],
                None,
            ),
        }

    _compare(f"campaign of {len(runs)} runs", mb, files, commands, repeats, f"{reference.name}, looped")


def _watch_case(template_run: Path, out: Path, runs: int) -> None:
    """`tnr watch`: the time from a run's sidecar landing to its commit, per run, with
    the watcher already up (its start-up paid once)."""
    import json

    from manifest_broker.tnr.lake import LakeError, scan

    folder, lake = out / "watched", out / "watch-lake"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(lake, ignore_errors=True)
    folder.mkdir(parents=True)
    bin_dir = Path(sys.executable).parent
    watcher = subprocess.Popen(
        [str(bin_dir / "broker"), "tnr", "watch", str(folder), "--lake", str(lake), "--poll", "0.25"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    latencies, work = [], []
    try:
        time.sleep(2.0)
        for i in range(runs):
            target = folder / f"run{i}"
            shutil.copytree(template_run, target, ignore=shutil.ignore_patterns("r*_eis_reduction.json", "complete"))
            sidecar = next((template_run / "reduced").glob("r*_eis_reduction.json"))
            data = json.loads(sidecar.read_text())
            old, new = f"r{data['run_number']}_", f"r{300000 + i}_"
            data["run_number"] = 300000 + i
            data["reduced_files"] = [name.replace(old, new) for name in data["reduced_files"]]
            for path in (target / "reduced").glob("r*_*.txt"):
                path.rename(path.with_name(path.name.replace(old, new)))
            landed = time.perf_counter()
            (target / "reduced" / f"r{300000 + i}_eis_reduction.json").write_text(json.dumps(data))
            assert watcher.stdout is not None
            line = watcher.stdout.readline()
            latencies.append(time.perf_counter() - landed)
            work.append(float(line.rsplit(" in ", 1)[1].rstrip("s\n")))
        print(
            f"\ntnr watch, {runs} runs of {len(list((template_run / 'reduced').glob('r*_*.txt')))} slices dropped in one "
            f"after another: sidecar to commit median {statistics.median(latencies):.2f}s (max {max(latencies):.2f}s); "
            f"of which packaging (read + commits) median {statistics.median(work):.2f}s, so detection "
            f"{statistics.median(latencies) - statistics.median(work):.2f}s"
        )
        try:
            assert scan(lake, "runs").num_rows == runs
        except LakeError:
            raise SystemExit("the watcher packaged nothing") from None
    finally:
        watcher.terminate()
        watcher.wait(timeout=60)


@app.command()
def tnr(
    slices: Annotated[int, typer.Option(help="Slices of the large run.")] = 2000,
    big_rows: Annotated[int, typer.Option(help="Rows of the single large reduced file.")] = 1_000_000,
    repeats: Annotated[int, typer.Option(help="Interleaved repetitions of each command.")] = 5,
    runs: Annotated[int, typer.Option(help="Runs in the campaign case, of 200 slices each (0: skip it).")] = 20,
    formats: Annotated[str, typer.Option(help="Reduced-file formats to run: savetxt, library or both.")] = "both",
    reference_repo: Annotated[
        Path | None,
        typer.Option(
            help="A checkout of mdoucet/analyzer: run its real iceberg_packager (else our re-implementation)."
        ),
    ] = None,
    reference_python: Annotated[
        str | None, typer.Option(help="A Python with the reference's dependencies (numpy, pandas, pyarrow, click).")
    ] = None,
    workdir: Annotated[Path, typer.Option()] = DEFAULT_WORKDIR,
) -> None:
    """Whole processes, interleaved: `broker tnr package` beside the reference on a
    2,000-slice run and a 1,000,000-row file in each reduced-file format, a campaign
    beside the reference looped, and the watcher's latency."""
    reference = Reference(reference_repo, reference_python)
    print(f"peer: {reference.name}")
    out = workdir / "tnr-out"
    shutil.rmtree(out, ignore_errors=True)
    chosen = ["savetxt", "library"] if formats == "both" else [formats]
    for flavour in chosen:
        t0 = time.perf_counter()
        root = _tnr_fixture(workdir, 1, slices, flavour)[0]
        big = _big_file_fixture(workdir, big_rows, flavour)
        print(f"{flavour} fixtures ready in {time.perf_counter() - t0:.1f}s")
        _run_case(f"{slices}-slice run, {flavour} files", root, out, repeats, reference)
        _run_case(f"{big_rows:,}-row file, {flavour}", big, out, repeats, reference)
    if runs:
        roots = _tnr_fixture(workdir, runs, 200, "savetxt")
        _campaign_case(roots[0].parent, out, repeats, reference)
        _watch_case(roots[0], out, 5)


def _run_args(root: Path) -> tuple[Path, Path, Path]:
    from manifest_broker.generators.tnr import SPLIT_NAME, TEMPLATE_NAME

    return root / SPLIT_NAME, root / "reduced", root / TEMPLATE_NAME


@app.command()
def readers(
    n: Annotated[int, typer.Option("-n", help="Hamiltonians ingested while the server is read (x 3 nodes).")] = 33_334,
    catalog: Annotated[str, typer.Option(help="A new SQLite file or an empty postgresql:// database.")] = "",
    threads: Annotated[int, typer.Option(help="Reader threads.")] = 4,
    workdir: Annotated[Path, typer.Option()] = DEFAULT_WORKDIR,
) -> None:
    """Requests served by `tiled serve` while `broker ingest` writes into its catalog:
    failures, and p50/p99 latency during and outside the ingest, from the same run."""
    from benchmarks.readers import reads_during_ingest
    from manifest_broker.catalog.manifests import ManifestPair
    from tests.reliability.conftest import batched_dataset

    root = workdir / f"readers-{n}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    warm = ManifestPair(*batched_dataset(root / "data", root / "m", "warm", 200, file="warm.h5"))
    bulk = ManifestPair(*batched_dataset(root / "data", root / "m", "bulk", n, file="bulk.h5"))
    target = catalog or str(root / "served.db")
    load = reads_during_ingest(
        target, root / "data", warm, bulk, threads=threads, log=root / "serve.log", cache=root / "cache"
    )
    seconds = load.ingest_window[1] - load.ingest_window[0]
    print(
        f"ingest of {3 * n + 1:,} nodes into {target}: exit {load.ingest_exit}, {seconds:.1f} s (whole `broker ingest` process)"
    )
    print(f"nodes served right after the commit: {load.seen_after:,} Hamiltonians under bulk/")
    print(load.summary())


@app.command()
def register(
    n: Annotated[int, typer.Option("-n", help="Hamiltonians (vdp layout: 11 artifacts each).")] = 1000,
    workers: Annotated[int, typer.Option(help="broker register --workers.")] = 8,
    latency_ms: Annotated[
        float, typer.Option(help="Round trip added to every request by a proxy (0: straight to the server).")
    ] = 0.0,
    workdir: Annotated[Path, typer.Option()] = DEFAULT_WORKDIR,
) -> None:
    """`broker register` vs a plain sequential tiled.client loop, each a whole process
    against its own fresh `tiled serve` (SQLite) on loopback, same manifests, same run;
    then a re-run of `broker register` with everything present."""
    from contextlib import nullcontext

    from manifest_broker.catalog.database import locate
    from manifest_broker.catalog.serve import running_server
    from manifest_broker.catalog.write import init_catalog
    from tests.reliability.fault_proxy import fault_proxy

    root = _layout_fixture(workdir, "vdp", n)
    ham, art = root / "manifests" / "vdp_hamiltonians.parquet", root / "manifests" / "vdp_artifacts.parquet"
    base = root / "data"
    runs = workdir / "register-runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    env = {**os.environ, "TILED_API_KEY": "secret", "BROKER_CACHE_DIR": str(runs / "cache")}
    # the probe cache is warmed first: both sides then pay only for registration
    subprocess.run(
        [
            sys.executable,
            "-m",
            "manifest_broker.commandline.main",
            "check",
            str(ham),
            str(art),
            "--base-dir",
            str(base),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    figures = {}
    for side in ("tiled loop", "broker register", "broker re-run"):
        catalog = runs / ("loop.db" if side == "tiled loop" else "broker.db")
        if side != "broker re-run":
            init_catalog(locate(str(catalog)))
        with (
            running_server(str(catalog), base, log=runs / f"{catalog.stem}.log") as direct,
            fault_proxy(direct, 0.0, delay=latency_ms / 1e3) if latency_ms else nullcontext((direct, None)) as (url, _),
        ):
            if side == "tiled loop":
                command = [sys.executable, "-m", "benchmarks.tiled_loop", url, "lab", str(base), str(ham), str(art)]
            else:
                command = [
                    sys.executable,
                    "-m",
                    "manifest_broker.commandline.main",
                    "register",
                    str(ham),
                    str(art),
                    "--base-dir",
                    str(base),
                    "--url",
                    url,
                    "--parent",
                    "lab",
                    "--workers",
                    str(workers),
                ]
            figures[side] = _launched(command, env)
        print(f"{side}: {figures[side][0]:.1f} s  {figures[side][2].strip()[:160]}")
    nodes = n * 12 + 1
    loop_s, broker_s, rerun_s = (figures[k][0] for k in ("tiled loop", "broker register", "broker re-run"))
    print(
        f"\n{n:,} Hamiltonians x 11 artifacts = {nodes:,} nodes into `tiled serve` (SQLite) on loopback"
        + (f" behind a {latency_ms:g} ms round-trip proxy" if latency_ms else "")
        + ", whole processes"
    )
    print(f"{'client':<40}{'seconds':>10}{'nodes/s':>10}{'peak RSS':>12}")
    print(
        f"{'plain sequential tiled.client loop':<40}{loop_s:>10.1f}{nodes / loop_s:>10,.0f}{figures['tiled loop'][1]:>9,.0f} MiB"
    )
    print(
        f"{f'broker register --workers {workers}':<40}{broker_s:>10.1f}{nodes / broker_s:>10,.0f}{figures['broker register'][1]:>9,.0f} MiB"
    )
    print(f"{'broker register re-run (all present)':<40}{rerun_s:>10.1f}")
    print(
        f"\nbroker register / plain loop: {loop_s / broker_s:.1f}x   re-run / first run: {100 * rerun_s / broker_s:.1f}%"
    )


@app.command()
def modea(
    n: Annotated[
        int, typer.Option("-n", help="Arrays to load (rows of one batched dataset, one per Hamiltonian).")
    ] = 10_000,
    workers: Annotated[int, typer.Option(help="load_batches worker processes.")] = 2,
    batch_size: Annotated[int, typer.Option(help="Rows per batch.")] = 256,
    workdir: Annotated[Path, typer.Option()] = DEFAULT_WORKDIR,
) -> None:
    """Mode A (locators from a Tiled search, arrays read with h5py in worker processes)
    vs Mode B (each array read through the server with tiled.client), same arrays, same run."""
    from tiled.client import from_uri

    from manifest_broker.catalog.ingest import ingest as run_ingest
    from manifest_broker.catalog.manifests import ManifestPair
    from manifest_broker.catalog.modea import load_batches, locate
    from manifest_broker.catalog.serve import running_server
    from tests.reliability.conftest import batched_dataset

    root = workdir / f"modea-{n}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    pair = ManifestPair(*batched_dataset(root / "data", root / "m", "ml", n, file="ml.h5"))
    catalog = str(root / "c.db")
    run_ingest([pair], root / "data", catalog, parent="lab")
    with running_server(catalog, root / "data", log=root / "serve.log") as url:
        client = from_uri(url, api_key="secret")
        with measured("locate") as locate_m:
            table = locate(client["lab"])
        with measured("load") as load_m:
            loaded = [
                a
                for _, arrays in load_batches(
                    table, base_dir=root / "data", batch_size=batch_size, workers=workers, types=["rixs"]
                )
                for a in arrays
            ]
        keys = [k for k, t in zip(table["key"].to_pylist(), table["type"].to_pylist()) if t == "rixs"]
        lab = client["lab"]
        with measured("mode B") as b_m:
            served = [lab[k]["rixs"].read() for k in keys]
    assert len(loaded) == len(served) == n and all(np.array_equal(a, b) for a, b in zip(loaded, served))
    a_total = locate_m.seconds + load_m.seconds
    print(
        f"\n{n:,} arrays (float32 x 8, rows of one batched dataset), tiled serve (SQLite) on loopback, in this process"
    )
    print(f"{'path':<52}{'seconds':>10}{'arrays/s':>12}{'peak RSS':>12}")
    print(
        f"{'Mode A locate (metadata search, all 2 types)':<52}{locate_m.seconds:>10.2f}{'':>12}{locate_m.peak_rss_mb:>9,.0f} MiB"
    )
    print(
        f"{f'Mode A load_batches ({workers} workers, {batch_size}/batch)':<52}{load_m.seconds:>10.2f}{n / load_m.seconds:>12,.0f}{load_m.peak_rss_mb:>9,.0f} MiB"
    )
    print(f"{'Mode A locate + load':<52}{a_total:>10.2f}{n / a_total:>12,.0f}")
    print(
        f"{'Mode B: tiled.client read() per array':<52}{b_m.seconds:>10.2f}{n / b_m.seconds:>12,.0f}{b_m.peak_rss_mb:>9,.0f} MiB"
    )
    print(
        f"\nMode A load / Mode B: {b_m.seconds / load_m.seconds:,.0f}x   Mode A locate+load / Mode B: {b_m.seconds / a_total:,.1f}x"
    )


@app.command()
def cli(
    repeats: Annotated[int, typer.Option(help="Runs of each small command (median reported).")] = 5,
    n: Annotated[int, typer.Option("-n", help="Hamiltonians of the edrixs ingest (2 artifacts each).")] = 10_000,
    workdir: Annotated[Path, typer.Option()] = DEFAULT_WORKDIR,
) -> None:
    """The command line as users run it: whole processes, wall time and peak RSS, beside
    the same work called in-process (no start-up) for the edrixs ingest."""
    from manifest_broker.catalog.ingest import ingest as run_ingest
    from manifest_broker.catalog.manifests import ManifestPair

    broker = str(Path(sys.executable).parent / "broker")
    runs = workdir / "cli"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    small = _layout_fixture(workdir, "spinwave", 5)  # 5 Hamiltonians x 2 artifacts = 15 nodes
    small_args = [
        str(small / "manifests" / "spinwave_hamiltonians.parquet"),
        str(small / "manifests" / "spinwave_artifacts.parquet"),
        "--base-dir",
        str(small / "data"),
    ]
    catalog = runs / "existing.db"
    warm_cache = runs / "cache-warm"
    env_warm = {**os.environ, "BROKER_CACHE_DIR": str(warm_cache)}
    _timed_process([broker, "ingest", *small_args, "--catalog", str(catalog), "--parent", "first"], env_warm)

    def cold_env(i: int) -> dict[str, str]:
        return {**os.environ, "BROKER_CACHE_DIR": str(runs / f"cache-cold-{i}")}

    cases: dict[str, Callable[[int], tuple[list[str], dict[str, str]]]] = {
        "broker --help": lambda i: ([broker, "--help"], env_warm),
        "broker check, 15 nodes (files opened)": lambda i: ([broker, "check", *small_args, "--no-cache"], env_warm),
        "broker ingest, 15 nodes, known structures": lambda i: (
            [broker, "ingest", *small_args, "--catalog", str(catalog), "--parent", f"warm{i}"],
            env_warm,
        ),
        "broker ingest, 15 nodes, empty cache": lambda i: (
            [broker, "ingest", *small_args, "--catalog", str(catalog), "--parent", f"cold{i}"],
            cold_env(i),
        ),
    }
    times: dict[str, list[float]] = {}
    peaks: dict[str, float] = {}
    for i in range(repeats):  # interleaved, so a busy moment hits every command alike
        for name, case in cases.items():
            command, env = case(i)
            seconds, peak = _timed_process(command, env)
            times.setdefault(name, []).append(seconds)
            peaks[name] = max(peaks.get(name, 0.0), peak)
    print(
        f"\nfixed costs: median of {repeats} interleaved whole-process runs (catalog exists; 'known structures' = "
        "Tiled's structure documents for these shapes cached by an earlier run)"
    )
    print(f"{'command':<46}{'median s':>10}{'min s':>8}{'peak RSS':>12}")
    for name, values in times.items():
        print(f"{name:<46}{statistics.median(values):>10.2f}{min(values):>8.2f}{peaks[name]:>8,.0f} MiB")

    big = _layout_fixture(workdir, "edrixs", n)
    pair = ManifestPair(
        big / "manifests" / "edrixs_hamiltonians.parquet", big / "manifests" / "edrixs_artifacts.parquet"
    )
    big_args = [str(pair.hamiltonians), str(pair.artifacts), "--base-dir", str(big / "data")]
    rows: list[tuple[str, float, float]] = []
    # First: nothing known (every file opened, Tiled's adapter imported for the
    # structures). Then as a facility re-runs: `broker check` done, and these
    # shapes' structures known from an earlier ingest (here one into a scratch catalog).
    _timed_process([broker, "ingest", *big_args, "--catalog", str(runs / "scratch.db")], env_warm)
    for label, env, extra in (
        ("broker ingest (CLI), nothing cached", cold_env(99), ["--no-cache"]),
        ("broker ingest (CLI), checked, shapes known", env_warm, []),
    ):
        if not extra:
            _timed_process([broker, "check", *big_args], env)
        target = runs / f"edrixs-{len(rows)}.db"
        seconds, peak = _timed_process([broker, "ingest", *big_args, "--catalog", str(target), *extra], env)
        rows.append((label, seconds, peak))
    nodes = 3 * n
    run_ingest([pair], big / "data", str(runs / "warm-imports.db"))  # imports and first-use costs, outside the timing
    os.environ["BROKER_CACHE_DIR"] = str(warm_cache)
    with measured("in-process") as m:
        run = run_ingest([pair], big / "data", str(runs / "in-process.db"))
    assert run.result is not None and run.result.created_nodes == nodes
    rows.append(("ingest() in-process, checked, shapes known", m.seconds, m.peak_rss_mb))
    print(f"\nedrixs {n:,} x 2 = {nodes:,} nodes into a new SQLite catalog")
    print(f"{'path':<46}{'seconds':>10}{'nodes/s':>12}{'peak RSS':>12}")
    for label, seconds, peak in rows:
        print(f"{label:<46}{seconds:>10.2f}{nodes / seconds:>12,.0f}{peak:>8,.0f} MiB")
    print(f"\nCLI (checked, shapes known): {rows[2][1] / rows[1][1]:.2f}x the in-process speed")


@app.command()
def scale(
    files: Annotated[int, typer.Option(help="Files probed (vdp layout: 11 files per Hamiltonian).")] = 100_000,
    runs: Annotated[int, typer.Option(help="tNR runs in the campaign (200 slices each).")] = 40,
    hamiltonians: Annotated[int, typer.Option(help="Hamiltonians registered through the server (x 12 nodes).")] = 150,
    postgres: Annotated[str, typer.Option(help="A PostgreSQL server URI (no database) for the shared catalogs.")] = "",
    parts: Annotated[str, typer.Option(help="Which comparisons to run: probe, tnr, register.")] = "probe,tnr,register",
    workdir: Annotated[Path, typer.Option()] = DEFAULT_WORKDIR,
) -> None:
    """Beyond one process, side by side from one run: the probe in local processes and
    on a Dask cluster (1 and 2 workers, each a `dask worker` process on this host), a
    tNR campaign locally and on Dask (PostgreSQL lake), and `broker register` against
    1 and 2 Tiled server processes on PostgreSQL."""
    import resource

    from manifest_broker.catalog.database import locate
    from manifest_broker.catalog.manifests import read_manifest
    from manifest_broker.catalog.probe import probe_locators
    from manifest_broker.catalog.serve import running_server
    from manifest_broker.catalog.write import init_catalog
    from manifest_broker.cluster import connect
    from manifest_broker.tnr.campaign import package_many
    from manifest_broker.tnr.lake import locate_lake
    from tests.integration.test_dask import Cluster
    from tests.pg import new_database, start_cluster

    pg = None
    if not postgres:
        pg = start_cluster()
        postgres = pg.uri
    try:
        if "probe" in parts:
            root = _layout_fixture(workdir, "vdp", max(1, files // 11))
            art = read_manifest(root / "manifests" / "vdp_artifacts.parquet").select(["file", "dataset"])
            n_files = len(set(art["file"].to_pylist()))
            print(f"\nprobe of {n_files:,} files ({art.num_rows:,} datasets), no cache, in this process:")
            print(f"{'where':<44}{'seconds':>9}{'files/s':>10}{'vs 1 worker':>13}")
            timings: dict[str, float] = {}
            for label, local_workers in (("local processes, 1", 1), ("local processes, 2", 2)):
                t0 = time.perf_counter()
                probe_locators(art, root / "data", cache_dir=None, workers=local_workers)
                timings[label] = time.perf_counter() - t0
            for count in (1, 2):
                cluster = Cluster(workdir, workers=count)
                try:
                    client = connect(cluster.address)
                    t0 = time.perf_counter()
                    probe_locators(art, root / "data", cache_dir=None, cluster=client)
                    timings[f"Dask, {count} worker(s)"] = time.perf_counter() - t0
                    client.close()
                finally:
                    cluster.stop()
            for label, seconds in timings.items():
                base = timings["Dask, 1 worker(s)"] if label.startswith("Dask") else timings["local processes, 1"]
                print(f"{label:<44}{seconds:>9.1f}{n_files / seconds:>10,.0f}{base / seconds:>12.2f}x")
            print(
                f"Dask 2 workers vs local 2 processes: {timings['local processes, 2'] / timings['Dask, 2 worker(s)']:.2f}x "
                f"(per file on Dask: {2 * timings['Dask, 2 worker(s)'] / n_files * 1e3:.2f} ms of a worker)"
            )

        if "tnr" in parts:
            campaign = _tnr_fixture(workdir, runs, 200, "savetxt")[0].parent
            print(
                f"\ntnr campaign of {runs} runs x 200 slices into a PostgreSQL lake (read on the workers, committed here):"
            )
            camp: dict[str, float] = {}
            for label in ("local, --jobs 2", "Dask, 2 workers"):
                lake = locate_lake(new_database(postgres), workdir / f"warehouse-{label[:4]}")
                if label.startswith("local"):
                    t0 = time.perf_counter()
                    done = package_many(campaign, lake, "tnr", jobs=2)
                    camp[label] = time.perf_counter() - t0
                else:
                    cluster = Cluster(workdir, workers=2)  # a running cluster is the premise: its start is not timed
                    try:
                        client = connect(cluster.address)
                        t0 = time.perf_counter()
                        done = package_many(campaign, lake, "tnr", cluster=client)
                        camp[label] = time.perf_counter() - t0
                        client.close()
                    finally:
                        cluster.stop()
                assert not [s for s in done if s.error], [s.error for s in done if s.error]
                print(f"{label:<44}{camp[label]:>9.1f} s {runs / camp[label]:>7.1f} runs/s")
            print(f"Dask vs local: {camp['local, --jobs 2'] / camp['Dask, 2 workers']:.2f}x")

        if "register" in parts:
            layout = _layout_fixture(workdir, "vdp", hamiltonians)
            ham, arts = (
                layout / "manifests" / "vdp_hamiltonians.parquet",
                layout / "manifests" / "vdp_artifacts.parquet",
            )
            env = {**os.environ, "TILED_API_KEY": "secret", "BROKER_CACHE_DIR": str(workdir / "scale-cache")}
            nodes = hamiltonians * 12 + 1
            print(f"\nbroker register --workers 8 of {nodes:,} nodes into Tiled on PostgreSQL, whole process:")
            reg: dict[int, float] = {}
            cpu: dict[int, float] = {}
            for server_workers in (1, 2):
                catalog = new_database(postgres)
                init_catalog(locate(catalog))
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                with running_server(catalog, layout / "data", workers=server_workers) as url:
                    command = [
                        sys.executable,
                        "-m",
                        "manifest_broker.commandline.main",
                        "register",
                        str(ham),
                        str(arts),
                        "--base-dir",
                        str(layout / "data"),
                        "--url",
                        url,
                        "--parent",
                        "lab",
                        "--workers",
                        "8",
                    ]
                    reg[server_workers] = _launched(command, env)[0]
                # the server processes (ended and waited for) and the client, not PostgreSQL's own
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[server_workers] = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / nodes
                print(
                    f"{f'{server_workers} server process(es)':<44}{reg[server_workers]:>9.1f} s "
                    f"{nodes / reg[server_workers]:>7.1f} nodes/s  {cpu[server_workers] * 1e3:.1f} ms CPU per node "
                    "(server + client)"
                )
            cores = os.cpu_count() or 1
            ceiling = min(cores, 2) / cpu[1]  # two server processes, bounded by the cores the CPU per node fills
            print(
                f"2 server processes vs 1: {reg[1] / reg[2]:.2f}x; ceiling on {cores} core(s) from the 1-process CPU "
                f"per node: {ceiling:.1f} nodes/s, reached {nodes / reg[2] / ceiling:.0%} (PostgreSQL's CPU not "
                "counted, so the ceiling is high)"
            )
    finally:
        if pg is not None:
            pg.remove()


@app.command()
def facility(
    sizes: Annotated[
        str, typer.Option(help="Node counts, comma-separated (3 nodes per Hamiltonian).")
    ] = "100000,1000000",
    postgres: Annotated[
        str, typer.Option(help="A PostgreSQL server URI (no database); default: one started here.")
    ] = "",
    workdir: Annotated[Path, typer.Option()] = DEFAULT_WORKDIR,
) -> None:
    """The facility path at each size, one table: synth, check, ingest (SQLite and PostgreSQL: nodes/s, peak RSS),
    catalog size, search latency with and without indexes, locate through the server and the catalog, load_batches."""
    from benchmarks.facility import print_table, run_size
    from tests.pg import start_cluster

    pg = None if postgres else start_cluster()
    counts = [int(s) for s in sizes.split(",") if s]
    rows: list[tuple[str, dict[int, str]]] = []
    done: list[int] = []
    try:
        for n in counts:
            started = time.perf_counter()
            done.append(run_size(n, workdir, postgres or pg.uri, rows)["nodes"])  # type: ignore[union-attr]
            print(f"\n{done[-1]:,} nodes measured in {time.perf_counter() - started:,.0f} s", flush=True)
            print_table(rows, done)
    finally:
        if pg is not None:
            pg.remove()
