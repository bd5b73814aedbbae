"""`broker demo`: every stage on embedded defaults and synthetic data."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from manifest_broker import render

if TYPE_CHECKING:  # the stages import what they run, so `broker --help` stays light
    from manifest_broker.catalog.contract import ContractReport
    from manifest_broker.catalog.ingest import Run
    from manifest_broker.catalog.manifests import ManifestPair

# Small enough to finish in seconds, large enough to exercise every layout.
DEMO_SIZES = {"vdp": 1.0, "edrixs": 10.0, "multimodal": 1.0, "spinwave": 1.0}


def run_demo(workdir: Path, n: int) -> int:
    """Run the demo; returns the process exit code."""
    workdir.mkdir(parents=True, exist_ok=True)
    summary: list[tuple[str, str, str]] = []
    pairs = _synth_stage(workdir, n, summary)
    report = _check_stage(workdir, pairs, summary)
    if not report.ok:
        render.table("demo summary", ["stage", "status", "detail"], summary)
        return 1
    run = _ingest_stage(workdir, pairs, summary)
    ok = _serve_stage(workdir, run, summary)
    render.console.rule("5. tNR run into the Iceberg lakehouse (pyiceberg SqlCatalog, local warehouse)")
    summary.append(_tnr_demo(workdir))
    render.table("demo summary", ["stage", "status", "detail"], summary)
    render.console.print(next_steps(workdir), soft_wrap=True)
    return 0 if ok else 1


def _synth_stage(workdir: Path, n: int, summary: list[tuple[str, str, str]]) -> list[ManifestPair]:
    from manifest_broker.catalog.manifests import ManifestPair
    from manifest_broker.generators.generate import synthesize

    c = render.console
    pairs = []
    t0 = time.perf_counter()
    c.rule("1. synthetic datasets (the guide's three layouts + its worked example)")
    for layout, factor in DEMO_SIZES.items():
        size = max(1, int(n * factor))
        result = synthesize(layout, workdir, size, seed=0)
        c.print(
            f"  {layout:<11} {result.hamiltonians.num_rows:>6} Hamiltonians {result.artifacts.num_rows:>7} artifacts"
        )
        pairs.append(
            ManifestPair(
                workdir / "manifests" / f"{layout}_hamiltonians.parquet",
                workdir / "manifests" / f"{layout}_artifacts.parquet",
            )
        )
    summary.append(("synth", "ok", f"{len(pairs)} datasets in {time.perf_counter() - t0:.1f}s"))
    return pairs


def _check_stage(workdir: Path, pairs: list[ManifestPair], summary: list[tuple[str, str, str]]) -> ContractReport:
    from manifest_broker.catalog.contract import check_manifests

    render.console.rule("2. contract check (DuckDB SQL rules + HDF5 probe)")
    report = check_manifests(pairs, workdir / "data", use_cache=False)
    if report.findings.num_rows:
        render.findings(report.findings)
    render.console.print(
        f"  {report.errors} error(s), {report.warnings} warning(s), "
        f"{report.probe.files if report.probe else 0} files probed in {report.seconds['total']:.2f}s"
    )
    summary.append(("check", "ok" if report.ok else "FAILED", f"{report.errors} errors, {report.warnings} warnings"))
    return report


def _ingest_stage(workdir: Path, pairs: list[ManifestPair], summary: list[tuple[str, str, str]]) -> Run:
    from manifest_broker.catalog.ingest import ingest

    c = render.console
    c.rule("3. bulk ingest into the Tiled catalog (SQLite, one transaction)")
    catalog = workdir / "catalog.db"
    run = ingest(pairs, workdir / "data", str(catalog), parent="demo")
    written = run.result
    assert written is not None and run.plan is not None
    if written.created_nodes:
        c.print(
            f"  created {written.created_nodes} nodes in {written.seconds:.2f}s "
            f"({written.created_nodes / written.seconds:,.0f} nodes/s) -> {catalog}"
        )
    else:
        c.print(
            f"  nothing to add: {written.existing_hamiltonians} Hamiltonians already in {catalog} (re-run is a no-op)"
        )
    summary.append(
        (
            "ingest",
            "ok",
            f"{written.created_nodes} new nodes, {written.existing_hamiltonians} Hamiltonians already there",
        )
    )
    return run


def _serve_stage(workdir: Path, run: Run, summary: list[tuple[str, str, str]]) -> bool:
    from tiled.client import from_uri

    from manifest_broker.catalog.serve import running_server
    from manifest_broker.catalog.verify import verify

    c = render.console
    c.rule("4. tiled serve (stock server, data directory as readable storage) + verify")
    assert run.plan is not None
    with running_server(str(workdir / "catalog.db"), workdir / "data", log=workdir / "tiled-serve.log") as url:
        c.print(f"  serving at {url}")
        client = from_uri(url, api_key="secret", include_data_sources=True)
        checked = verify(client, run.report.hamiltonians, run.plan, base_dir=workdir / "data", parent="demo", sample=10)
    for q in checked.queries:
        c.print(f"  search {q['query']}: served {q['served']}, manifest says {q['expected']}")
    for problem in checked.problems[:10]:
        c.print("  " + render.labelled("red", "mismatch", problem))
    c.print(
        f"  {checked.hamiltonians} Hamiltonians, {checked.artifacts} artifacts served; "
        f"{checked.assets_checked} served assets still inside the data directory; "
        f"{checked.arrays_compared} arrays equal to their h5py reads"
    )
    summary.append(("serve + verify", "ok" if checked.ok else "FAILED", f"{len(checked.problems)} problem(s)"))
    return checked.ok


def _here(path: Path) -> str:
    """``path`` as typed in the shell the demo runs in: relative to the working
    directory when below it (``.venv/bin/broker``), else absolute; quoted."""
    absolute = Path(os.path.abspath(path))
    try:
        text = str(absolute.relative_to(Path.cwd()))
    except ValueError:
        text = str(absolute)
    return shlex.quote(text if "/" in text else f"./{text}")


def next_steps(workdir: Path) -> str:
    """The commands to serve what the demo built and to read it back, with this
    installation's own ``broker`` and ``python`` (the quickstart never activates the
    virtual environment, so bare names would not be found)."""
    bin_dir = Path(sys.executable).parent
    broker, python = _here(bin_dir / "broker"), _here(Path(sys.executable))
    catalog, data, lake = _here(workdir / "catalog.db"), _here(workdir / "data"), _here(workdir / "lakehouse")
    # The key travels in the environment (tiled.client reads TILED_API_KEY), never in a
    # program's arguments, where `ps` and shell history would show it.
    read_tiled = (
        "from tiled.client import from_uri; c = from_uri('http://127.0.0.1:8000'); "
        "h = c['demo']; k = list(h)[0]; print(k, dict(h[k].metadata))"
    )
    read_lake = (
        f"import polars as pl; from manifest_broker.tnr.lake import catalog; "
        f"print(pl.scan_iceberg(catalog({str(workdir / 'lakehouse')!r}).load_table('tnr.reflectivity'))"
        f".select('interval_label', 'interval_start', 'n_points').collect())"
    )
    return render.escape(
        "\nserve the catalog (stock tiled serve, the data directory as readable storage):\n"
        f"  TILED_API_KEY=secret {broker} serve --catalog {catalog} --base-dir {data} --port 8000\n"
        f'read it (another terminal):\n  TILED_API_KEY=secret {python} -c "{read_tiled}"\n'
        f'read the tNR tables:\n  {python} -c "{read_lake}"\n'
        f'  {broker} tnr sql "SELECT interval_type, count(*) FROM reflectivity GROUP BY 1" --lake {lake}'
    )


def _tnr_demo(workdir: Path) -> tuple[str, str, str]:
    """Synthesize a realistic run, package it, query it, plot it."""

    from manifest_broker import queries
    from manifest_broker.generators.tnr import synthesize_run
    from manifest_broker.tnr.lake import scan, write_run
    from manifest_broker.tnr.package import package_run
    from manifest_broker.tnr.plot import PlotUnavailable, plot_run

    c = render.console
    run = synthesize_run(workdir / "tnr" / "run_218389", n_slices=24)
    lake = workdir / "lakehouse"
    package = package_run(run.split_file, run.reduced_dir, run.template)
    write_run(lake, package)
    c.print(f"  run {package.run_number}: {package.reflectivity.num_rows} slices, {package.points} points -> {lake}")
    con = queries.connect()
    con.register("reflectivity", scan(lake, "reflectivity"))
    render.arrow_table(
        "tnr.reflectivity per interval type", con.execute(queries.load("tnr/slices_by_type")).to_arrow_table()
    )
    try:
        figure = plot_run(scan(lake, "reflectivity", run=package.run_number), workdir / f"tnr_{package.run_number}.png")
    except PlotUnavailable as exc:
        c.print(f"  plot skipped: {render.escape(str(exc))}")
        return (
            "tnr package",
            "ok",
            f"{package.reflectivity.num_rows} slices in tnr.reflectivity (no plot: matplotlib missing)",
        )
    c.print(f"  plot: {render.escape(str(figure.path))}")
    return ("tnr package", "ok", f"{package.reflectivity.num_rows} slices in tnr.reflectivity, plot {figure.path.name}")
