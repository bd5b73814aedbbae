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
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from manifest_broker.boundary import Identity, ProviderFileError, hard_object, open_hdf5, printable, readable_dataset
from manifest_broker.catalog.contract import MAX_ARRAY_BYTES, ContractReport, check_manifests
from manifest_broker.catalog.plan import FILE_IDENTITY, HDF5_MIMETYPE, NodePlan, only_new_locators, plan_nodes
from manifest_broker.errors import BrokerError
from manifest_broker.progress import Progress

if TYPE_CHECKING:
    from manifest_broker.catalog.client import Server
    from manifest_broker.catalog.manifests import ManifestPair

# Metadata key of an array whose upload (--upload) has not finished: set when the
# node is created, removed once its last block is written. A re-run deletes such an
# array and uploads it again, so every array ends up uploaded exactly once.
UPLOAD_MARK = "broker_upload"
# Largest block sent in one request when uploading (Tiled's client suggests at most
# 100 MB per request).
UPLOAD_BLOCK_BYTES = 64 * 2**20

KEY_SCHEMA = pa.schema([("key", pa.string()), ("huid", pa.string()), ("location", pa.string())])


class RegisterError(BrokerError, RuntimeError):
    """The registration cannot start (the parent path is not a container...)."""


@dataclass
class RegisterResult:
    created_containers: int = 0
    created_hamiltonians: int = 0
    created_arrays: int = 0
    existing_hamiltonians: int = 0
    existing_arrays: int = 0
    updated_metadata: int = 0
    differing_metadata: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (node path, reason)
    interrupted: bool = False
    seconds: float = 0.0
    lowest_concurrency: int = 0  # requests in flight at the server's most overloaded moment

    @property
    def created_nodes(self) -> int:
        return self.created_containers + self.created_hamiltonians + self.created_arrays

    @property
    def skipped(self) -> int:
        return self.existing_hamiltonians + self.existing_arrays


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _reason(exc: BaseException) -> str:
    status = _status(exc)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"HTTP {status}: {text}" if status and not text.startswith(str(status)) else text


def open_parent(client: Any, parent: str, result: RegisterResult | None = None, *, create: bool = True) -> Any:
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
                if _status(exc) != 409:
                    raise
                node = node[segment]  # another registration made it meanwhile
            if result is not None:
                result.created_containers += 1
    return node


@dataclass
class ServerState:
    """What is already under the parent on the server."""

    keys: pa.Table  # key, huid, location: the contract's key_in_catalog input
    metadata: dict[str, dict]  # Hamiltonian key -> metadata
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
    arrays: list[dict]


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


def _sources(plan: NodePlan) -> tuple[dict, dict]:
    from tiled.structures.array import ArrayStructure

    structures = {
        sid: ArrayStructure.from_json(json.loads(doc))
        for sid, doc in zip(plan.structures["id"].to_pylist(), plan.structures["structure"].to_pylist())
    }
    assets = {
        row["path"]: (row["data_uri"], Identity(*(row[c] for c in FILE_IDENTITY)))
        for row in plan.assets.select(["path", "data_uri", *FILE_IDENTITY]).to_pylist()
    }
    return structures, assets


class _Row:
    """One row of a batched HDF5 dataset as an array-like dask can read block by block
    (``ds[index][block]`` without reading the whole row or the whole dataset)."""

    def __init__(self, dataset: Any, index: int) -> None:
        self._dataset, self._index = dataset, index
        self.shape, self.dtype, self.ndim = dataset.shape[1:], dataset.dtype, dataset.ndim - 1

    def __getitem__(self, key: Any) -> Any:
        return self._dataset[(self._index, *(key if isinstance(key, tuple) else (key,)))]


