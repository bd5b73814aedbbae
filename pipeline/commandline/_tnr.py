"""`broker tnr ...` and the drop-in `iceberg-packager` (the reference tool's arguments)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from manifest_broker import render
from manifest_broker.commandline._shared import (
    DaskOption,
    JsonOption,
    cluster,
    input_dir,
    output_file,
    progress_enabled,
)
from manifest_broker.errors import BrokerError

if TYPE_CHECKING:
    from manifest_broker.tnr.lake import Lake
    from manifest_broker.tnr.run import PackageOptions


class _LakeGroup(render.BrokerGroup):
    """The ``tnr`` group: its lake options (:data:`LAKE_OPTIONS`) belong to the group,
    and may also be written after the command (``broker tnr package ... --lake L``),
    where they are taken as the group's."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _hoisted(args))


LAKE_OPTIONS = ("--lake", "--warehouse", "--namespace")
LAKE_EPILOG = (
    "Lake options (--lake, --warehouse, --namespace): see `broker tnr --help`; they may also follow the command."
)


def _hoisted(args: list[str]) -> list[str]:
    """``args`` with the lake options (and their values) that follow the command
    moved in front of it; nothing after ``--`` moves."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        token = args[index]
        if token == "--":
            rest.extend(args[index:])
            break
        if token in LAKE_OPTIONS:
            if index + 1 == len(args):
                import click

                raise click.UsageError(f"Option '{token}' requires an argument.")
            front.extend(args[index : index + 2])
            index += 2
            continue
        if token.split("=", 1)[0] in LAKE_OPTIONS and "=" in token:
            front.append(token)
        else:
            rest.append(token)
        index += 1
    return front + rest


app = typer.Typer(
    help="Package time-resolved neutron reflectometry runs into Iceberg tables.",
    no_args_is_help=True,
    cls=_LakeGroup,
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
        min=-12.0,
        max=14.0,
        help="Hours ADDED to the split file's local times to get UTC, the reducer's convention "
        "(5.0 = US Eastern standard time); default: reduction_options.json, else unknown (times taken as UTC).",
    ),
]
InputsRootOption = Annotated[
    Path | None,
    typer.Option(
        "--inputs-root",
        help="Folder the split files and templates that reduction_options.json names may lie in "
        "(default: each run's own folder; symlinks and paths out of it are refused).",
    ),
]
RunNumberOption = Annotated[int | None, typer.Option("--run-number", help="Needed when the sidecar is missing.")]


@dataclass(frozen=True)
class LakeChoice:
    """The lake options of the ``tnr`` group, for its commands."""

    lake: str
    warehouse: str | None
    namespace: str

    def location(self) -> Lake:
        """The lake, checked (:func:`_lake`)."""
        return _lake(self.lake, self.warehouse)


@app.callback()
def _lake_options(
    ctx: typer.Context,
    lake: LakeOption = "lakehouse",
    warehouse: WarehouseOption = None,
    namespace: NamespaceOption = "tnr",
) -> None:
    """Package time-resolved neutron reflectometry runs into Iceberg tables."""
    ctx.obj = LakeChoice(lake, warehouse, namespace)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the block as Ctrl-C does (through SIGINT, so a commit in progress
    is finished first: see ``processes.interrupt_deferred``), with exit code 143."""
    import signal

    received: list[int] = []

    def handler(number: int, _frame: object) -> None:
        received.append(number)
        signal.raise_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except KeyboardInterrupt:
        if received:
            raise BrokerError(
                "terminated (SIGTERM): what was committed stays; a re-run finishes the job", exit_code=143
            ) from None
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _lake(lake: str, warehouse: str | None) -> Lake:
    from manifest_broker.tnr.lake import LakeError, locate_lake

    if "://" not in lake and not (parent := Path(lake).expanduser().absolute().parent).is_dir():
        # A lake is created in a folder that exists, never with the folders above it (a typo would make a tree).
        raise BrokerError(f"--lake {lake}: folder {parent} does not exist", where=lake)
    try:
        return locate_lake(lake, warehouse)
    except LakeError as exc:
        raise BrokerError(str(exc), where=exc.where, exit_code=2) from exc


