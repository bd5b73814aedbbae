"""A running Tiled server: serve a catalog, register into it, verify it, and find
Mode A locators in it. The API key comes from ``$TILED_API_KEY`` or a prompt,
never from an option."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from manifest_broker import render
from manifest_broker.commandline._shared import (
    BaseDirOption,
    DaskOption,
    JsonOption,
    ManifestsArgument,
    MaxArrayOption,
    NoCacheOption,
    StoredCardOption,
    UrlOption,
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


def serve(
    catalog: Annotated[str, typer.Option(help="The catalog the broker wrote.")],
    base_dir: Annotated[Path, typer.Option("--base-dir", help="Data directory, served as readable storage.")],
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    workers: Annotated[
        int,
        typer.Option(
            min=1, max=256, help="Server processes (uvicorn workers running Tiled's app); >1 wants PostgreSQL."
        ),
    ] = 1,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Open a SQLite catalog read-only (what several SQLite workers need).")
    ] = False,
    storage: Annotated[
        Path | None,
        typer.Option(
            "--storage",
            help="Writable storage: where `register --upload` writes arrays (created if missing).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a stock `tiled serve catalog CATALOG -r BASE_DIR` (no custom adapter), or Tiled's own app in
    several uvicorn processes with --workers N.

    The API key comes from $TILED_API_KEY and reaches the server through its
    environment, never its command line (which every user of the machine can
    read), and is masked in what the server prints; without it, Tiled makes a
    random key and prints it. Several processes writing one SQLite file fail with
    "database is locked": on SQLite, --workers N > 1 needs --read-only.
    """
    import os

    from manifest_broker.catalog.database import check_catalog, locate
    from manifest_broker.catalog.serve import check_api_key, launch, run_redacted

    input_dir(base_dir, "--base-dir")
    check_catalog(catalog)
    key = check_api_key(os.environ.get("TILED_API_KEY"))
    if storage is not None:
        if read_only:
            raise BrokerError(
                "--storage with --read-only: a read-only catalog cannot record uploaded arrays", exit_code=2
            )
        output_dir(storage, "--storage").mkdir(parents=True, exist_ok=True)
    if workers > 1 and locate(catalog).dialect == "sqlite" and not read_only:
        raise BrokerError(
            f"--workers {workers} on a SQLite catalog: several server processes writing one SQLite "
            "file fail with 'database is locked'; serve it --read-only, or use PostgreSQL",
            exit_code=2,
        )
    started = launch(
        catalog, base_dir, port=port, host=host, workers=workers, read_only=read_only, storage=storage, api_key=key
    )
    try:
        shown = " ".join(started.command)  # no secret: a URI with a password goes through the environment
        render.errors.print(
            f"running: {shown}"
            + (
                f" (catalog {locate(catalog).redacted()}, configured through the environment)" if started.folder else ""
            ),
            markup=False,
        )
        code = run_redacted(started.command, started.env, started.secrets)
    finally:
        started.close()
    raise typer.Exit(code)


WorkersOption = Annotated[
    int,
    typer.Option(
        min=1,
        max=64,
        help="Most requests in flight (one connection pool each); fewer while the server answers 5xx or 429.",
    ),
]


