"""The one catalog runner: check the contract, plan the nodes, hand them to a destination.

``broker ingest`` (the catalog database, or Tiled's app in process with ``--upload``)
and ``broker register`` (a running server) are this runner with another
:class:`~manifest_broker.catalog.target.Target`; ``broker verify`` reuses its check
and plan (:func:`checked_plan`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from manifest_broker.cache import default_cache_dir
from manifest_broker.catalog.contract import MAX_ARRAY_BYTES, ContractReport, check_manifests
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.plan import PLAN_CHUNK, NodePlan, plan_chunks, plan_nodes
from manifest_broker.catalog.target import Target, WriteResult
from manifest_broker.errors import BrokerError
from manifest_broker.progress import Progress

if TYPE_CHECKING:
    from distributed import Client


@dataclass
class Run:
    """What one run did: the check, the plan, and the write at its destination."""

    report: ContractReport
    """The contract's findings over the manifests (the run stops on an error)."""
    target: Target
    """Where the nodes went."""
    result: WriteResult
    """What the write did."""
    planned_nodes: int
    """Hamiltonians and arrays the manifests describe."""
    plan: NodePlan | None = None
    """The whole plan, when it was made whole (not chunk by chunk)."""
    indexes: list[str] = field(default_factory=list)
    """Metadata keys with a broker index after the run (PostgreSQL catalogs)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each stage: check, plan, write, and indexes when built."""

    @property
    def created_catalog(self) -> bool:
        """This run created the catalog."""
        return self.target.created

    @property
    def missing(self) -> int:
        """Planned nodes that are not at the destination after this run."""
        r = self.result
        return max(0, self.planned_nodes - r.created_hamiltonians - r.created_arrays - r.skipped)


def card_needs_parent(card: object | None, parent: str) -> None:
    """A dataset card is stored in the dataset's parent container, so it needs one.

    Raises:
        BrokerError: (a usage error) when there is a card and no parent.
    """
    if card is not None and not parent.strip("/"):
        raise BrokerError("--card: the card is stored in the dataset's parent container; give --parent", exit_code=2)


def check_contract(
    pairs: list[ManifestPair],
    base_dir: Path,
    *,
    catalog_keys: pa.Table | None = None,
    parent: str = "",
    use_cache: bool = True,
    progress: Progress | None = None,
    cluster: Client | None = None,
    card: dict[str, Any] | None = None,
    max_array_bytes: int = MAX_ARRAY_BYTES,
    nothing: str = "nothing was written",
) -> ContractReport:
    """The contract checked (against ``catalog_keys`` when given).

    Raises:
        ContractFailed: when the manifests break the contract, saying ``nothing``.
    """
    cache = default_cache_dir() if use_cache else None
    report = check_manifests(
        pairs,
        base_dir,
        catalog_keys=catalog_keys,
        parent=parent,
        cache_dir=cache,
        use_cache=use_cache,
        progress=progress,
        cluster=cluster,
        card=card,
        max_array_bytes=max_array_bytes,
    )
    if not report.ok:
        raise report.failure(f"; {nothing}")
    return report


def checked_plan(
    pairs: list[ManifestPair],
    base_dir: Path,
    *,
    parent: str = "",
    progress: Progress | None = None,
    max_array_bytes: int = MAX_ARRAY_BYTES,
    nothing: str = "nothing was written",
) -> tuple[ContractReport, NodePlan]:
    """The contract checked, and the whole plan a run would write.

    Raises:
        ContractFailed: when the manifests break the contract, saying ``nothing``.
    """
    report = check_contract(
        pairs,
        base_dir,
        parent=parent,
        progress=progress,
        max_array_bytes=max_array_bytes,
        nothing=nothing,
    )
    return report, plan_nodes(report.checked())


def ingest(
    pairs: list[ManifestPair],
    base_dir: Path,
    target: Target | str,
    *,
    parent: str = "",
    use_cache: bool = True,
    notify: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    cluster: Client | None = None,
    card: dict[str, Any] | None = None,
    max_array_bytes: int = MAX_ARRAY_BYTES,
) -> Run:
    """Check, plan and write to ``target``. Nothing is written when the contract has an error.

    Args:
        target: The destination (:class:`~manifest_broker.catalog.write.CatalogTarget`,
            :class:`~manifest_broker.catalog.register.ServerTarget`,
            :class:`~manifest_broker.catalog.app.AppTarget`); a catalog's address
            (SQLite file, ``sqlite:///...``, ``postgresql://...``) stands for the
            catalog database with its defaults.
        parent: Catalog path to write under (containers made when missing).
        use_cache: Take file probes from the probe cache (and keep new ones there).
        notify: Told once when another broker is writing to the destination and
            this run waits for it.
        progress: Told ``(stage, done, total)`` while files are probed, the plan is
            made and nodes are written.
        cluster: A Dask client whose workers probe the files (the plan and the
            write stay here).
        card: A dataset card: the manifests are held to it, and it is stored as the
            parent container's ``dataset_card`` metadata with the write.
        max_array_bytes: Largest logical size of a served array (the contract's
            ``dataset_too_large``).

    Returns:
        The run; its ``result`` may list nodes a server did not take
        (``failed``, ``interrupted``): a re-run adds them.

    Raises:
        ContractFailed: when the manifests break the contract (nothing is written).
        BrokerError: when the destination refuses the run (nothing is written).
    """
    card_needs_parent(card, parent)
    if isinstance(target, str):
        from manifest_broker.catalog.write import CatalogTarget

        target = CatalogTarget(target, template_dir=default_cache_dir() if use_cache else None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    # A destination that cannot take this run says so here, before any file is probed.
    keys = target.existing_keys(parent)
    report = check_contract(
        pairs,
        base_dir,
        catalog_keys=keys,
        parent=parent,
        use_cache=use_cache,
        progress=progress,
        cluster=cluster,
        card=card,
        max_array_bytes=max_array_bytes,
        nothing=target.nothing,
    )
    timings["check"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if progress:
        progress("planning", 0, 1)
    checked = report.checked()
    planned = report.hamiltonian_rows + report.artifact_rows
    # Up to PLAN_CHUNK Hamiltonians, one plan; above, a destination that takes chunks
    # gets the plan made chunk by chunk while the write goes on, so that memory
    # follows a chunk and not the dataset.
    whole: NodePlan | None = None
    plans: NodePlan | Iterator[NodePlan]
    if target.chunked and report.hamiltonian_rows > PLAN_CHUNK:
        plans = plan_chunks(checked, PLAN_CHUNK)
    else:
        whole = plans = plan_nodes(checked)
        target.accept(whole, base_dir)
    if progress:
        progress("planning", 1, 1)
    timings["plan"] = time.perf_counter() - t0
    parent_metadata = None if card is None else {"dataset_card": card}
    result = target.write(
        plans, base_dir=base_dir, parent=parent, parent_metadata=parent_metadata, progress=progress, notify=notify
    )
    timings["write"] = result.seconds
    run = Run(report, target, result, planned, plan=whole, seconds=timings)
    if not result.failed and not result.interrupted:
        t0 = time.perf_counter()
        run.indexes = target.finish(report)
        if run.indexes:
            timings["indexes"] = time.perf_counter() - t0
    return run