def _existing_namespace(location: Lake, namespace: str) -> Any:
    """The lake's catalog, refusing (before anything is done) a namespace it does not have."""
    from manifest_broker.tnr.lake import catalog, require_namespace

    cat = catalog(location, create=False)
    require_namespace(cat, namespace, location.name)
    return cat


def _creatable(path: Path, option: str) -> None:
    """An output file whose folder may not exist yet (the reference tool creates it):
    not a folder, and the nearest existing folder above it writable. Checked before
    any work."""
    folder = path.absolute().parent
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    if not missing:
        output_file(path, option)
        return
    if path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise BrokerError(
            f"{option} {path}: cannot create its folder {missing[-1]} ({folder} is not a writable folder)", where=path
        )


def _package(options: PackageOptions, location: Lake) -> None:
    """``tnr package`` and ``iceberg-packager``: the options checked before any work,
    the run packaged (:func:`manifest_broker.tnr.run.package_one_run`), the answer said."""
    from manifest_broker.tnr.run import package_one_run
    from manifest_broker.tnr.spec_files import spec_paths

    if options.output is not None and not options.validate_only:
        for path in spec_paths(options.output):  # both files, before anything is read or committed
            _creatable(path, "-o")
    with render.stages(progress_enabled()) as progress:
        _, answer = package_one_run(options, location, progress)

    def text() -> None:
        for warning in answer.warnings:
            render.console.print(render.labelled("yellow", "warning", warning))
        offset = "unknown (times taken as UTC)" if answer.tz_offset_hours is None else f"{answer.tz_offset_hours} h"
        summary = (
            f"run {answer.run_number}: {answer.slices} slices, {answer.points} points, "
            f"{answer.n_nan_R} NaN and {answer.n_negative_R} negative R values kept, tz_offset {offset}"
        )
        if options.validate_only:
            render.console.print(f"valid: {summary}; nothing written (--validate-only)", markup=False)
            return
        if answer.repaired:
            render.console.print(
                render.labelled("yellow", "repaired", f"{answer.repaired}; this packaging replaced it")
            )
        render.console.print(
            f"packaged {summary} into {location.name} ({options.namespace}.reflectivity, {options.namespace}.runs)",
            markup=False,
        )
        if answer.files:
            render.console.print(f"wrote {' and '.join(answer.files)}", markup=False)

    render.output().emit(answer.__dict__, text)