def upload_array(
    container: Any, key: str, path: str, parameters: dict, metadata: dict, *, root: Path, expect: Identity | None = None
) -> Any:
    """Write one artifact into the server's storage through Tiled's own client.

    The file is opened through the confined reader (:mod:`manifest_broker.boundary`):
    inside ``root``, a regular file, and the very file the check saw (``expect``);
    the dataset is reached through links inside the file only and must keep its
    bytes in that file. It (or its row ``parameters["slice"]``) is read in blocks of
    at most :data:`UPLOAD_BLOCK_BYTES`, aligned with its HDF5 chunks, and each block
    goes out as one ``write_block`` request as soon as it is read, so memory stays
    one block whatever the array's size (Tiled's ``write_array`` gathers every block
    of a dask array into one result). The node carries :data:`UPLOAD_MARK` until the
    last block is written and the file is found unchanged; a file changed meanwhile
    deletes the node and fails the array. A whole scalar or zero-length dataset gets
    the leading axis of one that Tiled's HDF5 adapter gives it, so the uploaded node
    is the node Tiled would serve from the file; compound dtypes keep their fields.

    Returns:
        The new array's client.

    Raises:
        ProviderFileError: when the file or dataset is refused, or changed while read.
    """
    import itertools

    import numpy as np
    from dask.array.core import normalize_chunks
    from tiled.structures.array import ArrayStructure, BuiltinDtype, StructDtype
    from tiled.structures.core import StructureFamily
    from tiled.structures.data_source import DataSource

    with open_hdf5(path, root, what="file", expect=expect) as handle:
        dataset = readable_dataset(hard_object(handle, parameters["dataset"]))
        index = parameters.get("slice")
        source: Any = dataset if index is None else _Row(dataset, int(index))
        whole: Any = None
        if source.shape == () or 0 in source.shape:
            whole = np.asarray(dataset[()] if index is None else dataset[int(index)])
            if index is None:  # laid out as Tiled serves the file itself (the same node by either route)
                from manifest_broker.catalog.verify import as_tiled_serves

                whole = as_tiled_serves(whole, row=False)
            shape, dtype = whole.shape, whole.dtype
            chunks = tuple((n,) for n in shape)
        else:
            shape, dtype = source.shape, source.dtype
            previous = dataset.chunks if index is None or dataset.chunks is None else dataset.chunks[1:]
            chunks = normalize_chunks("auto", shape, limit=UPLOAD_BLOCK_BYTES, dtype=dtype, previous_chunks=previous)
        if dtype.fields:  # named fields kept, each in native byte order (see _native)
            dtype = _native(dtype)
            data_type: Any = StructDtype.from_numpy_dtype(dtype)
        else:
            data_type = BuiltinDtype.from_numpy_dtype(dtype)
        structure = ArrayStructure(shape=tuple(shape), chunks=chunks, dims=None, data_type=data_type)
        node = container.new(
            StructureFamily.array,
            [DataSource(structure=structure, structure_family=StructureFamily.array)],
            key=key,
            metadata={**metadata, UPLOAD_MARK: "incomplete"},
        )
        if whole is not None:
            node.write(whole.astype(dtype, copy=False))
        else:
            starts = [np.cumsum((0, *sizes[:-1])) for sizes in chunks]
            for block in itertools.product(*(range(len(sizes)) for sizes in chunks)):
                where = tuple(
                    slice(int(starts[axis][i]), int(starts[axis][i]) + chunks[axis][i]) for axis, i in enumerate(block)
                )
                node.write_block(np.ascontiguousarray(source[where], dtype=dtype), block=block)
        if expect is not None and Identity.of(os.fstat(handle.id.get_vfd_handle())) != expect:
            node.delete(external_only=False)
            raise ProviderFileError(
                "changed",
                f"{printable(path)} changed while it was uploaded; the array was "
                "removed again: re-run to upload it as it is now",
                path,
            )
    node.replace_metadata(metadata=metadata, drop_revision=True)
    return node


def _native(dtype: Any) -> Any:
    """A compound dtype with every field in native byte order (Tiled's writable
    storage mixes up a compound array whose fields are big-endian)."""
    import numpy as np

    if dtype.names is None:
        return dtype.newbyteorder("=") if dtype.subdtype is None else np.dtype((_native(dtype.base), dtype.shape))
    return np.dtype(
        {
            "names": list(dtype.names),
            "formats": [_native(dtype.fields[n][0]) for n in dtype.names],
            "offsets": [dtype.fields[n][1] for n in dtype.names],
            "itemsize": dtype.itemsize,
        }
    )


