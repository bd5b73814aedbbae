"""`broker tnr ...` and the drop-in `iceberg-packager` command (the reference tool's arguments)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from manifest_broker import queries, render

app = typer.Typer(
    help="Package time-resolved neutron reflectometry runs into Iceberg tables.",
    no_args_is_help=True,
    cls=render.BrokerGroup,
)

LakeOption = Annotated[
    str,
    typer.Option(
        "--lake",
        help="Lakehouse directory (embedded SQLite catalog + warehouse), "
        "or a catalog URI (postgresql://..., sqlite:///...) with --warehouse.",
    ),
]
WarehouseOption = Annotated[
    str | None,
    typer.Option(
        "--warehouse", help="Warehouse path for a catalog URI (a shared filesystem path every writer can reach)."
    ),
]
NamespaceOption = Annotated[str, typer.Option("--namespace", help="Iceberg namespace.")]
TzOption = Annotated[
    float | None,
    typer.Option(
        "--tz-offset",
        help="Hours ADDED to the split file's local times to get UTC, the reducer's convention "
        "(5.0 = US Eastern standard time); default: reduction_options.json, else 0.",
    ),
]
RunNumberOption = Annotated[int | None, typer.Option("--run-number", help="Needed when the sidecar is missing.")]


_fail = render.fail


def _lake(lake: str, warehouse: str | None):  # type: ignore[no-untyped-def]
    from manifest_broker.tnr.lake import LakeError, locate_lake

    try:
        return locate_lake(lake, warehouse)
    except LakeError as exc:
        raise _fail(str(exc), 2) from exc


def run_package(split_file: Path, reduced_dir: Path, template_file: Path, output: Path | None, validate_only: bool,
                lake: str, warehouse: str | None, namespace: str, tz_offset: float | None,
                run_number: int | None, strict: bool, as_json: bool = False) -> None:  # fmt: skip
    """Package one run: check everything, then (unless validating) write Iceberg and the spec files."""
    from manifest_broker.tnr.inputs import RunInputError
    from manifest_broker.tnr.lake import write_run
    from manifest_broker.tnr.package import package_run
    from manifest_broker.tnr.reduced import ReducedFileError
    from manifest_broker.tnr.spec_files import write_spec_files

    location = _lake(lake, warehouse)
    with render.stages(enabled=not as_json) as progress:
        try:
            package = package_run(split_file, reduced_dir, template_file, tz_offset=tz_offset, run_number=run_number,
                                  strict=strict, progress=progress)  # fmt: skip
        except (RunInputError, ReducedFileError) as exc:
            raise _fail(f"{exc}; nothing was written", where=exc.where) from exc
        # Only the numeric fields: a timestamp's as_py() makes pyarrow import pandas.
        run = package.run.select(["n_nan_R", "n_negative_R", "tz_offset_hours"]).to_pylist()[0]
        answer: dict[str, object] = {
            "run_number": package.run_number, "slices": package.reflectivity.num_rows, "points": package.points, **run,
            "warnings": package.warnings, "written": False, "lake": str(location.name), "namespace": namespace,
            "repaired": None, "files": [],
        }  # fmt: skip
        if not validate_only:
            progress("writing the lake", 0, 1)
            written = write_run(location, package, namespace)
            progress("writing the lake", 1, 1)
            answer.update(written=True, repaired=written.repaired)
            if output is not None:
                answer["files"] = [str(f) for f in write_spec_files(package, output)]
    if as_json:
        render.print_json(answer)
        return
    for warning in package.warnings:
        render.console.print(render.labelled("yellow", "warning", warning))
    summary = (f"run {package.run_number}: {package.reflectivity.num_rows} slices, {package.points} points, "
               f"{run['n_nan_R']} NaN and {run['n_negative_R']} negative R values kept, tz_offset {run['tz_offset_hours']} h")  # fmt: skip
    if validate_only:
        render.console.print(f"valid: {summary}; nothing written (--validate-only)")
        return
    if answer["repaired"]:
        render.console.print(render.labelled("yellow", "repaired", f"{answer['repaired']}; this packaging replaced it"))
    render.console.print(f"packaged {summary} into {location.name} ({namespace}.reflectivity, {namespace}.runs)")
    if answer["files"]:
        render.console.print(f"wrote {' and '.join(answer['files'])}")  # type: ignore[arg-type]


@app.command()
def package(
    split_file: Annotated[Path, typer.Argument(help="Split JSON from the EIS interval extractor.")],
    reduced_dir: Annotated[Path, typer.Argument(help="Directory of reduced files and the sidecar.")],
    template_file: Annotated[Path, typer.Argument(help="Reduction template XML.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Also write the spec's two Parquet files.")
    ] = None,
    validate_only: Annotated[bool, typer.Option("--validate-only", help="Run every check, write nothing.")] = False,
    lake: LakeOption = "lakehouse",
    warehouse: WarehouseOption = None,
    namespace: NamespaceOption = "tnr",
    tz_offset: TzOption = None,
    run_number: RunNumberOption = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Unmatched files/intervals and shared file names are errors.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Package one run into <ns>.reflectivity and <ns>.runs (re-packaging replaces the run)."""
    run_package(split_file, reduced_dir, template_file, output, validate_only, lake, warehouse, namespace, tz_offset,
                run_number, strict, as_json)  # fmt: skip


