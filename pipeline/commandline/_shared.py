"""Options and checks the command groups share.

Every path a command will write is checked before anything happens (a folder that
is missing or read-only, a directory where a file goes), so that a mistake costs
nothing; every path it reads is checked with the option's name in the message.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from manifest_broker import render
from manifest_broker.errors import BrokerError

if TYPE_CHECKING:
    from distributed import Client

    from manifest_broker.catalog.client import Server
    from manifest_broker.catalog.manifests import ManifestPair
    from manifest_broker.catalog.target import Target

JsonOption = Annotated[
    bool, typer.Option("--json", callback=render.use_json, help="Print one JSON document (errors too) instead of text.")
]
ManifestsArgument = Annotated[
    list[Path],
    typer.Argument(
        help="HAMILTONIANS ARTIFACTS [HAMILTONIANS ARTIFACTS ...] (Parquet manifests), or a folder holding such pairs."
    ),
]
BaseDirOption = Annotated[Path, typer.Option("--base-dir", help="Data directory the `file` paths are relative to.")]
DaskOption = Annotated[
    str | None,
    typer.Option(
        "--dask",
        envvar="BROKER_DASK_SCHEDULER",
        help="A Dask scheduler (tcp://host:8786; or $BROKER_DASK_SCHEDULER): its workers do the work.",
        show_default=False,
    ),
]
CardOption = Annotated[
    Path | None,
    typer.Option(
        "--card",
        help="A dataset card (written by `broker explore --card`): the manifests are held to what it declares.",
        show_default=False,
    ),
]

StoredCardOption = Annotated[
    Path | None,
    typer.Option(
        "--card",
        help="A dataset card: held to as in check, and stored as the --parent container's metadata (dataset_card).",
        show_default=False,
    ),
]
NoCacheOption = Annotated[bool, typer.Option("--no-cache", help="Open every file again.")]


def _byte_size(text: str | None) -> int | None:
    """``--max-array-size`` as bytes (``16GiB``, ``500MB``, ``1000``), parsed by
    pydantic's ``ByteSize`` (Tiled's own settings use it); a usage error otherwise."""
    if text is None:
        return None
    from pydantic import ByteSize, TypeAdapter, ValidationError

    try:
        size = int(TypeAdapter(ByteSize).validate_python(text))
    except ValidationError:
        raise typer.BadParameter(f"{text!r} is not a size (e.g. 16GiB, 500MB, 1000)") from None
    if size <= 0:
        raise typer.BadParameter("must be more than 0 bytes")
    return size


MaxArrayOption = Annotated[
    int | None,
    typer.Option(
        "--max-array-size",
        parser=_byte_size,
        metavar="SIZE",
        help="Largest array a node may serve, by its logical size (e.g. 64GiB; default 16GiB): a sparse or "
        "compressed HDF5 file can declare far more than it stores.",
        show_default=False,
    ),
]


UrlOption = Annotated[
    str, typer.Option("--url", help="A running Tiled server (its API key comes from $TILED_API_KEY or a prompt).")
]


def pairs(manifests: list[Path]) -> list[ManifestPair]:
    """HAM ART [HAM ART ...] into manifest pairs: a path that does not exist is named
    first (exit 1), an odd count is a usage error (exit 2). A directory stands for
    the ``<name>_hamiltonians.parquet`` / ``<name>_artifacts.parquet`` pairs in it
    (what ``broker generate`` writes)."""
    from manifest_broker.catalog.manifests import ManifestError, pairs_from_paths

    expanded: list[Path] = []
    for path in manifests:
        if not path.exists():
            raise BrokerError(f"{path}: manifest not found", where=path)
        if path.is_dir():
            found = []
            for ham in sorted(path.glob("*_hamiltonians.parquet")):
                art = ham.with_name(ham.name.removesuffix("_hamiltonians.parquet") + "_artifacts.parquet")
                if art.is_file():
                    found += [ham, art]
            if not found:
                raise BrokerError(
                    f"{path}: a directory without a <name>_hamiltonians.parquet and "
                    "<name>_artifacts.parquet pair; give the two manifests",
                    where=path,
                )
            expanded += found
        else:
            expanded.append(path)
    try:
        return pairs_from_paths(expanded)
    except ManifestError as exc:
        raise BrokerError(str(exc), where=exc.where, exit_code=2) from exc


def input_dir(path: Path, option: str) -> Path:
    """A directory the command reads, or a one-line error naming the option."""
    if not path.is_dir():
        what = "is a file, not a directory" if path.exists() else "does not exist"
        raise BrokerError(f"{option} {path}: {what}", where=path)
    return path


def output_file(path: Path, option: str) -> Path:
    """A file the command will write: its folder must exist and be writable, and the
    path must not be a directory. Checked before any work, so nothing is lost."""
    if path.is_dir():
        raise BrokerError(f"{option} {path}: is a directory; give a file name", where=path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise BrokerError(f"{option} {path}: folder {folder} does not exist", where=path)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BrokerError(f"{option} {path}: folder {folder} is not writable", where=path)
    if path.exists() and not os.access(path, os.W_OK):
        raise BrokerError(f"{option} {path}: the file is not writable", where=path)
    return path


def suffixed(path: Path, suffix: str, option: str) -> Path:
    """``path`` when its suffix names the format the command writes (``.parquet``...),
    else a usage error: ``-o loc.csv`` holding Parquet would mislead every reader."""
    if path.suffix.lower() != suffix:
        raise BrokerError(
            f"{option} {path}: the file is written as {suffix.lstrip('.').capitalize()}; "
            f"give a name ending in {suffix}",
            where=path,
            exit_code=2,
        )
    return path


def new_file(path: Path, option: str, there: str) -> Path:
    """A file the command will create and must not replace (it may hold someone's
    edits): checked as :func:`output_file`, and refused (exit 2) when it exists."""
    output_file(path, option)
    if path.exists():
        raise BrokerError(f"{path}: {there}; move it away or choose another path", where=path, exit_code=2)
    return path


def catalog_target(catalog: str) -> str:
    """A catalog ``ingest`` may write: an existing one, or a new SQLite file whose
    folder exists and is writable (a PostgreSQL URI is checked by connecting)."""
    from manifest_broker.catalog.database import locate

    path = locate(catalog).sqlite_path
    if path is not None:
        if path.is_dir():
            raise BrokerError(f"--catalog {path}: is a directory; give a catalog file", where=path)
        if not path.exists():
            output_file(path, "--catalog")
        elif path.stat().st_size == 0:  # a catalog is made only where no file is: never out of someone's file
            raise BrokerError(
                f"--catalog {path}: an empty file, not a catalog; give a catalog, or a path where "
                "no file exists to create one",
                where=path,
            )
    return catalog


def output_dir(path: Path, option: str) -> Path:
    """A directory the command will create or fill: an existing one must be a
    writable directory; a new one needs a writable existing ancestor."""
    if path.exists():
        if not path.is_dir():
            raise BrokerError(f"{option} {path}: is a file, not a directory", where=path)
        if not os.access(path, os.W_OK | os.X_OK):
            raise BrokerError(f"{option} {path}: directory is not writable", where=path)
        return path
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise BrokerError(f"{option} {path}: cannot be created ({ancestor} is not a writable directory)", where=path)
    return path


def server(url: str) -> Server:
    """A server that answered, with its key: ``$TILED_API_KEY``, or asked for on a
    terminal (hidden input) when the server wants one."""
    from manifest_broker.catalog.client import connect

    def ask(question: str) -> str:
        return str(typer.prompt(question, hide_input=True, default="", show_default=False))

    return connect(url, prompt=ask if sys.stdin.isatty() and not render.output().json else None)


@contextmanager
def cluster(address: str | None) -> Iterator[Client | None]:
    """A client of the Dask scheduler at ``address`` for the block (``None``: work
    locally); an unreachable scheduler is one error before any work."""
    if not address:
        yield None
        return
    from manifest_broker.cluster import connect

    client = connect(address)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def prints_to_stderr(enabled: bool = True) -> Iterator[None]:
    """What the block (and any process it starts) prints goes to stderr, so that
    stdout carries only the command's own answer (``--json``)."""
    if not enabled:
        yield
        return
    import contextlib

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def progress_enabled() -> bool:
    """Progress bars: on a terminal, never under ``--json``."""
    return not render.output().json