@app.command(epilog=LAKE_EPILOG)
def package(
    ctx: typer.Context,
    split_file: Annotated[Path, typer.Argument(help="Split JSON from the EIS interval extractor.")],
    reduced_dir: Annotated[Path, typer.Argument(help="Directory of reduced files and the sidecar.")],
    template_file: Annotated[Path, typer.Argument(help="Reduction template XML.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Also write the spec's two Parquet files.")
    ] = None,
    validate_only: Annotated[bool, typer.Option("--validate-only", help="Run every check, write nothing.")] = False,
    tz_offset: TzOption = None,
    run_number: RunNumberOption = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Unmatched files/intervals and shared file names are errors.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Package one run into <ns>.reflectivity and <ns>.runs (re-packaging replaces the run)."""
    choice: LakeChoice = ctx.obj
    from manifest_broker.tnr.run import PackageOptions

    options = PackageOptions(
        split_file,
        reduced_dir,
        template_file,
        output=output,
        validate_only=validate_only,
        namespace=choice.namespace,
        tz_offset=tz_offset,
        run_number=run_number,
        strict=strict,
    )
    _package(options, choice.location())


@app.command("package-many", epilog=LAKE_EPILOG)
def package_many(
    ctx: typer.Context,
    root: Annotated[Path, typer.Argument(help="Directory holding many runs.")],
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            max=256,
            help="Runs read in parallel (processes); this process commits them. Not offered as faster: with the "
            "cores busy it is slower than 1 (README, Benchmarks); it pays where cores are idle and reading dominates.",
        ),
    ] = 1,
    dask: DaskOption = None,
    inputs_root: InputsRootOption = None,
    as_json: JsonOption = False,
) -> None:
    """Find and package every run under ROOT, all or nothing per run, with a summary (exit 1 if a run failed).

    With --dask, the runs are read on the cluster's workers (which must see ROOT at the same path) and
    committed here in batches, as they arrive."""
    choice: LakeChoice = ctx.obj
    import itertools

    from manifest_broker.tnr.campaign import find_runs
    from manifest_broker.tnr.campaign import package_many as run_many
    from manifest_broker.tnr.inputs import SIDECAR_NAME

    location = choice.location()
    input_dir(root, "ROOT")
    root = root.absolute()  # workers (on Dask: other hosts' processes) have other working directories
    if inputs_root is not None:
        inputs_root = input_dir(inputs_root, "--inputs-root").absolute()
    total = sum(1 for _ in find_runs(root, inputs_root))
    if total == 0:
        raise BrokerError(f"{root}: no run found (no {SIDECAR_NAME} below it)", where=root)
    done = itertools.count(1)  # next() is atomic: on_done comes from worker threads
    with (
        _sigterm_as_interrupt(),
        cluster(dask) as client,
        render.progress("packaging runs", total, enabled=progress_enabled()) as update,
    ):
        summaries = run_many(
            root,
            location,
            choice.namespace,
            jobs,
            on_done=lambda _summary: update(next(done)),
            cluster=client,
            inputs_root=inputs_root,
        )
    failed = [s for s in summaries if s.error]

    def text() -> None:
        render.table(
            "campaign",
            ["run", "reduced dir", "slices", "points", "warnings", "error"],
            [(s.run_number, s.reduced_dir, s.slices, s.points, len(s.warnings), s.error or "") for s in summaries],
            limit=None,
        )
        for s in failed:
            render.errors.print(render.labelled("red", "error", s.error or ""))

    render.output().emit(
        {"runs": [s.__dict__ for s in summaries], "packaged": len(summaries) - len(failed), "failed": len(failed)}, text
    )
    if failed:
        raise typer.Exit(1)


@app.command(epilog=LAKE_EPILOG)
def watch(
    ctx: typer.Context,
    root: Annotated[Path, typer.Argument(help="Folder the reducer writes runs into (watched recursively).")],
    poll: Annotated[float, typer.Option(min=0.05, max=3600.0, help="Seconds between two looks at the folders.")] = 0.25,
    once: Annotated[
        bool, typer.Option("--once", help="Package what is complete now, then exit (1 if a run seen was not packaged).")
    ] = False,
    inputs_root: InputsRootOption = None,
) -> None:
    """Stay up and package each run once its reduced folder is complete (sidecar present, files unchanged
    over one poll); restarts pick up where a stopped or killed watcher left off. SIGTERM or Ctrl-C stop it
    after the run in progress. One line per run: `packaged ...` on stdout, `error: ...` on stderr."""
    choice: LakeChoice = ctx.obj
    from manifest_broker.tnr.watch import Stop, WatchEvent
    from manifest_broker.tnr.watch import watch as run_watch

    input_dir(root, "ROOT")
    location = choice.location()

    def tell(event: WatchEvent) -> None:
        if event.waiting:
            render.errors.print(render.labelled("yellow", "waiting", f"{event.reduced_dir}: {event.waiting}"))
            return
        if event.error:
            render.errors.print(render.labelled("red", "error", event.error))
            return
        render.console.print(
            f"packaged run {event.run_number}: {event.slices} slices from {event.reduced_dir} in {event.seconds:.2f}s",
            markup=False,
        )
        sys.stdout.flush()

    if not once:
        render.errors.print(
            f"watching {root} (every {poll:g}s) into {location.name}; Ctrl-C or SIGTERM to stop", markup=False
        )
    stop = Stop().on_signals()
    events = run_watch(
        root, location, choice.namespace, poll=poll, once=once, on_event=tell, stop=stop, inputs_root=inputs_root
    )
    if stop.event.is_set():
        # Stopped: Ctrl-C exits 130 as the README promises; SIGTERM, the normal way to
        # stop a service, 0. At once: the interpreter's teardown with the Iceberg stack
        # loaded takes half a second, and nothing is left to flush (every commit is done).
        if stop.interrupted:
            render.output().error(
                BrokerError(
                    "interrupted (Ctrl-C): what was committed stays; a restart picks up the rest", exit_code=130
                )
            )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130 if stop.interrupted else 0)
    if once and (unpackaged := _unpackaged(events)):
        raise BrokerError(f"{len(unpackaged)} run(s) seen but not packaged: {', '.join(unpackaged[:3])}")


def _unpackaged(events: list[Any]) -> list[str]:
    """Run folders whose last event is an error or a wait."""
    last = {event.reduced_dir: event for event in events}
    return [folder for folder, event in last.items() if event.error or event.waiting]


@app.command(epilog=LAKE_EPILOG)
def plot(
    ctx: typer.Context,
    run: Annotated[int, typer.Option("--run", help="Run number.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Image file (.png, .pdf, .svg).")],
    q_min: Annotated[float, typer.Option(help="Q band start for the time panel [1/Å].")] = 0.01,
    q_max: Annotated[float, typer.Option(help="Q band end [1/Å].")] = 0.03,
    as_json: JsonOption = False,
) -> None:
    """R(Q) of every slice coloured by its absolute time, with error bars, and a Q band's R over time."""
    choice: LakeChoice = ctx.obj
    from manifest_broker.tnr.lake import scan
    from manifest_broker.tnr.plot import PLOT_COLUMNS, check_output, plot_run

    if not q_min < q_max:
        raise BrokerError(f"--q-min {q_min} must be below --q-max {q_max}", exit_code=2)
    output_file(output, "-o")
    check_output(output)
    location = choice.location()
    _existing_namespace(location, choice.namespace)
    rows = scan(location, "reflectivity", choice.namespace, run, PLOT_COLUMNS)
    if rows.num_rows == 0:
        raise BrokerError(f"run {run} is not in {location.name} ({choice.namespace}.reflectivity)", where=location.name)
    figure = plot_run(rows, output, (q_min, q_max))
    render.output().emit(
        {"run_number": run, "output": str(figure.path), "slices": figure.slices, "negative_or_zero_R": figure.hidden},
        lambda: render.console.print(
            f"wrote {figure.path} ({figure.slices} slices; {figure.hidden} R values <= 0 "
            "not on the log axis, counted in the legend)",
            markup=False,
        ),
    )


@app.command(epilog=LAKE_EPILOG)
def sql(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="DuckDB SQL over the tables reflectivity and runs.")],
    as_json: JsonOption = False,
) -> None:
    """DuckDB over the Iceberg tables, through the Arrow result of a pyiceberg scan."""
    choice: LakeChoice = ctx.obj

    from manifest_broker import queries
    from manifest_broker.tnr.lake import scan

    location = choice.location()
    _existing_namespace(location, choice.namespace)
    con = queries.connect()
    for name in ("reflectivity", "runs"):
        con.register(name, scan(location, name, choice.namespace))
    result = queries.user_query(con, query)
    if render.output().json:
        render.print_json(result.to_pylist())
    else:
        render.arrow_table(None, result, limit=None)