@app.command("package-many")
def package_many(
    root: Annotated[Path, typer.Argument(help="Directory holding many runs.")],
    lake: LakeOption = "lakehouse",
    warehouse: WarehouseOption = None,
    namespace: NamespaceOption = "tnr",
    jobs: Annotated[int, typer.Option(min=1, help="Runs read in parallel.")] = 1,
) -> None:
    """Find and package every run under ROOT, one commit per run, with a summary."""
    import itertools

    from manifest_broker.tnr.campaign import find_runs
    from manifest_broker.tnr.campaign import package_many as run_many

    location = _lake(lake, warehouse)
    if not root.is_dir():
        raise _fail(f"{root}: not a directory")
    total = sum(1 for _ in find_runs(root))
    if total == 0:
        raise _fail(f"{root}: no run found (no r<run>_eis_reduction.json below it)")
    done = itertools.count(1)  # next() is atomic: on_done comes from worker threads
    with render.progress("packaging runs", total) as update:
        summaries = run_many(root, location, namespace, jobs, on_done=lambda _summary: update(next(done)))
    render.table("campaign", ["run", "reduced dir", "slices", "points", "warnings", "error"],
                 [(s.run_number, s.reduced_dir, s.slices, s.points, len(s.warnings), s.error or "") for s in summaries],
                 limit=None)  # fmt: skip
    for s in summaries:
        if s.error:
            render.errors.print(render.labelled("red", "error", s.error))
    if any(s.error for s in summaries):
        raise typer.Exit(1)


@app.command()
def plot(
    run: Annotated[int, typer.Option("--run", help="Run number.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG file.")],
    lake: LakeOption = "lakehouse",
    warehouse: WarehouseOption = None,
    namespace: NamespaceOption = "tnr",
    q_min: Annotated[float, typer.Option(help="Q band start for the time panel.")] = 0.01,
    q_max: Annotated[float, typer.Option(help="Q band end.")] = 0.03,
) -> None:
    """Reflectivity curves coloured by time, and a Q band's integrated R over time."""
    from manifest_broker.tnr.lake import scan
    from manifest_broker.tnr.plot import plot_run

    rows = scan(_lake(lake, warehouse), "reflectivity", namespace, run)
    if rows.num_rows == 0:
        raise _fail(f"run {run} is not in {lake} ({namespace}.reflectivity)")
    render.console.print(f"wrote {plot_run(rows, output, (q_min, q_max))}")


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="DuckDB SQL over the tables reflectivity and runs.")],
    lake: LakeOption = "lakehouse",
    warehouse: WarehouseOption = None,
    namespace: NamespaceOption = "tnr",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
) -> None:
    """DuckDB over the Iceberg tables, through the Arrow result of a pyiceberg scan."""
    import duckdb

    from manifest_broker.tnr.lake import scan

    location = _lake(lake, warehouse)
    con = queries.connect()
    for name in ("reflectivity", "runs"):
        con.register(name, scan(location, name, namespace))
    try:
        result = con.execute(query).to_arrow_table()
    except duckdb.Error as exc:
        raise _fail(str(exc).splitlines()[0]) from exc
    if as_json:
        render.print_json(result.to_pylist())
    else:
        render.arrow_table(None, result, limit=None)


