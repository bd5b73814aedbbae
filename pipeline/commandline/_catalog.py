"""The catalog: check manifests against the contract, bulk-ingest them, delete
nodes, query manifests, and the demo that runs every stage."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from manifest_broker import render
from manifest_broker.commandline._shared import (
    BaseDirOption,
    CardOption,
    DaskOption,
    JsonOption,
    ManifestsArgument,
    MaxArrayOption,
    NoCacheOption,
    StoredCardOption,
    catalog_target,
    cluster,
    dataset_card,
    input_dir,
    output_dir,
    output_file,
    pairs,
    progress_enabled,
    server,
    suffixed,
    write_and_report,
)
from manifest_broker.errors import BrokerError


def check(
    manifests: ManifestsArgument,
    base_dir: BaseDirOption,
    catalog: Annotated[str | None, typer.Option(help="Catalog to check key collisions against.")] = None,
    parent: Annotated[str, typer.Option(help="Catalog path the Hamiltonians would go under.")] = "",
    feedback: Annotated[Path | None, typer.Option(help="Write a message to the data provider here.")] = None,
    no_cache: NoCacheOption = False,
    workers: Annotated[int | None, typer.Option(min=1, help="Processes probing files (default: all cores).")] = None,
    dask: DaskOption = None,
    card: CardOption = None,
    max_array_size: MaxArrayOption = None,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep", help="Also read every value once, to find corrupt or truncated chunks (reads all the data)."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Check manifests against the contract. Writes nothing (but its probe cache); exit 1 on any error."""
    from manifest_broker.catalog.contract import MAX_ARRAY_BYTES, check_manifests
    from manifest_broker.catalog.database import check_catalog, existing_keys
    from manifest_broker.catalog.keys import parent_path
    from manifest_broker.provider.feedback import feedback_message

    if feedback is not None:
        output_file(feedback, "--feedback")
    given = pairs(manifests)
    input_dir(base_dir, "--base-dir")
    parent = parent_path(parent)
    card_document = dataset_card(card)
    if catalog:  # keys are checked against a catalog that exists and is one (a typo is not an empty catalog)
        check_catalog(catalog)
    keys = existing_keys(catalog, parent) if catalog else None
    with cluster(dask) as client, render.stages(progress_enabled()) as progress:
        report = check_manifests(
            given,
            base_dir,
            catalog_keys=keys,
            parent=parent,
            use_cache=not no_cache,
            workers=workers,
            progress=progress,
            cluster=client,
            card=card_document,
            deep=deep,
            max_array_bytes=max_array_size or MAX_ARRAY_BYTES,
        )
    if feedback is not None:
        feedback.write_text(feedback_message(report.findings, ", ".join(p.name for p in given)))
    n_ham, n_art = report.hamiltonian_rows, report.artifact_rows
    probe = report.probe

    def text() -> None:
        if report.findings.num_rows:
            render.findings(report.findings)
        render.console.print(
            f"{'[green]OK[/]' if report.ok else '[red]FAILED[/]'}: {report.errors} error(s), "
            f"{report.warnings} warning(s); {n_ham} Hamiltonians, {n_art} artifacts, "
            f"{probe.files if probe else 0} files ({probe.opened if probe else 0} opened, rest from cache) "
            f"in {report.seconds.get('total', 0):.2f}s"
        )
        if feedback:
            render.console.print(f"feedback for the provider written to {feedback}", markup=False)

    render.output().emit(
        {
            "ok": report.ok,
            "errors": report.errors,
            "warnings": report.warnings,
            "hamiltonians": n_ham,
            "artifacts": n_art,
            "files": probe.files if probe else 0,
            "files_opened": probe.opened if probe else 0,
            "seconds": report.seconds,
            "feedback": str(feedback) if feedback else None,
            "findings": report.findings,
        },
        text,
    )
    raise typer.Exit(0 if report.ok else 1)


