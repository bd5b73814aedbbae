"""Register a node plan through a running Tiled server (the guide's option B).

Every node goes through ``tiled.client`` (Tiled's own creation path, so the server
does its own checks and the catalog may be live). Work is split by Hamiltonian over
worker threads, each with its own client and connection pool. Transient failures
(connection errors, 5xx, 429 with its Retry-After) are retried by ``tiled.client``
itself (stamina: exponential backoff with jitter); a 409 after a retry is adopted as
our own node, as Tiled's client does. What still fails is counted with its reason,
and the run goes on. A Hamiltonian that exists with the same ``huid`` is kept and
only its missing artifacts are added (its Mode A locators are extended), so a re-run
after Ctrl-C or a kill finishes the job without duplicates.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from manifest_broker.catalog.client import failure_reason, response_status
from manifest_broker.catalog.plan import ArraySources, NodePlan, only_new_locators
from manifest_broker.catalog.target import Target, WriteResult
from manifest_broker.catalog.upload import UPLOAD_MARK, check_uploads_accepted, upload_array
from manifest_broker.errors import BrokerError
from manifest_broker.progress import Progress

if TYPE_CHECKING:
    from manifest_broker.catalog.client import Server

KEY_SCHEMA = pa.schema([("key", pa.string()), ("huid", pa.string()), ("location", pa.string())])


class RegisterError(BrokerError, RuntimeError):
    """The registration cannot start (the parent path is not a container...)."""


def open_parent(client: Any, parent: str, result: WriteResult | None = None, *, create: bool = True) -> Any:
    """The container at ``parent`` below ``client``, created segment by segment when
    missing (counted in ``result``); None when missing and ``create`` is false.

    Raises:
        RegisterError: when a segment exists and is not a container.
    """
    node = client
    walked = []
    for segment in [s for s in parent.split("/") if s]:
        walked.append(segment)
        if segment in node:
            node = node[segment]
            if node.structure_family != "container":
                raise RegisterError(
                    f"--parent {parent}: {'/'.join(walked)} is an {node.structure_family}, not a container"
                )
        elif not create:
            return None
        else:
            try:
                node = node.create_container(segment)
            except Exception as exc:
                if response_status(exc) != 409:
                    raise
                node = node[segment]  # another registration made it meanwhile
            if result is not None:
                result.created_containers += 1
    return node


@dataclass
class ServerState:
    """What is already under the parent on the server."""

    keys: pa.Table  # key, huid, location: the contract's key_in_catalog input
    metadata: dict[str, dict[str, Any]]  # Hamiltonian key -> metadata
    counts: dict[str, int]  # Hamiltonian key -> number of children


def server_state(client: Any, parent: str) -> ServerState:
    """List the parent's children once (keys, huids, metadata, child counts)."""
    node = open_parent(client, parent, create=False)
    if node is None:
        return ServerState(KEY_SCHEMA.empty_table(), {}, {})
    keys, huids, metadata, counts = [], [], {}, {}
    for key, child in node.items():
        keys.append(key)
        huid = None
        if child.structure_family == "container":
            metadata[key] = dict(child.metadata)
            counts[key] = child.item["attributes"]["structure"]["count"]  # from the listing itself, no request
            huid = metadata[key].get("huid")
        huids.append(None if huid is None else str(huid))
    location = f"{client.uri.split('/api/')[0]} /{parent.strip('/')}"
    table = pa.table({"key": keys, "huid": huids, "location": [location] * len(keys)}, schema=KEY_SCHEMA)
    return ServerState(table, metadata, counts)


@dataclass
class _Hamiltonian:
    key: str
    huid: str
    metadata: str
    arrays: list[dict[str, Any]]