@app.command()
def check(
    lake: LakeOption = "lakehouse",
    warehouse: WarehouseOption = None,
    namespace: NamespaceOption = "tnr",
    repair: Annotated[bool, typer.Option("--repair", help="Make every mismatched run consistent.")] = False,
) -> None:
    """Find runs whose two tables disagree (a packaging killed between its commits); exit 1 if any."""
    from manifest_broker.tnr.lake import catalog, check_lake, repair_lake

    location = _lake(lake, warehouse)
    cat = catalog(location, create=False)
    mismatches = check_lake(cat, namespace)
    if repair and mismatches:
        for line in repair_lake(cat, namespace, mismatches):
            render.console.print(f"repaired {line}")
        mismatches = check_lake(cat, namespace)
    for mismatch in mismatches:
        render.console.print(
            render.labelled("red", "inconsistent", f"{mismatch.describe()}; re-package the run or run with --repair")
        )
    if mismatches:
        raise typer.Exit(1)
    render.console.print(f"[green]OK[/]: every run in {location.name} ({namespace}) has matching rows in both tables")


@app.command()
def maintain(
    lake: LakeOption = "lakehouse",
    warehouse: WarehouseOption = None,
    namespace: NamespaceOption = "tnr",
    keep: Annotated[
        int, typer.Option("--keep", min=1, help="Snapshots kept per table (the current one included).")
    ] = 2,
) -> None:
    """Expire old snapshots and delete the files only they read, in every table of the namespace."""
    from manifest_broker.tnr.lake import maintain as run_maintain

    done = run_maintain(_lake(lake, warehouse), namespace, keep)
    for table, (expired, files, size) in done.items():
        render.console.print(f"{table}: {expired} snapshot(s) expired, {files} file(s) deleted ({size / 1e6:.1f} MB)")


def _print_version(value: bool) -> None:
    if value:
        from manifest_broker import __version__

        render.console.print(f"iceberg-packager (manifest-broker) {__version__}")
        raise typer.Exit()


packager = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@packager.command(cls=render.BrokerCommand)
def _iceberg_packager(
    split_file: Annotated[Path, typer.Argument(help="Path to the split JSON file.")],
    reduced_dir: Annotated[Path, typer.Argument(help="Directory containing reduced .txt files.")],
    template_file: Annotated[Path, typer.Argument(help="Reduction template XML file.")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Output Parquet file (default <reduced_dir>/tnr_data.parquet)."),
    ] = None,
    validate_only: Annotated[
        bool, typer.Option("--validate-only", help="Only validate inputs, do not create output.")
    ] = False,
    lake: LakeOption = "lakehouse",
    warehouse: WarehouseOption = None,
    tz_offset: TzOption = None,
    run_number: RunNumberOption = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=lambda v: _print_version(v), is_eager=True, help="Print the version and exit."
        ),
    ] = False,  # fmt: skip
) -> None:
    """Package tNR data with EIS timing information (drop-in for the reference iceberg-packager):
    writes the two Parquet files and the Iceberg tables."""
    run_package(split_file, reduced_dir, template_file, output or reduced_dir / "tnr_data.parquet",
                validate_only, lake, warehouse, "tnr", tz_offset, run_number, False)  # fmt: skip


def iceberg_packager() -> None:  # console script
    packager()
