"""The `broker` command line: argument parsing and rendering only.

Heavy imports (tiled, pyiceberg, h5py, duckdb) happen inside the commands, so
`broker --help` answers at once.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from manifest_broker import render

app = typer.Typer(
    help="Register HDF5 datasets in a Tiled catalog from Parquet manifests; package tNR runs into Iceberg.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=render.BrokerGroup,
)


def _version(value: bool) -> None:
    if value:
        from manifest_broker import __version__

        render.console.print(f"manifest-broker {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Register HDF5 datasets in a Tiled catalog from Parquet manifests; package tNR runs into Iceberg."""


def _tnr() -> typer.Typer:
    from manifest_broker.tnr.cli import app as tnr_app

    return tnr_app


app.add_typer(_tnr(), name="tnr")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
ManifestsArgument = Annotated[list[Path], typer.Argument(help="HAMILTONIANS ARTIFACTS [HAMILTONIANS ARTIFACTS ...]")]
BaseDirOption = Annotated[Path, typer.Option("--base-dir", help="Data directory the `file` paths are relative to.")]


_fail = render.fail


def _pairs(manifests: list[Path]):  # type: ignore[no-untyped-def]
    """HAM ART [HAM ART ...] into manifest pairs; an odd count is a usage error (exit 2)."""
    from manifest_broker.catalog.manifests import ManifestError, pairs_from_paths

    try:
        return pairs_from_paths(manifests)
    except ManifestError as exc:
        raise _fail(str(exc), 2) from exc


@app.command()
def synth(
    layout: Annotated[str, typer.Argument(help="vdp, edrixs, multimodal or spinwave.")],
    out_dir: Annotated[Path, typer.Argument(help="Writes OUT_DIR/data (HDF5) and OUT_DIR/manifests.")],
    n: Annotated[int, typer.Option("-n", "--n-hamiltonians", min=1, help="Hamiltonians to make.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same files.")] = 0,
) -> None:
    """Write a synthetic dataset in one of the guide's layouts, and its manifests."""
    from manifest_broker.catalog.generate import synthesize

    result = synthesize(layout, out_dir, n, seed)
    render.console.print(
        f"{layout}: {result.hamiltonians.num_rows} Hamiltonians, {result.artifacts.num_rows} artifacts"
    )
    for path in result.written:
        render.console.print(f"  wrote {path}")


@app.command()
def generate(
    generator: Annotated[str, typer.Argument(help="A layout name, a dotted module, or a generator .py file.")],
    data_dir: Annotated[Path, typer.Argument(help="Where the HDF5 files are (sets the script's DATA_DIR).")],
    out_dir: Annotated[Path, typer.Argument(help="Where the two Parquet manifests go.")],
    n: Annotated[int | None, typer.Option("-n", "--n-hamiltonians", help="Limit the Hamiltonians.")] = None,
) -> None:
    """Run a manifest generator written to the guide's interface."""
    from manifest_broker.catalog.generate import run_generator

    result = run_generator(generator, data_dir, out_dir, n)
    render.console.print(
        f"{result.hamiltonians.num_rows} Hamiltonians "
        f"(columns: {', '.join(result.hamiltonians.column_names)}), {result.artifacts.num_rows} artifacts"
    )
    for path in result.written:
        render.console.print(f"  wrote {path}")