class Concurrency:
    """How many requests may be in flight, adapted to what the server answers (AIMD,
    as TCP does): it starts at ``limit``, halves on each 5xx or 429 (the server is
    overloaded; a SQLite-backed ``tiled serve`` answers "database is locked" when its
    own concurrent writes collide), and grows by one after ``window`` good answers
    in a row. tiled.client still retries the failed request itself."""

    def __init__(self, limit: int, window: int = 20) -> None:
        self.limit = self.highest = self.lowest = max(1, limit)
        self._window = window
        self._good = 0
        self._in_flight = 0
        self._changed = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the ``limit`` places for one request."""
        with self._changed:
            while self._in_flight >= self.limit:
                self._changed.wait()
            self._in_flight += 1
        try:
            yield
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def observe(self, response: Any) -> None:
        """An httpx response hook: every answer of every attempt."""
        with self._changed:
            if response.status_code >= 500 or response.status_code == 429:
                self.limit = max(1, self.limit // 2)
                self.lowest = min(self.lowest, self.limit)
                self._good = 0
            else:
                self._good += 1
                if self._good >= self._window and self.limit < self.highest:
                    self.limit += 1
                    self._good = 0
                    self._changed.notify_all()


class _Worker:
    """What one Hamiltonian needs: its container (created, or found with the same
    huid) and its missing arrays. One tiled client per thread."""

    def __init__(
        self,
        connect: Callable[[], Any],
        parent: str,
        plan: NodePlan,
        stop: threading.Event,
        advance: Callable[[int], None],
        concurrency: Concurrency,
        upload: Path | None = None,
    ) -> None:
        self._upload = upload  # the data directory the uploaded files are read from, when uploading
        self._connect = connect
        self._concurrency = concurrency
        self._parent = parent
        self._sources = ArraySources(plan)
        self._local = threading.local()
        self._stop = stop
        self._advance = advance

    def _node(self) -> Any:
        if not hasattr(self._local, "parent"):
            root = self._connect()
            root.context.http_client.event_hooks["response"].append(self._concurrency.observe)
            with self._concurrency.slot():
                self._local.parent = open_parent(root, self._parent, create=False)
        return self._local.parent

    def __call__(self, ham: _Hamiltonian, exists: bool) -> WriteResult:
        from tiled.structures.core import StructureFamily

        out = WriteResult()
        if self._stop.is_set():
            out.interrupted = True
            return out
        where = f"{self._parent.strip('/')}/{ham.key}".lstrip("/")
        planned = json.loads(ham.metadata)
        present: set[str] = set()  # array keys already under the Hamiltonian
        try:
            node = self._node()
            if not exists:
                try:
                    with self._concurrency.slot():
                        container = node.create_container(ham.key, metadata=planned)
                    out.created_hamiltonians += 1
                    self._advance(1)
                except Exception as exc:
                    if response_status(exc) != 409:
                        raise
                    exists = True  # made meanwhile, by another registration
            if exists:
                with self._concurrency.slot():
                    container = node[ham.key]
                current = dict(container.metadata)
                if container.structure_family != "container" or current.get("huid") != ham.huid:
                    raise RegisterError(f"key exists on the server for huid {current.get('huid')}, not {ham.huid}")
                out.existing_hamiltonians += 1
                with self._concurrency.slot():
                    present = self._present(container)  # exact, also when made meanwhile
                if current != planned:
                    if only_new_locators(current, planned):
                        with self._concurrency.slot():
                            container.update_metadata(metadata=planned)
                        out.updated_metadata.append(ham.key)
                    else:
                        out.differing_metadata.append(ham.key)
        except Exception as exc:
            out.failed.append((where, failure_reason(exc)))
            self._give_up_if_unreachable(exc)
            return out
        for row in ham.arrays:
            if self._stop.is_set():
                out.interrupted = True
                break
            if row["key"] in present:
                out.existing_arrays += 1
                continue
            try:
                with self._concurrency.slot():
                    if self._upload:
                        upload_array(
                            container,
                            row["key"],
                            row["path"],
                            json.loads(row["parameters"]),
                            json.loads(row["metadata"]),
                            root=self._upload,
                            expect=self._sources.identity(row["path"]),
                        )
                    else:
                        container.new(
                            StructureFamily.array,
                            [self._sources.data_source(row)],
                            key=row["key"],
                            metadata=json.loads(row["metadata"]),
                        )
                out.created_arrays += 1
                self._advance(1)
            except Exception as exc:
                if response_status(exc) == 409:
                    out.existing_arrays += 1
                else:
                    out.failed.append((f"{where}/{row['key']}", failure_reason(exc)))
                    self._give_up_if_unreachable(exc)
        return out

    def _present(self, container: Any) -> set[str]:
        """Keys of the arrays under an existing Hamiltonian. When uploading, an array
        whose upload was cut short (it still carries :data:`UPLOAD_MARK`) is deleted
        with its data here and counted as missing, so it is uploaded again; so is one
        registered to be read from the provider's file (its registration only), since
        a server that cannot read the files could not serve it (``--upload`` into a
        catalog that held the nodes uploaded nothing)."""
        if not self._upload:
            return set(container)
        present = set()
        for key, child in container.items():
            if UPLOAD_MARK in (child.metadata or {}):
                child.delete(external_only=False)
            elif any(
                str(getattr(d.management, "value", d.management)) == "external" for d in child.data_sources() or []
            ):
                child.delete(external_only=True)  # the provider's file is never touched
            else:
                present.add(key)
        return present

    def _give_up_if_unreachable(self, exc: BaseException) -> None:
        """A connection error that outlived tiled.client's retries (about 45 s): the
        server is gone, so every other node would wait as long and fail too."""
        import httpx

        if isinstance(exc, httpx.TransportError):
            self._stop.set()


def register_plan(
    connect: Callable[[], Any],
    plan: NodePlan,
    *,
    parent: str = "",
    workers: int = 8,
    existing: ServerState | None = None,
    progress: Progress | None = None,
    upload: Path | None = None,
) -> WriteResult:
    """Create the plan's nodes through the server, ``workers`` Hamiltonians at a time.

    Args:
        connect: Returns a new writable ``tiled.client`` root (called once per thread).
        plan: The node plan (the same one the bulk writer takes).
        parent: Path below the root; containers are created when missing.
        existing: What the server has under ``parent`` (:func:`server_state`); listed when None.
        progress: Told ``("registering nodes", done, total)`` over the nodes of the
            Hamiltonians that are not complete on the server yet.
        upload: The data directory: write each array's data, read from there through
            the confined reader, into the server's writable storage
            (:func:`upload_array`) instead of pointing the server at the file.

    Returns:
        Counts, and the nodes that failed with their reasons. On Ctrl-C the workers
        finish the request they are in, ``interrupted`` is set, and a re-run completes.
    """
    started = time.perf_counter()
    result = WriteResult()
    root = connect()
    open_parent(root, parent, result)
    state = existing if existing is not None else server_state(root, parent)
    by_parent: dict[str, list[dict[str, Any]]] = {}
    for row in plan.arrays.to_pylist():
        by_parent.setdefault(row["parent_key"], []).append(row)
    hams = [
        _Hamiltonian(k, h, m, by_parent.get(k, []))
        for k, h, m in zip(*(plan.hamiltonians[c].to_pylist() for c in ("key", "huid", "metadata")))
    ]
    # A re-run asks nothing per Hamiltonian that is complete: same metadata, and as
    # many children as it plans arrays, both from the one listing of the parent. One
    # with fewer (a run cut short) or more is listed by its worker, exactly, and
    # gets what it misses. (A deep search for the array keys instead cost ~20 s per
    # 1,000 Hamiltonians; what the count cannot see is someone replacing our arrays
    # on the server by as many others under the same Hamiltonian.)
    pending = []
    for ham in hams:
        # (Not when uploading: an array whose upload was cut short counts as a child.)
        if (
            not upload
            and ham.key in state.counts
            and state.metadata[ham.key] == json.loads(ham.metadata)
            and state.counts[ham.key] == len(ham.arrays)
        ):
            result.existing_hamiltonians += 1
            result.existing_arrays += len(ham.arrays)
        else:
            pending.append(ham)
    total = sum(1 + len(ham.arrays) for ham in pending)
    done = [0]
    if progress:
        progress("registering nodes", 0, total)
    lock = threading.Lock()

    def advance(n: int) -> None:
        with lock:
            done[0] += n
            if progress:
                progress("registering nodes", done[0], total)

    stop = threading.Event()
    concurrency = Concurrency(workers)
    worker = _Worker(connect, parent, plan, stop, advance, concurrency, upload)
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="register")
    known = set(state.keys["key"].to_pylist())
    futures = [pool.submit(worker, ham, ham.key in known) for ham in pending]
    merged: set[int] = set()
    try:
        for future in as_completed(futures):
            result.add(future.result())
            merged.add(id(future))
    except KeyboardInterrupt:
        stop.set()
        result.interrupted = True
        pool.shutdown(wait=True, cancel_futures=True)
        for future in futures:
            if id(future) not in merged and future.done() and not future.cancelled():
                result.add(future.result())
    finally:
        pool.shutdown(wait=True)
    result.seconds = time.perf_counter() - started
    result.lowest_concurrency = concurrency.lowest
    return result


def store_parent_metadata(client: Any, parent: str, metadata: dict[str, Any]) -> bool:
    """Set ``metadata``'s keys in the ``parent`` container's metadata (the dataset
    card), the previous document kept as a revision; False when it holds them already."""
    node = open_parent(client, parent, create=False)
    current = dict(node.metadata)
    wanted = {**current, **metadata}
    if wanted == current:
        return False
    node.replace_metadata(metadata=wanted)
    return True


class ServerTarget(Target):
    """A running Tiled server, node by node through ``tiled.client`` (``broker register``).

    The keys are listed once from the server; with ``upload`` the server must take an
    uploaded array before any file is read, and without it the server must read one
    planned array before any node is made (:mod:`manifest_broker.catalog.readable`).
    Not one transaction: what fails is counted with its reason, and a re-run adds
    what is missing, once.
    """

    def __init__(self, server: Server, *, workers: int = 8, upload: bool = False) -> None:
        """
        Args:
            workers: Most requests in flight (fewer while the server answers 5xx or 429).
            upload: Write each array's data into the server's writable storage instead
                of pointing the server at the provider's file.
        """
        self.server = server
        self.workers = workers
        self.upload = upload
        self.destination = f"the server at {server.url}"
        self.nothing = "nothing was registered"
        self.uploaded_into = "the server's storage" if upload else None
        self._client: Any = None
        self._state: ServerState | None = None

    def where(self) -> str | None:
        return self.server.url

    def _connect(self) -> Any:
        return self.server.client()

    def existing_keys(self, parent: str) -> pa.Table:
        self._client = self._connect()
        if self.upload:
            check_uploads_accepted(self._client)
        self._state = server_state(self._client, parent)
        return self._state.keys

    def accept(self, plan: NodePlan, base_dir: Path) -> None:
        if not self.upload:  # the server must read the files it will serve: asked once, before any node is made
            from manifest_broker.catalog.readable import check_reads_planned

            check_reads_planned(self._client, plan, base_dir)

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
        assert isinstance(plan, NodePlan), "a server takes the plan whole"
        started = time.perf_counter()
        result = register_plan(
            self._connect,
            plan,
            parent=parent,
            workers=self.workers or 1,
            existing=self._state,
            progress=progress,
            upload=Path(base_dir) if self.upload else None,
        )
        if parent_metadata and not result.failed and not result.interrupted:
            result.parent_metadata_updated = store_parent_metadata(self._connect(), parent, parent_metadata)
        result.seconds = time.perf_counter() - started
        return result
