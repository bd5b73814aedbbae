"""`broker ingest --upload DIR`: the arrays' data copied into the catalog's own
writable storage, for a server that will not be able to read the provider's files.

The bulk writer records where files are; it cannot write array data. So this path
runs Tiled's own app in this process (the catalog, ``DIR`` as its writable storage,
the data directory as readable storage) and registers through it exactly as
``broker register --upload`` does through a running server: each array written
with Tiled's client in blocks, marked until its last block is in, so that a re-run
after a kill deletes what was cut short and finishes the job once. It is therefore
not one transaction: a failed run leaves complete Hamiltonians and arrays (never a
half-written one served as complete), and a re-run completes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from manifest_broker.catalog.database import CatalogLocation
from manifest_broker.catalog.plan import NodePlan
from manifest_broker.catalog.register import RegisterError, open_parent, register_plan
from manifest_broker.catalog.write import IngestError, IngestResult
from manifest_broker.progress import Progress


@contextmanager
def local_app(location: CatalogLocation, base_dir: Path, storage: Path) -> Iterator[Callable[[], Any]]:
    """Tiled's app on the catalog, in this process, and a function giving its client
    (``tiled.client.Context.from_app``: requests go to the app without a socket)."""
    import logging
    import warnings

    from tiled.catalog import from_uri
    from tiled.client import from_context
    from tiled.client.context import Context
    from tiled.server.app import build_app

    logging.getLogger("tiled.server.app").setLevel(logging.WARNING)  # its start-up banner is not ours to print
    storage.mkdir(parents=True, exist_ok=True)
    tree = from_uri(
        location.tiled_uri, writable_storage=[str(storage.resolve())], readable_storage=[str(Path(base_dir).resolve())]
    )
    with warnings.catch_warnings():  # Tiled's in-process client is Starlette's test client, which says so
        warnings.filterwarnings("ignore", message=".*starlette.testclient")
        context = Context.from_app(build_app(tree))
    try:
        client = from_context(context)
        yield lambda: client
    finally:
        context.close()


def upload_plan(
    location: CatalogLocation,
    plan: NodePlan,
    base_dir: Path,
    storage: Path,
    *,
    parent: str = "",
    progress: Progress | None = None,
    parent_metadata: dict[str, Any] | None = None,
) -> IngestResult:
    """Register ``plan`` with every array's data uploaded into ``storage``.

    Raises:
        IngestError: when nodes could not be written (what was written is complete;
            a re-run adds the rest).
    """
    import time

    started = time.perf_counter()
    with local_app(location, base_dir, storage) as connect:
        try:
            # One in-process app: its requests run on one event loop, so one worker.
            result = register_plan(connect, plan, parent=parent, workers=1, progress=progress, upload=Path(base_dir))
        except RegisterError as exc:
            raise IngestError(str(exc)) from exc
        out = IngestResult(
            created_containers=result.created_containers,
            created_hamiltonians=result.created_hamiltonians,
            created_arrays=result.created_arrays,
            existing_hamiltonians=result.existing_hamiltonians,
            existing_arrays=result.existing_arrays,
            differing_metadata=result.differing_metadata,
        )
        if result.failed:
            where, why = result.failed[0]
            raise IngestError(
                f"{len(result.failed)} node(s) not uploaded (first: {where}: {why}); what was uploaded "
                "is complete, re-run to add the rest"
            )
        if parent_metadata:
            node = open_parent(connect(), parent, create=False)
            current = dict(node.metadata)
            wanted = {**current, **parent_metadata}
            if wanted != current:
                node.replace_metadata(metadata=wanted)  # the old document kept as a revision
                out.parent_metadata_updated = True
    out.seconds = time.perf_counter() - started
    return out