def dataset_card(path: Path | None) -> dict[str, Any] | None:
    """The dataset card given with ``--card``, read and validated before any work."""
    if path is None:
        return None
    from manifest_broker.provider.card import read

    return read(path)


def environment_warnings(findings: Any) -> list[str]:
    """Warnings about the broker's own surroundings (not the provider's data)."""
    import pyarrow.compute as pc

    return [str(m) for m in findings.filter(pc.equal(findings["rule"], "probe_cache_unwritten"))["message"].to_pylist()]


def write_and_report(
    given: list[ManifestPair],
    base_dir: Path,
    target: Target,
    *,
    parent: str,
    card: Path | None = None,
    no_cache: bool = False,
    dask: str | None = None,
    max_array_size: int | None = None,
) -> None:
    """Run the catalog runner (:func:`manifest_broker.catalog.ingest.ingest`) into
    ``target`` and say what it did: one sentence for every destination, one JSON
    answer (the :class:`~manifest_broker.catalog.target.WriteResult` fields, with
    ``created_nodes``, ``missing``, ``created_catalog``, ``indexes``, ``warnings``
    and ``timings``).

    Raises:
        BrokerError: when nodes are missing at the end (exit 1; 130 after Ctrl-C),
            with the answer as its details: a re-run finishes the job.
    """
    from manifest_broker.catalog.contract import MAX_ARRAY_BYTES
    from manifest_broker.catalog.ingest import card_needs_parent, ingest

    card_needs_parent(card, parent)  # before the card is read
    card_document = dataset_card(card)
    with cluster(dask) as client, render.stages(progress_enabled()) as progress:
        run = ingest(
            given,
            base_dir,
            target,
            parent=parent,
            use_cache=not no_cache,
            notify=render.warn,
            progress=progress,
            cluster=client,
            card=card_document,
            max_array_bytes=max_array_size or MAX_ARRAY_BYTES,
        )
    result = run.result
    warnings = environment_warnings(run.report.findings)
    for warning in warnings:
        render.warn(warning)
    answer = {
        "created_catalog": run.created_catalog,
        **result.__dict__,
        "created_nodes": result.created_nodes,
        "missing": run.missing,
        "warnings": warnings,
        "timings": run.seconds,
        "indexes": run.indexes,
    }
    if result.failed or result.interrupted or run.missing:
        first = f" (first: {result.failed[0][0]}: {result.failed[0][1]})" if result.failed else ""
        raise BrokerError(
            f"{len(result.failed)} node(s) failed{first}"
            + (" and the run was interrupted" if result.interrupted else "")
            + f"; {run.missing} of {run.planned_nodes} planned node(s) are not in {target.destination}: re-run to "
            "finish (what was written is complete)",
            where=target.where(),
            details=answer,
            exit_code=130 if result.interrupted else 1,  # Ctrl-C: 130, as promised
        )

    def text() -> None:
        c = render.console
        if result.created_nodes == 0 and not result.updated_metadata and not result.parent_metadata_updated:
            c.print(
                f"nothing to add: {result.existing_hamiltonians} Hamiltonians and {result.existing_arrays} "
                f"artifacts were already there, in {render.escape(target.destination)}"
            )
        else:
            rate = result.created_nodes / result.seconds if result.seconds else 0.0
            c.print(
                f"created {result.created_hamiltonians} Hamiltonians and {result.created_arrays} artifacts"
                + (f" (data uploaded into {target.uploaded_into})" if target.uploaded_into else "")
                + (f" (+{result.created_containers} parent containers)" if result.created_containers else "")
                + f"; {result.existing_hamiltonians} Hamiltonians and {result.existing_arrays} artifacts were already there"
                + f"; write {result.seconds:.2f}s ({rate:,.0f} nodes/s"
                + (f", {target.workers} workers)" if target.workers else ")")
            )
        if target.workers and 0 < result.lowest_concurrency < target.workers:
            c.print(
                f"  the server was overloaded (5xx or 429 answers): requests in flight lowered to "
                f"{result.lowest_concurrency} of {target.workers} at worst, and raised again as it recovered"
            )
        for key in result.updated_metadata[:20]:
            c.print(f"  updated metadata of {render.escape(key)} (previous version kept as a revision)")
        if len(result.updated_metadata) > 20:
            c.print(f"  ... and {len(result.updated_metadata) - 20} more")
        if result.parent_metadata_updated:
            c.print(f"  stored the dataset card in {render.escape(parent.strip('/'))}'s metadata (dataset_card)")
        if run.indexes:
            c.print(f"  metadata indexes (broker index list): {render.escape(', '.join(run.indexes))}")
        pending = [k for k in result.differing_metadata if k not in result.updated_metadata]
        if pending:
            c.print(
                f"[yellow]{len(pending)} Hamiltonian(s) differ from {render.escape(target.destination)}[/] "
                f"(e.g. {render.escape(', '.join(pending[:5]))}); "
                + (
                    "re-run with --update-metadata to update them"
                    if target.updates_metadata
                    else "they were left as they are"
                )
            )

    render.output().emit(answer, text)
