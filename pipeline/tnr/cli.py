"""`broker tnr ...` and the drop-in `iceberg-packager` command (the reference tool's arguments)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline import render

app = typer.Typer(help="Package time-resolved neutron reflectometry runs into Iceberg tables.", no_args_is_help=True)

LakeOption = Annotated[Path, typer.Option("--lake", help="Lakehouse directory (SQLite catalog + warehouse).")]
NamespaceOption = Annotated[str, typer.Option("--namespace", help="Iceberg namespace.")]


_fail = render.fail


def run_package(split_file: Path, reduced_dir: Path, template_file: Path, output: Optional[Path], validate_only: bool,
                lake: Path, namespace: str, tz_offset: Optional[float], run_number: Optional[int], strict: bool) -> None:  # fmt: skip
    """Package one run: check everything, then (unless validating) write Iceberg and the spec files."""
    from pipeline.tnr.inputs import RunInputError
    from pipeline.tnr.lake import write_run
    from pipeline.tnr.package import package_run
    from pipeline.tnr.reduced import ReducedFileError
    from pipeline.tnr.spec_files import write_spec_files

    try:
        package = package_run(split_file, reduced_dir, template_file, tz_offset=tz_offset, run_number=run_number, strict=strict)
    except (RunInputError, ReducedFileError) as exc:
        raise _fail(f"{exc}; nothing was written") from exc
    for warning in package.warnings:
        render.console.print(f"[yellow]warning:[/] {warning}")
    run = package.run.to_pylist()[0]
    summary = (f"run {package.run_number}: {package.reflectivity.num_rows} slices, {package.points} points, "
               f"{run['n_nan_R']} NaN and {run['n_negative_R']} negative R values kept, tz_offset {run['tz_offset_hours']} h")  # fmt: skip
    if validate_only:
        render.console.print(f"valid: {summary}; nothing written (--validate-only)")
        return
    write_run(lake, package, namespace)
    render.console.print(f"packaged {summary} into {lake} ({namespace}.reflectivity, {namespace}.runs)")
    if output is not None:
        data, meta = write_spec_files(package, output)
        render.console.print(f"wrote {data} and {meta}")


@app.command()
def package(
    split_file: Annotated[Path, typer.Argument(help="Split JSON from the EIS interval extractor.")],
    reduced_dir: Annotated[Path, typer.Argument(help="Directory of reduced files and the sidecar.")],
    template_file: Annotated[Path, typer.Argument(help="Reduction template XML.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Also write the spec's two Parquet files.")] = None,
    validate_only: Annotated[bool, typer.Option("--validate-only", help="Run every check, write nothing.")] = False,
    lake: LakeOption = Path("lakehouse"),
    namespace: NamespaceOption = "tnr",
    tz_offset: Annotated[Optional[float], typer.Option(help="Hours; default: reduction_options.json.")] = None,
    run_number: Annotated[Optional[int], typer.Option(help="Needed when the sidecar is missing.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Unmatched files/intervals are errors.")] = False,
) -> None:
    """Package one run into <ns>.reflectivity and <ns>.runs (re-packaging replaces the run)."""
    run_package(split_file, reduced_dir, template_file, output, validate_only, lake, namespace, tz_offset, run_number, strict)


@app.command("package-many")
def package_many(
    root: Annotated[Path, typer.Argument(help="Directory holding many runs.")],
    lake: LakeOption = Path("lakehouse"),
    namespace: NamespaceOption = "tnr",
    jobs: Annotated[int, typer.Option(min=1, help="Runs read in parallel.")] = 1,
) -> None:
    """Find and package every run under ROOT, one commit per run, with a summary."""
    from rich.progress import Progress

    from pipeline.tnr.campaign import find_runs
    from pipeline.tnr.campaign import package_many as run_many

    total = sum(1 for _ in find_runs(root))
    with Progress(console=render.console) as progress:
        task = progress.add_task("packaging runs", total=total)
        summaries = run_many(root, lake, namespace, jobs, on_done=lambda s: progress.advance(task))
    render.table("campaign", ["run", "reduced dir", "slices", "points", "warnings", "error"],
                 [(s.run_number, s.reduced_dir, s.slices, s.points, len(s.warnings), s.error or "") for s in summaries],
                 limit=None)  # fmt: skip
    for s in summaries:
        if s.error:
            render.errors.print(f"[red]error:[/] {s.error}")
    if any(s.error for s in summaries):
        raise typer.Exit(1)


@app.command()
def plot(
    run: Annotated[int, typer.Option("--run", help="Run number.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG file.")],
    lake: LakeOption = Path("lakehouse"),
    namespace: NamespaceOption = "tnr",
    q_min: Annotated[float, typer.Option(help="Q band start for the time panel.")] = 0.01,
    q_max: Annotated[float, typer.Option(help="Q band end.")] = 0.03,
) -> None:
    """Reflectivity curves coloured by time, and a Q band's integrated R over time."""
    from pipeline.tnr.lake import scan
    from pipeline.tnr.plot import plot_run

    rows = scan(lake, "reflectivity", namespace, run)
    if rows.num_rows == 0:
        raise _fail(f"run {run} is not in {lake} ({namespace}.reflectivity)")
    render.console.print(f"wrote {plot_run(rows, output, (q_min, q_max))}")


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="DuckDB SQL over the tables reflectivity and runs.")],
    lake: LakeOption = Path("lakehouse"),
    namespace: NamespaceOption = "tnr",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
) -> None:
    """DuckDB over the Iceberg tables, through the Arrow result of a pyiceberg scan."""
    import duckdb

    from pipeline.tnr.lake import scan

    con = duckdb.connect()
    for name in ("reflectivity", "runs"):
        con.register(name, scan(lake, name, namespace))
    try:
        result = con.execute(query).to_arrow_table()
    except duckdb.Error as exc:
        raise _fail(str(exc).splitlines()[0]) from exc
    if as_json:
        render.print_json(result.to_pylist())
    else:
        render.arrow_table(None, result, limit=None)


packager = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@packager.command()
def _iceberg_packager(
    split_file: Annotated[Path, typer.Argument(help="Path to the split JSON file.")],
    reduced_dir: Annotated[Path, typer.Argument(help="Directory containing reduced .txt files.")],
    template_file: Annotated[Path, typer.Argument(help="Reduction template XML file.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Output Parquet file (default <reduced_dir>/tnr_data.parquet).")] = None,
    validate_only: Annotated[bool, typer.Option("--validate-only", help="Only validate inputs, do not create output.")] = False,
    lake: LakeOption = Path("lakehouse"),
) -> None:
    """Package tNR data with EIS timing information (drop-in for the reference iceberg-packager):
    writes the two Parquet files and the Iceberg tables."""
    run_package(split_file, reduced_dir, template_file, output or reduced_dir / "tnr_data.parquet",
                validate_only, lake, "tnr", None, None, False)  # fmt: skip


def iceberg_packager() -> None:  # console script
    packager()
