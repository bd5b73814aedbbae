"""`broker ingest`: check the contract, plan the nodes, write them in one transaction."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from manifest_broker.cache import default_cache_dir
from manifest_broker.catalog.contract import MAX_ARRAY_BYTES, ContractReport, check_manifests
from manifest_broker.catalog.database import CatalogLocation, existing_keys, locate
from manifest_broker.catalog.locks import writer_lock
from manifest_broker.catalog.manifests import HAMILTONIAN_COLUMNS, ManifestPair, metadata_columns
from manifest_broker.catalog.plan import PLAN_CHUNK, NodePlan, plan_chunks, plan_nodes
from manifest_broker.catalog.write import IngestResult, init_catalog, write_plan
from manifest_broker.progress import Progress

if TYPE_CHECKING:
    from distributed import Client


@dataclass
class IngestRun:
    report: ContractReport
    plan: NodePlan | None = None
    result: IngestResult | None = None
    created_catalog: bool = False
    indexes: list[str] = field(default_factory=list)  # metadata keys with a broker index after the run
    seconds: dict[str, float] = field(default_factory=dict)


def ingest(
    pairs: list[ManifestPair],
    base_dir: Path,
    catalog: str,
    *,
    parent: str = "",
    update_metadata: bool = False,
    use_cache: bool = True,
    notify: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    cluster: Client | None = None,
    card: dict[str, Any] | None = None,
    upload: Path | None = None,
    indexes: bool = True,
    max_array_bytes: int = MAX_ARRAY_BYTES,
) -> IngestRun:
    """Check, plan and write. Nothing is written when the contract has an error.

    Args:
        notify: Told once when another broker is writing to the catalog and this
            run waits for it.
        progress: Told ``(stage, done, total)`` while files are probed, the plan
            is made and rows are written.
        cluster: A Dask client whose workers probe the files (the plan and the
            one-transaction write stay here).
        card: A dataset card: the manifests are held to it, and it is stored as the
            parent container's ``dataset_card`` metadata in the same transaction.
        upload: Copy every array's data into this folder, the catalog's writable
            storage, through Tiled's own app (:mod:`manifest_broker.catalog.upload`):
            for a server that cannot read the provider's files. Node by node and
            resumable, not one transaction.
        indexes: On PostgreSQL, create (when missing) the metadata indexes of the
            Hamiltonians' numeric parameters after the write
            (:mod:`manifest_broker.catalog.index`); SQLite gets none.
        max_array_bytes: Largest logical size of a served array (the contract's
            ``dataset_too_large``).

    Raises:
        ContractFailed: when the manifests break the contract (nothing is written).
        IngestError, CatalogError: with the catalog left unchanged.
    """
    timings: dict[str, float] = {}
    cache = default_cache_dir() if use_cache else None  # probes, the catalog template
    t0 = time.perf_counter()
    # A catalog that is not one is said as such (not as a contract finding), before
    # any file is probed; its keys are checked in the contract (key_in_catalog).
    keys = existing_keys(catalog, parent)
    report = check_manifests(
        pairs,
        base_dir,
        catalog_keys=keys,
        parent=parent,
        cache_dir=cache,
        use_cache=use_cache,
        progress=progress,
        cluster=cluster,
        card=card,
        max_array_bytes=max_array_bytes,
    )
    timings["check"] = time.perf_counter() - t0
    if not report.ok:
        raise report.failure("; nothing was written")
    run = IngestRun(report, seconds=timings)
    t0 = time.perf_counter()
    if progress:
        progress("planning", 0, 1)
    checked = report.checked()
    # Up to PLAN_CHUNK Hamiltonians, one plan (kept in the run for verify); above,
    # the plan is made chunk by chunk while the write goes on, in its one
    # transaction, so that memory follows a chunk and not the dataset.
    chunked = sum(t.num_rows for t in checked.hamiltonians.values()) > PLAN_CHUNK and upload is None
    plans: NodePlan | Iterator[NodePlan]
    if chunked:
        plans = plan_chunks(checked, PLAN_CHUNK)
    else:
        run.plan = plans = plan_nodes(checked)
    if progress:
        progress("planning", 1, 1)
    timings["plan"] = time.perf_counter() - t0
    location = locate(catalog)
    t0 = time.perf_counter()
    # One writer at a time, from initialisation to commit: a second broker waits, then
    # adds only what the first one left missing.
    with writer_lock(location, notify=notify):
        timings["wait"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        run.created_catalog = init_catalog(location, template_dir=cache)
        timings["init"] = time.perf_counter() - t0
        parent_metadata = None if card is None else {"dataset_card": card}
        if upload is not None:
            from manifest_broker.catalog.upload import upload_plan

            assert run.plan is not None
            run.result = upload_plan(
                location, run.plan, base_dir, upload, parent=parent, progress=progress, parent_metadata=parent_metadata
            )
        else:
            run.result = write_plan(
                location,
                plans,
                parent=parent,
                update_metadata=update_metadata,
                progress=progress,
                parent_metadata=parent_metadata,
            )
    timings["write"] = run.result.seconds
    if indexes and location.dialect == "postgresql":
        t0 = time.perf_counter()
        run.indexes = _parameter_indexes(location, report)
        timings["indexes"] = time.perf_counter() - t0
    return run


def _parameter_indexes(location: CatalogLocation, report: ContractReport) -> list[str]:
    """Index the Hamiltonians' numeric parameters (after the commit, each index in
    a transaction of its own: the write does not hold its lock while they build)."""
    from manifest_broker.catalog.index import create_indexes, parameter_keys

    columns = {
        name: str(table.schema.field(name).type)
        for table in report.hamiltonians.values()
        for name in metadata_columns(table, HAMILTONIAN_COLUMNS)
    }
    keys, _left_out = parameter_keys(columns.items())
    return [i.key for i in create_indexes(location, keys) if i.key is not None]
