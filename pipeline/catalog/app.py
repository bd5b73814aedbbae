"""Tiled's own app in this process, on the catalog: ``broker ingest --upload DIR``.

The bulk writer records where files are; it cannot write array data. So for a
server that will not be able to read the provider's files, the nodes go through
Tiled's app run here (the catalog, ``DIR`` as its writable storage, the data
directory as readable storage) exactly as ``broker register --upload`` sends them
through a running server: each array written with Tiled's client in blocks, marked
until its last block is in, so that a re-run after a kill deletes what was cut
short and finishes the job once. It is therefore not one transaction: a failed run
leaves complete Hamiltonians and arrays (never a half-written one served as
complete), and a re-run completes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from manifest_broker.catalog.database import CatalogLocation
from manifest_broker.catalog.locks import writer_lock
from manifest_broker.catalog.plan import NodePlan
from manifest_broker.catalog.register import register_plan, store_parent_metadata
from manifest_broker.catalog.target import Target, WriteResult
from manifest_broker.progress import Progress

if TYPE_CHECKING:
    import pyarrow as pa

    from manifest_broker.catalog.contract import ContractReport


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
        location.tiled_uri,
        writable_storage=[str(storage.resolve())],
        readable_storage=[str(Path(base_dir).resolve())],
    )
    with warnings.catch_warnings():  # Tiled's in-process client is Starlette's test client, which says so
        warnings.filterwarnings("ignore", message=".*starlette.testclient")
        context = Context.from_app(build_app(tree))
    try:
        client = from_context(context)
        yield lambda: client
    finally:
        context.close()


class AppTarget(Target):
    """The catalog through Tiled's app in this process, every array's data uploaded
    into ``storage`` (the catalog's writable storage, ``broker serve --storage``).

    The catalog is initialised when missing and the writer lock held for the whole
    write, as the bulk writer does; the keys come from the catalog itself.
    """

    def __init__(
        self,
        catalog: str,
        storage: Path,
        *,
        update_metadata: bool = False,
        indexes: bool = True,
        template_dir: Path | None = None,
    ) -> None:
        from manifest_broker.catalog.write import CatalogTarget

        self._catalog = CatalogTarget(catalog, indexes=indexes, template_dir=template_dir)
        self.location = self._catalog.location
        self.storage = storage
        self.uploaded_into = str(storage)
        self.destination = (
            f"--upload (the catalog {self.location.sqlite_path or self.location.redacted()} through Tiled's app)"
        )
        if update_metadata:
            self.refuse("--update-metadata", "uploaded arrays keep what the catalog has; update without --upload")

    def where(self) -> str | None:
        return self.location.redacted()

    def existing_keys(self, parent: str) -> pa.Table:
        return self._catalog.existing_keys(parent)

    def write(
        self,
        plan: NodePlan | Iterator[NodePlan],
        *,
        base_dir: Path,
        parent: str,
        parent_metadata: dict[str, Any] | None,
        progress: Progress | None,
        notify: Any = None,
    ) -> WriteResult:
        import time

        assert isinstance(plan, NodePlan), "the in-process app takes the plan whole"
        started = time.perf_counter()
        with writer_lock(self.location, notify=notify):
            self._catalog.initialise()
            with local_app(self.location, base_dir, self.storage) as connect:
                # One in-process app: its requests run on one event loop, so one worker.
                result = register_plan(
                    connect, plan, parent=parent, workers=1, progress=progress, upload=Path(base_dir)
                )
                if parent_metadata and not result.failed and not result.interrupted:
                    result.parent_metadata_updated = store_parent_metadata(connect(), parent, parent_metadata)
        result.seconds = time.perf_counter() - started
        return result

    def finish(self, report: ContractReport) -> list[str]:
        return self._catalog.finish(report)

    @property
    def created(self) -> bool:
        return self._catalog.created
