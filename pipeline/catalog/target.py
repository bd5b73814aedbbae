"""Where a checked node plan goes: one interface for every destination.

The runner (:func:`manifest_broker.catalog.ingest.ingest`) checks the manifests,
plans the nodes and hands them to a :class:`Target`; it does not know which of the
three destinations it writes to:

- the catalog database, written straight in one transaction
  (:class:`manifest_broker.catalog.write.CatalogTarget`, ``broker ingest``);
- a running Tiled server, node by node through ``tiled.client``, pointing it at
  the provider's files or uploading their data
  (:class:`manifest_broker.catalog.register.ServerTarget`, ``broker register``);
- Tiled's own app in this process on the catalog, uploading the data into a
  storage folder (:class:`manifest_broker.catalog.app.AppTarget`,
  ``broker ingest --upload``).

A destination refuses, when it is made, an option it cannot honour, with one error
naming the option and the destination (:meth:`Target.refuse`), so an option is
never silently dropped on one path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from manifest_broker.errors import BrokerError

if TYPE_CHECKING:
    import pyarrow as pa

    from manifest_broker.catalog.contract import ContractReport
    from manifest_broker.catalog.plan import NodePlan
    from manifest_broker.progress import Progress


@dataclass
class WriteResult:
    """What one write did at its destination: the ``--json`` answer of ``ingest``
    and ``register`` (with ``created_nodes`` added)."""

    created_containers: int = 0
    """Containers of the ``--parent`` path made because they were missing."""
    created_hamiltonians: int = 0
    """Hamiltonian containers made by this run."""
    created_arrays: int = 0
    """Artifact array nodes made by this run."""
    existing_hamiltonians: int = 0
    """Planned Hamiltonians that were there already (same key, same huid): kept."""
    existing_arrays: int = 0
    """Planned arrays that were there already: kept."""
    updated_metadata: list[str] = field(default_factory=list)
    """Keys of existing Hamiltonians whose metadata this run replaced (the previous
    document kept as a revision): with ``--update-metadata``, or, through a server,
    when the only change is new Mode A locators."""
    differing_metadata: list[str] = field(default_factory=list)
    """Keys of existing Hamiltonians whose metadata differs from the manifest and
    was left as it is."""
    parent_metadata_updated: bool = False
    """The dataset card was stored in (or changed in) the parent's metadata."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """Nodes a server did not take, as (catalog path, reason); a re-run adds them.
    Always empty for the one-transaction writer, which fails whole."""
    interrupted: bool = False
    """The run was stopped (Ctrl-C, SIGTERM) before every node was sent."""
    seconds: float = 0.0
    """Wall time of the write itself (not the check or the plan)."""
    lowest_concurrency: int = 0
    """Through a server: the fewest requests in flight the run fell back to while
    the server answered 5xx or 429 (0 for the other destinations)."""

    @property
    def created_nodes(self) -> int:
        """Every node this run made: parent containers, Hamiltonians, arrays."""
        return self.created_containers + self.created_hamiltonians + self.created_arrays

    @property
    def skipped(self) -> int:
        """Planned nodes that were already there."""
        return self.existing_hamiltonians + self.existing_arrays

    def add(self, part: WriteResult) -> None:
        """Count ``part`` (one worker's share of the same write) into this result."""
        for name in ("created_hamiltonians", "created_arrays", "existing_hamiltonians", "existing_arrays"):
            setattr(self, name, getattr(self, name) + getattr(part, name))
        self.updated_metadata += part.updated_metadata
        self.differing_metadata += part.differing_metadata
        self.failed += part.failed
        self.interrupted = self.interrupted or part.interrupted


class Target(ABC):
    """A destination for a checked node plan."""

    destination: str
    """The destination as a message names it ("the catalog c.db", "the server at URL")."""
    nothing: str = "nothing was written"
    """What a refused run says it left undone."""
    workers: int | None = None
    """Requests in flight, for a destination written through a server."""
    uploaded_into: str | None = None
    """Where the arrays' data are uploaded, for a destination that copies them."""
    updates_metadata: bool = False
    """Can replace the differing metadata of existing Hamiltonians (``--update-metadata``)."""
    chunked: bool = False
    """Takes the plan as an iterator of chunks (each made while the previous is
    written) rather than whole."""

    def refuse(self, option: str, why: str) -> NoReturn:
        """Raise the one error for an option this destination cannot honour."""
        raise BrokerError(f"{option} cannot be used with {self.destination}: {why}", exit_code=2)

    def where(self) -> str | None:
        """The path or URL a finding or an error names for this destination."""
        return None

    @abstractmethod
    def existing_keys(self, parent: str) -> pa.Table:
        """The keys already under ``parent`` (key, huid, location): the contract's
        ``key_in_catalog`` input. Asked before the check; it is also where a
        destination that cannot take this run at all says so, before any file is read."""

    def accept(self, plan: NodePlan, base_dir: Path) -> None:
        """After planning, before anything is written: refuse a plan this destination
        could register but not serve (a server that cannot read the files)."""
        del plan, base_dir

    @abstractmethod
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
        """Write the plan's nodes under ``parent``, and ``parent_metadata`` (the
        dataset card) into the parent's metadata.

        Args:
            base_dir: The data directory the plan's files are in (an upload reads them
                from there, through the confined reader).
            notify: Told once when another broker holds the destination's writer lock
                and this run waits for it.
        """

    def finish(self, report: ContractReport) -> list[str]:
        """After a complete write: what the destination adds from the checked
        manifests (the catalog's metadata indexes). Returns the indexed keys."""
        del report
        return []

    @property
    def created(self) -> bool:
        """This run created the destination (a new catalog file or database)."""
        return False