def check_uploads_accepted(client: Any) -> None:
    """Before any work: the server takes an uploaded array (it has writable storage).
    A one-byte array is written at the root and deleted again.

    Raises:
        RegisterError: when it does not, saying how to start one that does.
    """
    import uuid

    import numpy as np

    try:
        node = client.write_array(np.zeros(1, np.uint8), key=f"broker-upload-check-{uuid.uuid4().hex[:12]}")
    except Exception as exc:
        if _status(exc) == 405:
            raise RegisterError(
                "--upload: the server has no writable storage, so it cannot keep uploaded arrays; "
                "start it with `broker serve --storage DIR` (tiled serve ... -w DIR); nothing was "
                "registered"
            ) from None
        raise RegisterError(
            f"--upload: the server refused a test upload ({_reason(exc)}); nothing was registered"
        ) from None
    node.delete(external_only=False)


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
        self._structures, self._assets = _sources(plan)
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

    def _array_source(self, row: dict) -> Any:
        from tiled.structures.core import StructureFamily
        from tiled.structures.data_source import Asset, DataSource, Management

        data_uri, identity = self._assets[row["path"]]
        size = identity.size
        return DataSource(
            structure_family=StructureFamily.array,
            structure=self._structures[row["structure_id"]],
            mimetype=HDF5_MIMETYPE,
            parameters=json.loads(row["parameters"]),
            management=Management.external,
            assets=[Asset(data_uri=data_uri, is_directory=False, parameter="data_uri", size=size)],
        )

    def __call__(self, ham: _Hamiltonian, exists: bool) -> RegisterResult:
        from tiled.structures.core import StructureFamily

        out = RegisterResult()
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
                    if _status(exc) != 409:
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
                        out.updated_metadata += 1
                    else:
                        out.differing_metadata.append(ham.key)
        except Exception as exc:
            out.failed.append((where, _reason(exc)))
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
                            expect=self._assets[row["path"]][1],
                        )
                    else:
                        container.new(
                            StructureFamily.array,
                            [self._array_source(row)],
                            key=row["key"],
                            metadata=json.loads(row["metadata"]),
                        )
                out.created_arrays += 1
                self._advance(1)
            except Exception as exc:
                if _status(exc) == 409:
                    out.existing_arrays += 1
                else:
                    out.failed.append((f"{where}/{row['key']}", _reason(exc)))
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


def _merge(total: RegisterResult, part: RegisterResult) -> None:
    for name in (
        "created_hamiltonians",
        "created_arrays",
        "existing_hamiltonians",
        "existing_arrays",
        "updated_metadata",
    ):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.differing_metadata += part.differing_metadata
    total.failed += part.failed
    total.interrupted = total.interrupted or part.interrupted


def register_plan(
    connect: Callable[[], Any],
    plan: NodePlan,
    *,
    parent: str = "",
    workers: int = 8,
    existing: ServerState | None = None,
    progress: Progress | None = None,
    upload: Path | None = None,
) -> RegisterResult:
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
    result = RegisterResult()
    root = connect()
    open_parent(root, parent, result)
    state = existing if existing is not None else server_state(root, parent)
    by_parent: dict[str, list[dict]] = {}
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
            _merge(result, future.result())
            merged.add(id(future))
    except KeyboardInterrupt:
        stop.set()
        result.interrupted = True
        pool.shutdown(wait=True, cancel_futures=True)
        for future in futures:
            if id(future) not in merged and future.done() and not future.cancelled():
                _merge(result, future.result())
    finally:
        pool.shutdown(wait=True)
    result.seconds = time.perf_counter() - started
    result.lowest_concurrency = concurrency.lowest
    return result


@dataclass
class RegisterRun:
    """What ``broker register`` did: the check, the plan, and the registration."""

    report: ContractReport
    plan: NodePlan
    result: RegisterResult
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def missing(self) -> int:
        """Planned nodes that are not on the server after this run."""
        r = self.result
        return self.plan.nodes - r.created_hamiltonians - r.created_arrays - r.skipped


def register(
    pairs: list[ManifestPair],
    base_dir: Path,
    server: Server,
    *,
    parent: str = "",
    workers: int = 8,
    progress: Progress | None = None,
    upload: bool = False,
    max_array_bytes: int = MAX_ARRAY_BYTES,
) -> RegisterRun:
    """Check the contract against the server's keys, plan, and register through the server.

    Raises:
        ContractFailed: when the manifests break the contract (nothing is registered).
        RegisterError: when the parent cannot be used.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    client = server.client()
    if upload:
        check_uploads_accepted(client)
    state = server_state(client, parent)
    report = check_manifests(
        pairs, base_dir, parent=parent, catalog_keys=state.keys, progress=progress, max_array_bytes=max_array_bytes
    )
    timings["check"] = time.perf_counter() - t0
    if not report.ok:
        raise report.failure("; nothing was registered")
    t0 = time.perf_counter()
    plan = plan_nodes(report.checked())
    timings["plan"] = time.perf_counter() - t0
    if not upload:  # the server must read the files it will serve: asked once, before any node is made
        from manifest_broker.catalog.readable import check_reads_planned

        check_reads_planned(client, plan, base_dir)
    result = register_plan(
        server.client,
        plan,
        parent=parent,
        workers=workers,
        existing=state,
        progress=progress,
        upload=Path(base_dir) if upload else None,
    )
    timings["register"] = result.seconds
    return RegisterRun(report, plan, result, timings)