@app.command()
def check(
    manifests: ManifestsArgument,
    base_dir: BaseDirOption,
    catalog: Annotated[str | None, typer.Option(help="Catalog to check key collisions against.")] = None,
    parent: Annotated[str, typer.Option(help="Catalog path the Hamiltonians would go under.")] = "",
    feedback: Annotated[Path | None, typer.Option(help="Write a message to the data provider here.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Open every file again.")] = False,
    workers: Annotated[int | None, typer.Option(help="Processes probing files (default: all cores).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Check manifests against the contract. Writes nothing; exit 1 on any error."""
    from manifest_broker.catalog.contract import check_manifests
    from manifest_broker.catalog.feedback import feedback_message

    pairs = _pairs(manifests)
    with render.stages(enabled=not as_json) as progress:
        report = check_manifests(pairs, base_dir, catalog=catalog, parent=parent, use_cache=not no_cache,
                                 workers=workers, progress=progress)  # fmt: skip
    if feedback:
        feedback.write_text(feedback_message(report.findings, ", ".join(p.name for p in pairs)))
    if as_json:
        render.print_json(
            {"ok": report.ok, "errors": report.errors, "warnings": report.warnings,
             "files": report.probe.files if report.probe else 0,
             "files_opened": report.probe.opened if report.probe else 0,
             "seconds": report.seconds, "findings": report.findings.to_pylist()}
        )  # fmt: skip
    else:
        if report.findings.num_rows:
            render.findings(report.findings)
        n_ham = sum(t.num_rows for t in report.hamiltonians.values())
        n_art = sum(t.num_rows for t in report.artifacts.values())
        probe = report.probe
        render.console.print(
            f"{'[green]OK[/]' if report.ok else '[red]FAILED[/]'}: {report.errors} error(s), "
            f"{report.warnings} warning(s); {n_ham} Hamiltonians, {n_art} artifacts, "
            f"{probe.files if probe else 0} files ({probe.opened if probe else 0} opened, rest from cache) "
            f"in {report.seconds.get('total', 0):.2f}s"
        )
        if feedback:
            render.console.print(f"feedback for the provider written to {feedback}")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def explore(
    data_dir: Annotated[Path, typer.Argument(help="The provider's data directory.")],
    sample: Annotated[int, typer.Option(help="HDF5 files to open.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for the random sample.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """The guide's Step 1: count files, show HDF5 trees, compare structures, name the pattern."""
    import dataclasses
    import sys

    from manifest_broker.catalog.explore import explore as explore_dir

    if not data_dir.is_dir():
        raise _fail(f"{data_dir} is not a directory")
    report = explore_dir(data_dir, sample, seed)
    if as_json:
        render.print_json(dataclasses.asdict(report))
        return
    c = render.console
    c.print(f"[bold]{report.root}[/]: {report.n_files} HDF5 file(s), {report.total_bytes / 1e6:.1f} MB in all")
    c.print("by suffix: " + ", ".join(f"{s} {n}" for s, n in sorted(report.by_suffix.items())))
    c.print("first files: " + ", ".join(report.examples))
    for info in report.sample:
        c.print(f"\n[bold]{info.path}[/] ({info.size / 1e3:.1f} kB)" + (f" [red]{info.error}[/]" if info.error else ""))
        for key, value in info.attrs.items():
            c.print(f"  @{key} = {value}")
        for group in info.groups:
            c.print(f"  {group}/ (group)")
        for d in info.datasets:
            extra = f" chunks={d.chunks}" if d.chunks else ""
            flags = f" [yellow]{'; '.join(d.flags)}[/]" if d.flags else ""
            c.print(f"  {d.path}: shape={d.shape}, dtype={d.dtype}{extra}{flags}")
            for key, value in d.attrs.items():
                c.print(f"    @{key} = {value}")
    c.print("\n[bold]structures in the sample[/]")
    for count, paths in report.structures:
        c.print(f"  {count} file(s): {', '.join(paths)}")
    if report.flags:
        c.print("\n[bold]look at these[/]")
        for flag in report.flags:
            c.print(f"  - {flag}")
    c.print(f"\n[bold]likely pattern: {report.pattern}[/] ({report.reason})")
    c.print("\n[bold]a starting generator[/] (save as gen_<name>_manifest.py, adapt, run with `broker generate`):\n")
    sys.stdout.write(report.generator)


def _environment_warnings(findings) -> None:  # type: ignore[no-untyped-def]
    """Warnings about the broker's own surroundings (not the provider's data), on stderr."""
    for row in findings.to_pylist():
        if row["rule"] == "probe_cache_unwritten":
            render.errors.print(render.labelled("yellow", "warning", row["message"]))


@app.command()
def ingest(
    manifests: ManifestsArgument,
    base_dir: BaseDirOption,
    catalog: Annotated[str, typer.Option(help="SQLite file, sqlite:///... or postgresql://...; created if missing.")],
    parent: Annotated[str, typer.Option(help="Catalog path to register under (containers created when missing).")] = "",
    update_metadata: Annotated[
        bool, typer.Option("--update-metadata", help="Update Hamiltonians whose metadata differs.")
    ] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Open every file again.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Bulk-register datasets straight into Tiled's catalog database (one transaction)."""
    from manifest_broker.catalog.ingest import ingest as run_ingest

    pairs = _pairs(manifests)
    with render.stages(enabled=not as_json) as progress:
        run = run_ingest(pairs, base_dir, catalog, parent=parent, update_metadata=update_metadata, use_cache=not no_cache,
                         notify=lambda message: render.errors.print(message, markup=False), progress=progress)  # fmt: skip
    _require_passing(run.report, "; nothing was written")
    result = run.result
    assert result is not None and run.plan is not None
    _environment_warnings(run.report.findings)
    if as_json:
        render.print_json({"created_catalog": run.created_catalog, **result.__dict__, "created_nodes": result.created_nodes,
                           "timings": run.seconds})  # fmt: skip
    else:
        c = render.console
        if result.created_nodes == 0 and not result.updated_metadata:
            c.print(f"nothing to add: all {result.existing_hamiltonians} Hamiltonians and "
                    f"{result.existing_arrays} artifacts are already in the catalog")  # fmt: skip
        else:
            rate = result.created_nodes / result.seconds if result.seconds else 0.0
            c.print(f"created {result.created_hamiltonians} Hamiltonians and {result.created_arrays} artifacts"
                    + (f" (+{result.created_containers} parent containers)" if result.created_containers else "")
                    + f"; {result.existing_hamiltonians} Hamiltonians and {result.existing_arrays} artifacts were already there"
                    + f"; write {result.seconds:.2f}s ({rate:,.0f} nodes/s)")  # fmt: skip
        for key in result.updated_metadata:
            c.print(f"  updated metadata of {key} (previous version kept as a revision)")
        pending = [k for k in result.differing_metadata if k not in result.updated_metadata]
        if pending:
            c.print(f"[yellow]{len(pending)} Hamiltonian(s) differ from the catalog[/] "
                    f"(e.g. {', '.join(pending[:5])}); re-run with --update-metadata to update them")  # fmt: skip


@app.command()
def serve(
    catalog: Annotated[str, typer.Option(help="The catalog the broker wrote.")],
    base_dir: Annotated[Path, typer.Option("--base-dir", help="Data directory, served as readable storage.")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Run a stock `tiled serve catalog CATALOG -r BASE_DIR` (no custom adapter or config).

    The API key comes from $TILED_API_KEY and reaches the server through its
    environment, never its command line (which every user of the machine can
    read), and is masked in what the server prints; without it, Tiled makes a
    random key and prints it.
    """
    import os

    from manifest_broker.catalog.database import check_catalog
    from manifest_broker.catalog.serve import run_redacted, serve_command, server_environment

    if not base_dir.is_dir():
        raise _fail(f"--base-dir {base_dir}: not a directory")
    check_catalog(catalog)
    command = serve_command(catalog, base_dir, port, host)
    key = os.environ.get("TILED_API_KEY")
    render.errors.print("running: " + " ".join(command))
    raise typer.Exit(run_redacted(command, server_environment(key), key))


def _require_passing(report, consequence: str = "") -> None:  # type: ignore[no-untyped-def]
    """Show the findings and stop when the contract has an error."""
    if not report.ok:
        render.findings(report.findings)
        raise _fail(f"the manifests break the contract ({report.errors} error(s)){consequence}")


def _checked_plan(manifests: list[Path], base_dir: Path, parent: str):  # type: ignore[no-untyped-def]
    from manifest_broker.catalog.contract import check_manifests
    from manifest_broker.catalog.plan import plan_nodes

    pairs = _pairs(manifests)
    report = check_manifests(pairs, base_dir, parent=parent)
    _require_passing(report)
    return report, plan_nodes(report.checked())


def _client(url: str, api_key: str | None, *, include_data_sources: bool = False):  # type: ignore[no-untyped-def]
    """A tiled.client root for ``url``, or a one-line error: checked with one plain
    request first, so that a server that is down fails at once (tiled's client
    retries for about half a minute)."""
    import httpx

    if not url.startswith(("http://", "https://")):
        raise _fail(f"--url {url}: give the server's address with http:// or https://", 2)
    try:
        answer = httpx.get(f"{url.rstrip('/')}/api/v1/", timeout=10.0)
        # 5xx and 429 are left to tiled.client, which retries them.
        if answer.status_code != 200 and answer.status_code < 500 and answer.status_code != 429:
            raise _fail(f"{url}: not a Tiled server (HTTP {answer.status_code} from /api/v1/)")
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
        raise _fail(f"{url}: cannot reach the Tiled server ({exc})") from exc
    except httpx.TransportError:
        pass  # a dropped connection: tiled.client retries it
    from tiled.client import from_uri

    try:
        return from_uri(url, api_key=api_key, include_data_sources=include_data_sources)
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        hint = ": give the server's key with --api-key or TILED_API_KEY" if status in (401, 403) else ""
        raise _fail(f"{url}: the server refused the connection (HTTP {status}){hint}") from exc
    except RuntimeError as exc:  # tiled.client: no key, or one it could not use, for a server that needs one
        raise _fail(f"{url}: the server needs an API key that it accepts (tiled.client: {str(exc).splitlines()[0]}); "
                    "give the server's key with --api-key or TILED_API_KEY") from exc  # fmt: skip


@app.command()
def register(
    manifests: ManifestsArgument,
    base_dir: BaseDirOption,
    url: Annotated[str, typer.Option(help="A running Tiled server.")],
    api_key: Annotated[
        str | None, typer.Option(envvar="TILED_API_KEY", help="API key (or $TILED_API_KEY).", show_default=False)
    ] = None,
    parent: Annotated[str, typer.Option(help="Catalog path to register under (containers created when missing).")] = "",
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Most requests in flight (one connection pool each); fewer while the server answers 5xx or 429.",
        ),
    ] = 8,
    as_json: JsonOption = False,
) -> None:
    """Register incrementally through a running server (the guide's option B).

    The contract is checked first, against the keys the server already has. Existing Hamiltonians (same huid) are kept and their missing artifacts added; transient server errors are retried by tiled.client. Exit 1 if any node was not registered (a re-run finishes the job).
    """
    from manifest_broker.catalog.contract import check_manifests
    from manifest_broker.catalog.plan import plan_nodes
    from manifest_broker.catalog.register import register_plan, server_state

    pairs = _pairs(manifests)
    root = _client(url, api_key)
    state = server_state(root, parent)
    with render.stages(enabled=not as_json) as progress:
        report = check_manifests(pairs, base_dir, parent=parent, catalog_keys=state.keys, progress=progress)
        _require_passing(report, "; nothing was registered")
        plan = plan_nodes(report.checked())
        from tiled.client import from_uri

        result = register_plan(lambda: from_uri(url, api_key=api_key), plan, parent=parent, workers=workers,
                               existing=state, progress=progress)  # fmt: skip
    if as_json:
        render.print_json({**result.__dict__, "created_nodes": result.created_nodes})
    else:
        c = render.console
        rate = result.created_nodes / result.seconds if result.seconds else 0.0
        c.print(f"created {result.created_hamiltonians} Hamiltonians and {result.created_arrays} artifacts"
                + (f" (+{result.created_containers} parent containers)" if result.created_containers else "")
                + f"; {result.existing_hamiltonians} Hamiltonians and {result.existing_arrays} artifacts were already there"
                + f"; {result.seconds:.1f}s ({rate:,.0f} nodes/s, {workers} workers)")  # fmt: skip
        if result.lowest_concurrency < workers:
            c.print(f"  the server was overloaded (5xx or 429 answers): requests in flight lowered to "
                    f"{result.lowest_concurrency} of {workers} at worst, and raised again as it recovered")  # fmt: skip
        if result.updated_metadata:
            c.print(f"  extended the Mode A locators of {result.updated_metadata} existing Hamiltonian(s)")
        if result.differing_metadata:
            c.print(f"[yellow]{len(result.differing_metadata)} Hamiltonian(s) differ from the server[/] "
                    f"(e.g. {', '.join(result.differing_metadata[:5])}); they were left as they are")  # fmt: skip
        for path, reason in result.failed[:20]:
            render.errors.print(render.labelled("red", "failed", f"{path}: {reason}"))
    if result.failed or result.interrupted:
        missing = plan.nodes - result.created_hamiltonians - result.created_arrays - result.skipped
        raise _fail(f"{len(result.failed)} node(s) failed"
                    + (" and the run was interrupted" if result.interrupted else "")
                    + f"; {missing} of {plan.nodes} planned node(s) are not on the server: re-run to finish")  # fmt: skip


@app.command()
def delete(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Catalog paths: a Hamiltonian (lab/H_1), an artifact (lab/H_1/rixs), or a parent (lab).",
            show_default=False,
        ),
    ],
    url: Annotated[str | None, typer.Option(help="Delete through this running Tiled server.")] = None,
    catalog: Annotated[
        str | None, typer.Option(help="Or straight from this catalog database (SQLite file or postgresql://).")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="TILED_API_KEY", help="API key (or $TILED_API_KEY).", show_default=False)
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go; change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Unregister nodes and everything under them (HDF5 files are never touched).

    The Mode A locators of deleted artifacts are removed from their Hamiltonian, keeping the old metadata as a revision. A path that does not exist deletes nothing.
    """
    from manifest_broker.catalog.database import locate
    from manifest_broker.catalog.delete import delete_in_catalog, delete_through_server

    if (url is None) == (catalog is None):
        raise _fail("give exactly one of --url (a running server) or --catalog (a catalog database)", 2)
    if not dry_run and not yes:
        if not sys.stdin.isatty():
            raise _fail(f"refusing to delete {', '.join(paths)} without --yes (or try --dry-run first)", 2)
        typer.confirm(f"Delete {', '.join(paths)} and everything under them?", abort=True)
    if url is not None:
        result = delete_through_server(_client(url, api_key), paths, dry_run=dry_run)
    else:
        assert catalog is not None
        result = delete_in_catalog(locate(catalog), paths, dry_run=dry_run)
    if as_json:
        render.print_json({**result.__dict__, "total": result.total})
        return
    what = ", ".join(f"{n} {family} node(s)" for family, n in sorted(result.nodes.items())) or "no nodes"
    assets = f" and {result.assets} asset row(s)" if url is None else ""
    render.console.print(f"{'would delete' if dry_run else 'deleted'} {what}{assets}")
    for parent, keys in result.locators_removed.items():
        render.console.print(
            f"  {'would remove' if dry_run else 'removed'} the Mode A locators of {', '.join(keys)} from {parent or '/'}"
        )


@app.command()
def locate(
    queries: Annotated[
        list[str] | None,
        typer.Argument(
            help="Metadata filters, ANDed: 'J1>0.5' 'lattice==square' (== != > >= < <=).", show_default=False
        ),
    ] = None,
    url: Annotated[str, typer.Option(help="A running Tiled server.")] = "",
    api_key: Annotated[
        str | None, typer.Option(envvar="TILED_API_KEY", help="API key (or $TILED_API_KEY).", show_default=False)
    ] = None,
    parent: Annotated[str, typer.Option(help="Catalog path the Hamiltonians are under.")] = "",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the locators as Parquet.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Mode A: search Hamiltonians by metadata and list where each artifact lives (file, dataset, index), with the Hamiltonian's parameters.

    Only metadata travels; load the arrays with manifest_broker.catalog.modea.load_batches (h5py, worker processes).
    """
    from manifest_broker.catalog.modea import LocateError
    from manifest_broker.catalog.modea import locate as run_locate

    if not url:
        raise _fail("--url is required: the Tiled server to search", 2)
    root = _client(url, api_key)
    try:
        node = root[parent] if parent.strip("/") else root
    except KeyError as exc:
        raise _fail(f"--parent {parent}: not on the server") from exc
    try:
        table = run_locate(node, queries or [])
    except LocateError as exc:
        raise _fail(str(exc), 2) from exc
    if output is not None:
        import pyarrow.parquet as pq

        pq.write_table(table, output)
    hamiltonians = len(set(table["key"].to_pylist()))
    if as_json:
        render.print_json({"hamiltonians": hamiltonians, "artifacts": table.num_rows, "output": output,
                           **({} if output else {"rows": table.to_pylist()})})  # fmt: skip
        return
    if output is None:
        render.arrow_table(None, table)
    render.console.print(
        f"{hamiltonians} Hamiltonian(s), {table.num_rows} artifact(s)" + (f" -> {output}" if output else "")
    )


@app.command()
def verify(
    manifests: ManifestsArgument,
    base_dir: BaseDirOption,
    url: Annotated[str, typer.Option(help="The Tiled server to check.")],
    api_key: Annotated[str | None, typer.Option(envvar="TILED_API_KEY", help="API key.")] = None,
    parent: Annotated[str, typer.Option(help="Catalog path the datasets were registered under.")] = "",
    sample: Annotated[int, typer.Option(help="Random arrays to compare element by element.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """The guide's Step 7: everything served, arrays equal to the files, searches right. Exit 1 on a mismatch."""
    from manifest_broker.catalog.verify import verify as run_verify

    report, plan = _checked_plan(manifests, base_dir, parent)
    client = _client(url, api_key, include_data_sources=True)
    with render.stages(enabled=not as_json) as progress:
        result = run_verify(client, report.hamiltonians, plan, base_dir=base_dir, parent=parent, sample=sample,
                            progress=progress)  # fmt: skip
    if as_json:
        render.print_json(result.__dict__ | {"ok": result.ok})
    else:
        for problem in result.problems[:50]:
            render.console.print(render.labelled("red", "mismatch", problem))
        for q in result.queries:
            render.console.print(f"search {q['query']}: served {q['served']}, manifest {q['expected']}")
        render.console.print(
            f"{'[green]OK[/]' if result.ok else '[red]FAILED[/]'}: {result.hamiltonians} Hamiltonians, "
            f"{result.artifacts} artifacts, {result.assets_checked} served assets re-checked inside {base_dir}, "
            f"{result.arrays_compared} arrays compared, {len(result.problems)} problem(s)"
        )
    raise typer.Exit(0 if result.ok else 1)


class SqlFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="DuckDB SQL over hamiltonians, artifacts and locators.")],
    ham: Annotated[Path, typer.Option("--ham", help="Hamiltonian manifest.")],
    art: Annotated[Path, typer.Option("--art", help="Artifact manifest.")],
    fmt: Annotated[SqlFormat, typer.Option("--format", help="Output format.")] = SqlFormat.table,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File for --format parquet.")] = None,
) -> None:
    """Query manifests with DuckDB: views hamiltonians, artifacts, locators."""
    import duckdb

    from manifest_broker.catalog.manifest_sql import manifest_connection

    if fmt is SqlFormat.parquet and output is None:
        raise _fail("--format parquet needs -o FILE", 2)
    try:
        con = manifest_connection(ham, art)
        result = con.execute(query).to_arrow_table()
    except (duckdb.Error, ValueError) as exc:
        raise _fail(str(exc).splitlines()[0]) from exc
    if fmt is SqlFormat.table:
        render.arrow_table(None, result, limit=None)
    elif fmt is SqlFormat.csv:
        import sys

        import pyarrow.csv as pacsv

        pacsv.write_csv(result, sys.stdout.buffer)
    elif fmt is SqlFormat.json:
        render.print_json(result.to_pylist())
    else:
        import pyarrow.parquet as pq

        pq.write_table(result, output)
        render.console.print(f"{result.num_rows} row(s) written to {output}")


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its data, catalog and lakehouse.")] = Path(
        "broker-demo"
    ),
    n: Annotated[int, typer.Option("-n", help="Hamiltonians per layout.")] = 20,
) -> None:
    """Run every stage on embedded defaults and synthetic data, with a summary."""
    from manifest_broker.demo import run_demo

    raise typer.Exit(run_demo(workdir, n))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # `python -m manifest_broker.cli`
    app()