def ingest(
    manifests: ManifestsArgument,
    base_dir: BaseDirOption,
    catalog: Annotated[str, typer.Option(help="SQLite file, sqlite:///... or postgresql://...; created if missing.")],
    parent: Annotated[str, typer.Option(help="Catalog path to register under (containers created when missing).")] = "",
    update_metadata: Annotated[
        bool, typer.Option("--update-metadata", help="Update Hamiltonians whose metadata differs.")
    ] = False,
    no_cache: NoCacheOption = False,
    dask: DaskOption = None,
    card: StoredCardOption = None,
    upload: Annotated[
        Path | None,
        typer.Option(
            "--upload",
            help="Copy the arrays' data into this folder (the catalog's writable storage, "
            "`broker serve --storage`) through Tiled's own app, for a server that cannot read the files: "
            "node by node and resumable, not one transaction.",
            show_default=False,
        ),
    ] = None,
    max_array_size: MaxArrayOption = None,
    as_json: JsonOption = False,
) -> None:
    """Bulk-register datasets straight into Tiled's catalog database (one transaction)."""
    from manifest_broker.cache import default_cache_dir
    from manifest_broker.catalog.keys import parent_path
    from manifest_broker.catalog.target import Target
    from manifest_broker.catalog.write import CatalogTarget

    given = pairs(manifests)
    input_dir(base_dir, "--base-dir")
    parent = parent_path(parent)
    catalog_target(catalog)
    template_dir = None if no_cache else default_cache_dir()
    target: Target
    if upload is not None:
        from manifest_broker.catalog.app import AppTarget

        output_dir(upload, "--upload")
        target = AppTarget(catalog, upload, update_metadata=update_metadata, template_dir=template_dir)
    else:
        target = CatalogTarget(catalog, update_metadata=update_metadata, template_dir=template_dir)
    write_and_report(
        given,
        base_dir,
        target,
        parent=parent,
        card=card,
        no_cache=no_cache,
        dask=dask,
        max_array_size=max_array_size,
    )


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
        raise BrokerError("give exactly one of --url (a running server) or --catalog (a catalog database)", exit_code=2)
    target = server(url) if url is not None else None
    if not dry_run and not yes:
        if not sys.stdin.isatty():
            raise BrokerError(
                f"refusing to delete {', '.join(paths)} without --yes (or try --dry-run first)", exit_code=2
            )
        typer.confirm(f"Delete {', '.join(paths)} and everything under them?", abort=True)
    if target is not None:
        result = delete_through_server(target.client(), paths, dry_run=dry_run)
    else:
        assert catalog is not None
        result = delete_in_catalog(locate(catalog), paths, dry_run=dry_run)

    def text() -> None:
        what = ", ".join(f"{n} {family} node(s)" for family, n in sorted(result.nodes.items())) or "no nodes"
        assets = f" and {result.assets} asset row(s)" if url is None else ""
        render.console.print(f"{'would delete' if dry_run else 'deleted'} {what}{assets}", markup=False)
        for parent, keys in result.locators_removed.items():
            render.console.print(
                f"  {'would remove' if dry_run else 'removed'} the Mode A locators of "
                f"{', '.join(keys)} from {parent or '/'}",
                markup=False,
            )

    render.output().emit({**result.__dict__, "total": result.total}, text)


class SqlFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


def sql(
    query: Annotated[str, typer.Argument(help="DuckDB SQL over hamiltonians, artifacts and locators.")],
    ham: Annotated[Path, typer.Option("--ham", help="Hamiltonian manifest.")],
    art: Annotated[Path, typer.Option("--art", help="Artifact manifest.")],
    fmt: Annotated[SqlFormat, typer.Option("--format", help="Output format.")] = SqlFormat.table,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File for --format parquet.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Query manifests with DuckDB: views hamiltonians, artifacts, locators."""
    from manifest_broker import queries
    from manifest_broker.catalog.manifest_sql import flat, manifest_connection, python_values

    if as_json and fmt is not SqlFormat.parquet:
        fmt = SqlFormat.json
    if fmt is SqlFormat.parquet and output is None:
        raise BrokerError("--format parquet needs -o FILE", exit_code=2)
    if output is not None:
        if fmt is not SqlFormat.parquet:
            raise BrokerError("-o FILE goes with --format parquet", exit_code=2)
        suffixed(output_file(output, "-o"), ".parquet", "-o")
    for path, option in ((ham, "--ham"), (art, "--art")):
        if not path.is_file():
            raise BrokerError(
                f"{option} {path}: {'is a directory' if path.is_dir() else 'manifest not found'}", where=path
            )
    con = manifest_connection(ham, art)
    result = queries.user_query(con, query)
    if fmt is SqlFormat.table:
        render.arrow_table(None, flat(con, result), limit=None)
    elif fmt is SqlFormat.csv:
        import pyarrow.csv as pacsv

        pacsv.write_csv(flat(con, result), sys.stdout.buffer)
    elif fmt is SqlFormat.json:
        render.print_json(python_values(con, result))
    else:
        import pyarrow.parquet as pq

        pq.write_table(result, output)
        render.output().emit(
            {"rows": result.num_rows, "output": str(output)},
            lambda: render.console.print(f"{result.num_rows} row(s) written to {output}", markup=False),
        )


def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its data, catalog and lakehouse.")] = Path(
        "broker-demo"
    ),
    n: Annotated[int, typer.Option("-n", min=1, help="Hamiltonians per layout.")] = 20,
) -> None:
    """Run every stage on embedded defaults and synthetic data, with a summary."""
    from manifest_broker.demo import run_demo

    output_dir(workdir, "--workdir")
    raise typer.Exit(run_demo(workdir, n))


def register_commands(app: typer.Typer) -> None:
    app.command()(check)
    app.command()(ingest)
    app.command()(delete)
    app.command()(sql)
    app.command()(demo)