@app.command(epilog=LAKE_EPILOG)
def check(
    ctx: typer.Context,
    repair: Annotated[bool, typer.Option("--repair", help="Make every mismatched run consistent.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Find runs whose two tables disagree (a packaging killed between its commits); exit 1 if any."""
    choice: LakeChoice = ctx.obj
    from manifest_broker.tnr.lake import check_lake, repair_lake

    location = choice.location()
    cat = _existing_namespace(location, choice.namespace)
    mismatches = check_lake(cat, choice.namespace)
    repaired = repair_lake(cat, choice.namespace, mismatches) if repair and mismatches else []
    if repaired:
        mismatches = check_lake(cat, choice.namespace)

    def text() -> None:
        for line in repaired:
            render.console.print(f"repaired {line}", markup=False)
        for mismatch in mismatches:
            render.console.print(
                render.labelled(
                    "red", "inconsistent", f"{mismatch.describe()}; re-package the run or run with --repair"
                )
            )
        if not mismatches:
            render.console.print(
                f"[green]OK[/]: every run in {render.escape(location.name)} ({render.escape(choice.namespace)}) has matching "
                "rows in both tables"
            )

    render.output().emit(
        {"ok": not mismatches, "repaired": repaired, "inconsistent": [m.describe() for m in mismatches]}, text
    )
    if mismatches:
        raise typer.Exit(1)


@app.command(epilog=LAKE_EPILOG)
def maintain(
    ctx: typer.Context,
    keep: Annotated[
        int, typer.Option("--keep", min=1, help="Snapshots kept per table (the current one included).")
    ] = 2,
    orphans_older_than: Annotated[
        float,
        typer.Option(
            "--orphans-older-than",
            min=0.0,
            help="Hours: data files no snapshot references are deleted once this old (a killed packaging's leftovers; "
            "younger ones may belong to a packaging still running).",
        ),
    ] = 24.0,
    as_json: JsonOption = False,
) -> None:
    """Expire old snapshots, delete the files only they read, and remove orphan data files."""
    choice: LakeChoice = ctx.obj
    from manifest_broker.tnr.lake import maintain as run_maintain

    location = choice.location()
    _existing_namespace(location, choice.namespace)
    done = run_maintain(location, choice.namespace, keep, orphan_age_hours=orphans_older_than)

    def text() -> None:
        for table, counts in done.items():
            render.console.print(
                f"{table}: {counts.expired} snapshot(s) expired, {counts.files} file(s) deleted "
                f"({counts.bytes / 1e6:.1f} MB), {counts.orphans} orphan file(s) removed ({counts.orphan_bytes / 1e6:.1f} MB)",
                markup=False,
            )

    render.output().emit({table: counts._asdict() for table, counts in done.items()}, text)


def _print_version(value: bool) -> None:
    if value:
        from manifest_broker import __version__

        render.console.print(f"iceberg-packager (manifest-broker) {__version__}", markup=False)
        raise typer.Exit()


packager = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
DEFAULT_SPEC_OUTPUT = Path("tnr_data.parquet")


@packager.command("iceberg-packager", cls=render.BrokerCommand)
def _iceberg_packager(
    split_file: Annotated[Path, typer.Argument(help="Path to the split JSON file.")],
    reduced_dir: Annotated[Path, typer.Argument(help="Directory containing reduced .txt files.")],
    template_file: Annotated[Path, typer.Argument(help="Reduction template XML file.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Output Parquet file (default ./tnr_data.parquet: the reduced folder, an input, is never written).",
        ),
    ] = None,
    validate_only: Annotated[
        bool, typer.Option("--validate-only", help="Only validate inputs, do not create output.")
    ] = False,
    lake: LakeOption = "lakehouse",
    warehouse: WarehouseOption = None,
    tz_offset: TzOption = None,
    run_number: RunNumberOption = None,
    as_json: JsonOption = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=lambda v: _print_version(v), is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Package tNR data with EIS timing information (drop-in for the reference iceberg-packager):
    writes the two Parquet files and the Iceberg tables."""
    from manifest_broker.tnr.run import PackageOptions

    options = PackageOptions(
        split_file,
        reduced_dir,
        template_file,
        output=output or DEFAULT_SPEC_OUTPUT,
        validate_only=validate_only,
        tz_offset=tz_offset,
        run_number=run_number,
    )
    _package(options, _lake(lake, warehouse))


def iceberg_packager() -> None:  # console script
    from manifest_broker.commandline._process import without_pandas

    without_pandas()  # a process of its own that never uses pandas (see _process.WITHOUT_PANDAS)
    packager()