def register(
    manifests: ManifestsArgument,
    base_dir: BaseDirOption,
    url: UrlOption,
    parent: Annotated[str, typer.Option(help="Catalog path to register under (containers created when missing).")] = "",
    workers: WorkersOption = 8,
    upload: Annotated[
        bool,
        typer.Option(
            "--upload",
            help="Write each array's data into the server's writable storage (for a server "
            "that cannot read the files; `broker serve --storage DIR`). Resumable: a re-run uploads what a "
            "cut-short run left unfinished, once.",
        ),
    ] = False,
    card: StoredCardOption = None,
    no_cache: NoCacheOption = False,
    dask: DaskOption = None,
    max_array_size: MaxArrayOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register incrementally through a running server (the guide's option B).

    The contract is checked first, against the keys the server already has. Existing Hamiltonians (same huid) are kept and their missing artifacts added; transient server errors are retried by tiled.client. Exit 1 if any node was not registered (a re-run finishes the job). With --upload the arrays' data go into the server's own storage (the metadata keeps the Mode A locators of the original files).
    """
    from manifest_broker.catalog.keys import parent_path
    from manifest_broker.catalog.register import ServerTarget

    given = pairs(manifests)
    input_dir(base_dir, "--base-dir")
    parent = parent_path(parent)
    target = ServerTarget(server(url), workers=workers, upload=upload)
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


def verify(
    manifests: ManifestsArgument,
    base_dir: BaseDirOption,
    url: UrlOption,
    parent: Annotated[str, typer.Option(help="Catalog path the datasets were registered under.")] = "",
    sample: Annotated[int, typer.Option(min=0, help="Random arrays to compare element by element.")] = 10,
    max_array_size: MaxArrayOption = None,
    as_json: JsonOption = False,
) -> None:
    """The guide's Step 7: everything served, arrays equal to the files, searches right. Exit 1 on a mismatch."""
    from manifest_broker.catalog.contract import MAX_ARRAY_BYTES
    from manifest_broker.catalog.keys import parent_path
    from manifest_broker.catalog.verify import verify_manifests

    given = pairs(manifests)
    input_dir(base_dir, "--base-dir")
    parent = parent_path(parent)
    target = server(url)
    with render.stages(progress_enabled()) as progress:
        run = verify_manifests(
            given,
            base_dir,
            target,
            parent=parent,
            sample=sample,
            progress=progress,
            max_array_bytes=max_array_size or MAX_ARRAY_BYTES,
        )
    result = run.result

    def text() -> None:
        for problem in result.problems[:50]:
            render.console.print(render.labelled("red", "mismatch", problem))
        if len(result.problems) > 50:
            render.console.print(f"... {len(result.problems) - 50} more problem(s) (use --json for all)")
        for q in result.queries:
            render.console.print(f"search {q['query']}: served {q['served']}, manifest {q['expected']}", markup=False)
        render.console.print(
            f"{'[green]OK[/]' if result.ok else '[red]FAILED[/]'}: {result.hamiltonians} Hamiltonians, "
            f"{result.artifacts} artifacts, {result.assets_checked} served assets re-checked inside "
            f"{render.escape(str(base_dir))}"
            + (f", {result.uploaded} served from the server's own storage" if result.uploaded else "")
            + f", {result.arrays_compared} arrays compared, {len(result.problems)} problem(s)"
        )

    render.output().emit(result.__dict__ | {"ok": result.ok}, text)
    raise typer.Exit(0 if result.ok else 1)


def locate(
    queries: Annotated[
        list[str] | None,
        typer.Argument(
            help="Metadata filters, ANDed: 'J1>0.5' 'lattice==square' (== != > >= < <=).", show_default=False
        ),
    ] = None,
    url: UrlOption = "",
    catalog: Annotated[
        str,
        typer.Option(
            "--catalog",
            help="Search a catalog database directly (SQLite file or postgresql:// URL) instead of a server.",
        ),
    ] = "",
    parent: Annotated[str, typer.Option(help="Catalog path the Hamiltonians are under.")] = "",
    base_dir: Annotated[
        Path | None,
        typer.Option(
            "--base-dir",
            help="The data directory: recorded with the locators (-o), load_batches then reads only inside it.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the locators as Parquet.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Mode A: search Hamiltonians by metadata and list where each artifact lives (file, dataset, index), with the Hamiltonian's parameters.

    Only metadata travels; load the arrays with manifest_broker.catalog.modea.load_batches (h5py, worker processes).
    """
    from manifest_broker.catalog.keys import parent_path
    from manifest_broker.catalog.modea import LocateError, locate_in_catalog, parse_query, with_base_dir
    from manifest_broker.catalog.modea import locate as run_locate

    if bool(url) == bool(catalog):
        raise BrokerError("give --url (a Tiled server) or --catalog (a catalog database), one of them", exit_code=2)
    if output is not None:
        suffixed(output_file(output, "-o"), ".parquet", "-o")
    parent = parent_path(parent)  # a usage error before the server or catalog is asked anything
    if base_dir is not None:
        base_dir = input_dir(base_dir, "--base-dir")
    try:
        for query in queries or []:
            parse_query(query)  # a mistyped filter is said before the server is asked anything
    except LocateError as exc:
        raise BrokerError(str(exc), exit_code=2) from exc
    if catalog:
        table = locate_in_catalog(catalog, queries or [], parent)
    else:
        import httpx

        root = server(url).client()
        try:
            node = root[parent] if parent.strip("/") else root
        except KeyError as exc:
            raise BrokerError(f"--parent {parent}: not on the server", where=parent) from exc
        if node.structure_family != "container":
            raise BrokerError(f"--parent {parent}: not a container on the server (an array)", where=parent)
        try:
            table = run_locate(node, queries or [])
        except httpx.HTTPStatusError as exc:
            raise BrokerError(
                f"the server answered {exc.response.status_code} to the search {' '.join(queries or [])!r} "
                "(Tiled cannot search this value or key; tiled.client gets the same answer)",
                where=url,
            ) from exc
    if base_dir is not None:
        table = with_base_dir(table, base_dir)
    if output is not None:
        import pyarrow.parquet as pq

        pq.write_table(table, output)
    import pyarrow.compute as pc

    hamiltonians = pc.count_distinct(table["key"]).as_py()

    def text() -> None:
        if output is None:
            render.arrow_table(None, table)
        render.console.print(
            f"{hamiltonians} Hamiltonian(s), {table.num_rows} artifact(s)" + (f" -> {output}" if output else ""),
            markup=False,
        )

    document = {"hamiltonians": hamiltonians, "artifacts": table.num_rows, "output": str(output) if output else None}
    render.output().emit(document | ({} if output else {"rows": table.to_pylist()}), text)


def register_commands(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(register)
    app.command()(verify)
    app.command()(locate)
