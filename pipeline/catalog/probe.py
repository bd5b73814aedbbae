"""Probe the HDF5 files a manifest points at: shape, dtype and chunking per dataset.

Each distinct file is located once (with symlinks resolved and checked against the
base directory) and opened once for all the datasets the manifests read from it.
Opening is spread over processes (h5py serialises threads on its global lock), and
results are cached by (path, size, mtime, ctime), so a re-check after a fix opens
only the files that changed.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import polars as pl
import pyarrow as pa

from manifest_broker.boundary import (
    CONTROL,
    Identity,
    ProviderFileError,
    dataset_problem,
    link_path,
    open_hdf5,
    printable,
)
from manifest_broker.cache import replace_atomically
from manifest_broker.processes import shut_down, submit, worker_pool
from manifest_broker.progress import Progress

if TYPE_CHECKING:
    from distributed import Client

# Files opened per task sent to a worker: large enough to amortise the round trip,
# small enough to keep both cores busy to the end.
CHUNK_FILES = 256
# Files per task sent to a Dask worker: scheduling a task costs about a millisecond,
# opening a thousand files about a quarter of a second.
CLUSTER_CHUNK_FILES = 1000
# Below this many files the process pool costs more than it saves.
POOL_THRESHOLD = 128
# Files opened in this process between two progress reports.
PROGRESS_FILES = 32
# Bumped when the probe's verdicts change (see _cache_path).
PROBE_VERSION = 6

PROBE_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("dataset", pa.string()),
        ("path", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("ctime_ns", pa.int64()),
        # The file's identity (st_dev, st_ino): with the times and size, what the
        # writer compares again just before its commit.
        ("device", pa.uint64()),
        ("inode", pa.uint64()),
        ("file_status", pa.string()),
        ("file_message", pa.string()),
        ("dataset_status", pa.string()),
        ("dataset_message", pa.string()),
        ("shape", pa.list_(pa.int64())),
        ("dtype", pa.string()),
        ("chunks", pa.list_(pa.int64())),
        ("ragged", pa.bool_()),
        # Tiled's data_type document of the dtype (BuiltinDtype or StructDtype, as
        # JSON text): the dtype the server will check every read against.
        ("data_type", pa.string()),
        # The dataset's HDF5 attributes as the JSON text Tiled's client sends for them
        # (tiled.utils.safe_json_dump of the adapter's metadata); null when none.
        ("attrs", pa.string()),
    ]
)
_STAT = ["size", "mtime_ns", "ctime_ns", "device", "inode"]
_DESCRIPTION = [
    "file_status",
    "file_message",
    "dataset_status",
    "dataset_message",
    "shape",
    "dtype",
    "chunks",
    "ragged",
    "data_type",
    "attrs",
]
_CACHED = ["path", *_STAT, "dataset", *_DESCRIPTION]


@dataclass(frozen=True)
class ProbeResult:
    """Probe rows (one per distinct file and dataset) and what it took to get them."""

    table: pa.Table
    files: int
    opened: int
    seconds: float
    cache_error: str | None = None  # the cache could not be written (the probe itself stands)


@functools.lru_cache(maxsize=65536)
def _real_directory(directory: str) -> str:
    return os.path.realpath(directory)


def served_path_problem(path: str) -> str | None:
    """Why Tiled's server would not open exactly ``path``, or ``None``.

    Tiled stores an asset as the URI ``tiled.utils.ensure_uri`` builds from the path,
    and its server (readable-storage check and HDF5 adapter alike) opens
    ``tiled.utils.path_from_uri`` of that URI. URL parsing drops tabs and line
    breaks and ends the path at ``#`` or ``?``, so a directory named ``"\\t.."``
    becomes ``..`` on the way, and the server's text-only storage check lets it
    through. So a path is accepted only when it survives that round trip unchanged
    (whatever character would alter it), and holds no control character at all.
    """
    from tiled.utils import ensure_uri, path_from_uri

    if control := CONTROL.search(path):
        return (
            f"resolves to {printable(path)}, which holds the control character U+{ord(control.group()):04X}: "
            "Tiled's asset URIs cannot carry it (URL parsing drops or stops at such characters)"
        )
    back = str(path_from_uri(ensure_uri(path)))
    if back != path:
        return (
            f"resolves to {printable(path)}, but Tiled's asset URI for it reads back as {printable(back)}: "
            "the server would open another path"
        )
    return None


class Located(NamedTuple):
    """Where one manifest ``file`` resolves, and what the probe may trust about it."""

    status: str  # ok, outside_base, missing, not_regular, empty, uri_unsafe
    message: str | None
    path: str
    size: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    device: int = 0
    inode: int = 0


def _locate(base_real: str, file: str) -> Located:
    """Resolve one manifest ``file`` against the base directory without opening it:
    symlinks resolved, inside the base directory, a regular non-empty file whose
    path the server will open exactly (:func:`served_path_problem`)."""
    joined = os.path.join(base_real, file)
    candidate = os.path.join(_real_directory(os.path.dirname(joined)), os.path.basename(joined))
    try:
        st = os.lstat(candidate)
        real = candidate
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(candidate)
            st = os.stat(real)
    except FileNotFoundError:
        return Located("missing", "file does not exist", candidate)
    except OSError as exc:
        return Located("missing", f"cannot stat file ({exc.strerror})", candidate)
    if real != base_real and not real.startswith(base_real + os.sep):
        return Located("outside_base", f"resolves to {printable(real)}, outside the base directory", real)
    if problem := served_path_problem(real):
        return Located("uri_unsafe", problem, real)
    if stat.S_ISDIR(st.st_mode):
        return Located("not_regular", "is a directory, not a file", real)
    if not stat.S_ISREG(st.st_mode):
        return Located("not_regular", "is not a regular file", real)
    identity = (st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino)
    if st.st_size == 0:
        return Located("empty", "is an empty file (0 bytes)", real, 0, *identity)
    return Located("ok", None, real, st.st_size, *identity)


def file_identity(path: str) -> tuple[str, int, int, int, int, int] | None:
    """What identifies a probed file now: (resolved path, size, mtime_ns, ctime_ns,
    device, inode), or ``None`` when it cannot be stat'ed. A file swapped for
    another (also through a directory turned into a symlink) changes at least the
    resolved path, the inode or the ctime, which no user can set."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    return real, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino


def _refused(
    name: str, status: str, message: str | None, file_status: str = "ok", file_message: str | None = None
) -> tuple:
    """Probe row of a dataset that cannot be described (or of a file that cannot be opened)."""
    return (name, file_status, file_message, status, message, None, None, None, None, None, None)


def _attrs_json(oid: Any) -> str | None:
    """The dataset's attributes as Tiled's HDF5 adapter reads them (bytes decoded to
    str) and Tiled's client serialises them: the metadata Tiled's own ``register()``
    gives the array node. ``None`` when the dataset has no attributes (the usual case,
    answered without reading any)."""
    import h5py
    from tiled.utils import safe_json_dump

    if h5py.h5a.get_num_attrs(oid) == 0:
        return None
    attrs = dict(h5py.Dataset(oid).attrs)
    for key, value in attrs.items():
        if isinstance(value, bytes):
            attrs[key] = value.decode()
    return bytes(safe_json_dump(attrs)).decode()


def _describe_dataset(handle: Any, name: str, resolved: str, deep: int | None = None) -> tuple:
    """Probe row of one dataset reached through hard links only (low-level h5py: the
    high-level ``File.get`` costs more than every other step together). ``deep``:
    every value is read once too (:func:`_unreadable_block`)."""
    import h5py

    refused = functools.partial(_refused, name)
    oid = h5py.h5o.open(handle.id, resolved.encode())
    if not isinstance(oid, h5py.h5d.DatasetID):
        kind = "group" if isinstance(oid, h5py.h5g.GroupID) else type(oid).__name__
        return refused("not_a_dataset", f"{name} is a {kind}, not a dataset")
    if oid.get_space().get_simple_extent_type() == h5py.h5s.NULL:
        return refused(
            "null_dataspace",
            f"{name} has a null dataspace (h5py.Empty: no shape and no values), so there is no array to serve",
        )
    plist = oid.get_create_plist()
    layout = plist.get_layout()
    # Bytes read from another file: the data directory confines neither.
    if problem := dataset_problem(h5py.Dataset(oid)):
        return refused(problem[0], f"{problem[1]}; the server would read them")
    if missing := _unavailable_filters(plist):
        return refused(
            "filter_unavailable",
            f"{name} is compressed with HDF5 filter(s) {missing}, which neither "
            "HDF5 nor hdf5plugin provides here: the server could not decode it; "
            "install the filter's plugin or repack the file",
        )
    dtype = oid.dtype
    ragged = h5py.check_vlen_dtype(dtype) is not None or dtype.kind == "O"
    chunks = list(plist.get_chunk()) if layout == h5py.h5d.CHUNKED else None
    data_type = None
    if not ragged:  # ragged data has its own rule
        try:
            data_type = tiled_data_type(served_dtype(oid))
        except ValueError as exc:
            return refused(
                "dtype_unsupported",
                f"{name} has dtype {dtype}, which Tiled cannot describe ({exc}): the server could not serve it",
            )
    try:
        attrs = _attrs_json(oid)
    except (OSError, RuntimeError, TypeError, ValueError, UnicodeDecodeError) as exc:
        return refused(
            "attrs_unusable",
            f"{name} has HDF5 attributes that cannot become JSON metadata ({exc}); "
            "Tiled copies every attribute into the array's metadata",
        )
    if deep is not None and not ragged:
        logical = int(math.prod(oid.shape)) * dtype.itemsize
        if logical > deep:  # a sparse file can declare terabytes: read only what the limit allows
            return refused(
                "too_large_to_read",
                f"{name} declares {logical:,} bytes, over the {deep:,} that "
                "--max-array-size allows: --deep does not read it (raise the limit "
                "to check its values)",
            )
        if unreadable := _unreadable_block(h5py.Dataset(oid)):
            return refused("unreadable_chunks", unreadable)
    return (name, "ok", None, "ok", None, list(oid.shape), dtype_text(dtype), chunks, ragged, data_type, attrs)


# Most bytes decoded at once by a deep check.
DEEP_BLOCK_BYTES = 64 * 2**20


def _unreadable_block(dataset: Any) -> str | None:
    """Why some of ``dataset``'s values cannot be read (a corrupt or truncated chunk,
    a filter that fails to decode), or None: the whole dataset read once, in blocks
    of whole chunks along the first axis of at most :data:`DEEP_BLOCK_BYTES`."""
    blocks: list[Any]
    if dataset.shape == () or 0 in dataset.shape:
        blocks = [()]
    else:
        row = max(1, dataset.dtype.itemsize * int(math.prod(dataset.shape[1:])))
        step = max(1, DEEP_BLOCK_BYTES // row)
        if dataset.chunks:  # whole chunks along the first axis
            step = max(dataset.chunks[0], step // dataset.chunks[0] * dataset.chunks[0])
        blocks = [slice(start, start + step) for start in range(0, dataset.shape[0], step)]
    for block in blocks:
        try:
            dataset[block]
        except (OSError, RuntimeError, ValueError) as exc:
            where = "" if block == () else f" rows {block.start}-{min(block.stop, dataset.shape[0]) - 1}"
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return (
                f"{dataset.name}{where}: the stored values cannot be read ({first}): a corrupt or truncated "
                "chunk; the server would answer every read of it with an error"
            )
    return None


def served_dtype(oid: Any) -> Any:
    """The dtype Tiled's adapter serves a dataset with. A scalar, or a dataset with a
    zero-length axis, is read whole with h5py (``dataset[()]``) and stacked with
    dask, whose result type is numpy's canonical one (native byte order, compound
    fields too; a fixed-length string scalar as long as its value); every other
    dataset is served in the file's dtype. Such reads are one element or none."""
    import h5py
    import numpy as np

    if oid.shape == () or 0 in oid.shape:
        return np.result_type(np.asarray(h5py.Dataset(oid)[()]).dtype)
    return oid.dtype


def tiled_data_type(dtype: Any) -> str:
    """Tiled's ``data_type`` document for a numpy dtype, as JSON text: what its
    ``ArrayStructure.from_array`` makes of the dtype, refused unless it turns back
    into exactly that dtype (Tiled's adapter refuses every read whose dtype differs
    from the registered one).

    Raises:
        ValueError: for a dtype Tiled cannot describe (a compound with a string
            field, a top-level subarray...).
    """
    import dataclasses

    from tiled.structures.array import BuiltinDtype, StructDtype
    from tiled.utils import safe_json_dump

    try:
        described = (
            StructDtype.from_numpy_dtype(dtype) if dtype.fields is not None else BuiltinDtype.from_numpy_dtype(dtype)
        )
        back = described.to_numpy_dtype()
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    if back != dtype:
        raise ValueError(f"it would be served as {back}")
    return bytes(safe_json_dump(dataclasses.asdict(described))).decode()


def _unavailable_filters(plist: Any) -> list[int]:
    """Ids of the dataset's HDF5 filters that cannot decode here. Tiled's server
    imports hdf5plugin (its HDF5 adapter does), so its filters count as available."""
    from h5py import h5z

    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    missing = [f for f in filters if not h5z.filter_avail(f)]
    if missing:
        try:
            import hdf5plugin  # noqa: F401  (registers its filters with HDF5)
        except ImportError:
            return missing
        missing = [f for f in missing if not h5z.filter_avail(f)]
    return missing


def dtype_text(dtype: Any) -> str:
    """A dtype as text that tells every two dtypes apart: numpy's ``str`` (``<f8``,
    ``>c16``), or for structured and subarray types (``|V24`` for all of them) their
    full numpy spelling."""
    return dtype.str if dtype.kind != "V" else f"{dtype.str}{dtype}"


def _open_files() -> int:
    import h5py

    return int(h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE))


def _probe_file(
    path: str, datasets: list[str], root: str, identity: Identity | None = None, deep: int | None = None
) -> list[tuple]:
    """Open one file through the confined reader (inside ``root``, a regular file,
    the very file ``identity`` describes) and describe the requested datasets.

    Returns:
        One tuple per dataset: (dataset, file_status, file_message, dataset_status,
        dataset_message, shape, dtype, chunks, ragged, data_type, attrs).
    """

    def rows(file_status: str, message: str) -> list[tuple]:
        return [_refused(d, "skipped", None, file_status, message) for d in datasets]

    files_before = _open_files()
    try:
        with open_hdf5(path, root, what="file", expect=identity) as handle5:
            out: list[tuple] = []
            links = handle5.id.links
            for name in datasets:
                try:
                    status, resolved = link_path(links, name)
                    if status == "ok":
                        out.append(_describe_dataset(handle5, name, resolved, deep))
                    else:
                        out.append(_refused(name, status, resolved))
                except (KeyError, OSError, RuntimeError, ValueError) as exc:
                    out.append(_refused(name, "unreadable", f"cannot open {name} ({exc})"))
            # Whatever else HDF5 might resolve by itself (a future link or layout kind):
            # a second file opened while describing this one refuses all of its datasets.
            if _open_files() > files_before + 1:
                message = "describing this file made HDF5 open another file, which the data directory does not confine"
                out = [_refused(row[0], "opens_other_file", message) for row in out]
            return out
    except ProviderFileError as exc:
        status = {"outside_root": "outside_base", "unreadable": "unreadable"}.get(exc.rule, exc.rule)
        message = str(exc) if exc.rule in ("not_hdf5", "corrupt") else f"{exc} (at the moment it was opened)"
        return rows(status, message)


# One file to open: its resolved path, its datasets, its identity as located.
_Task = tuple[str, list[str], Identity | None]


def _probe_chunk(root: str, deep: int | None, tasks: list[_Task]) -> list[tuple[str, list[tuple]]]:
    return [(path, _probe_file(path, datasets, root, identity, deep)) for path, datasets, identity in tasks]


def _cache_path(cache_dir: Path, base_real: str) -> Path:
    digest = hashlib.sha256(base_real.encode()).hexdigest()[:16]
    # The version changes whenever the probe learns to refuse something new: a
    # cached "ok" from an older probe must not vouch for a file it never examined.
    return cache_dir / f"probe-v{PROBE_VERSION}-{digest}.parquet"


def _run_probes(
    root: str,
    tasks: list[_Task],
    workers: int,
    progress: Progress | None = None,
    cluster: Client | None = None,
    deep: int | None = None,
) -> list[tuple[str, list[tuple]]]:
    if cluster is not None and tasks:
        return _probe_on_cluster(root, tasks, cluster, progress, deep)
    pooled = len(tasks) >= POOL_THRESHOLD and workers > 1
    size = CHUNK_FILES if pooled else PROGRESS_FILES
    chunks = [tasks[i : i + size] for i in range(0, len(tasks), size)]
    results: list[tuple[str, list[tuple]]] = []
    if progress and tasks:
        progress("probing files", 0, len(tasks))

    def collect(part: list[tuple[str, list[tuple]]]) -> None:
        results.extend(part)
        if progress:
            progress("probing files", len(results), len(tasks))

    if not pooled:
        for chunk in chunks:
            collect(_probe_chunk(root, deep, chunk))
        return results
    pool = worker_pool(workers, ["h5py", "tiled.utils", "tiled.structures.array", "manifest_broker.catalog.probe"])
    try:
        futures = [submit(pool, _probe_chunk, root, deep, chunk) for chunk in chunks]
        for future in futures:
            collect(future.result())
    finally:  # on Ctrl-C, what is queued is dropped (the workers ignore SIGINT and finish their chunk)
        shut_down(pool)
    return results


def _probe_on_cluster(
    root: str, tasks: list[_Task], cluster: Client, progress: Progress | None, deep: int | None = None
) -> list[tuple[str, list[tuple]]]:
    """The probe's own function over batches of files on the Dask cluster's workers:
    the same confinement checks, batches large enough that scheduling costs little
    beside opening a thousand files."""
    from manifest_broker.cluster import map_unordered

    chunks = [tasks[i : i + CLUSTER_CHUNK_FILES] for i in range(0, len(tasks), CLUSTER_CHUNK_FILES)]
    results: list[tuple[str, list[tuple]]] = []
    if progress:
        progress("probing files", 0, len(tasks))
    for part in map_unordered(cluster, functools.partial(_probe_chunk, root, deep), chunks, "broker-probe"):
        results.extend(part)
        if progress:
            progress("probing files", len(results), len(tasks))
    return results


def _located_files(locators: pa.Table, base_real: str) -> pl.DataFrame:
    """One row per distinct file: its datasets, where it resolves and its stat."""
    wanted = (
        pl.DataFrame(locators.select(["file", "dataset"]))
        .drop_nulls()
        .unique()
        .group_by("file")
        .agg(pl.col("dataset").sort())
    )
    located = pl.DataFrame(
        [_locate(base_real, f) for f in wanted["file"]],
        schema={
            "loc_status": pl.String,
            "loc_message": pl.String,
            "path": pl.String,
            "size": pl.Int64,
            "mtime_ns": pl.Int64,
            "ctime_ns": pl.Int64,
            "device": pl.UInt64,
            "inode": pl.UInt64,
        },
        orient="row",
    )
    _real_directory.cache_clear()
    return pl.concat([wanted, located], how="horizontal")


def _read_cache(cache_file: Path | None) -> pl.DataFrame:
    cached = pl.DataFrame(schema=pl.DataFrame(PROBE_SCHEMA.empty_table()).select(_CACHED).schema)
    if cache_file and cache_file.is_file():
        try:
            return pl.read_parquet(cache_file).select(_CACHED)
        except Exception:  # a damaged cache is only a slower run, never a failure
            return cached
    return cached


def _fresh_rows(opened: list[tuple[str, list[tuple]]], files: pl.DataFrame) -> pl.DataFrame:
    """The rows of the files opened now, with the stat they were opened at."""
    fresh = pl.DataFrame(
        [(path, *row) for path, rows in opened for row in rows],
        schema={
            "path": pl.String,
            "dataset": pl.String,
            "file_status": pl.String,
            "file_message": pl.String,
            "dataset_status": pl.String,
            "dataset_message": pl.String,
            "shape": pl.List(pl.Int64),
            "dtype": pl.String,
            "chunks": pl.List(pl.Int64),
            "ragged": pl.Boolean,
            "data_type": pl.String,
            "attrs": pl.String,
        },
        orient="row",
    )
    stats = files.select("path", *_STAT).unique("path")
    return fresh.join(stats, on="path", how="left").select(_CACHED)


def _write_cache(cache_file: Path, cached: pl.DataFrame, fresh: pl.DataFrame) -> str | None:
    """Replace the cache file with the old rows of other files plus the fresh ones;
    returns why it could not be written, if it could not."""
    keep = cached.join(fresh.select("path").unique(), on="path", how="anti")
    rows = pl.concat([keep, fresh])
    # Full or read-only: slower re-runs, nothing worse.
    reason = replace_atomically(cache_file, rows.write_parquet, (pl.exceptions.ComputeError,))
    if reason:
        return f"probe cache not updated: {reason} ({cache_file}); the check itself is complete"
    for stale in cache_file.parent.glob("probe-v*-*.parquet"):  # left by older brokers
        if not stale.name.startswith(f"probe-v{PROBE_VERSION}-"):
            stale.unlink(missing_ok=True)
    return None


def probe_locators(
    locators: pa.Table,
    base_dir: Path,
    *,
    cache_dir: Path | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    cluster: Client | None = None,
    deep: int | None = None,
) -> ProbeResult:
    """Describe every distinct (file, dataset) pair of the artifact manifests.

    Args:
        locators: A table with string columns ``file`` and ``dataset``.
        base_dir: The data directory manifest paths are relative to.
        cache_dir: Where the probe cache lives; ``None`` disables the cache.
        workers: Processes that open files; default: every core.
        progress: Told ``("probing files", opened, to_open)`` as files are opened.
        cluster: A Dask client: files are opened on its workers instead
            (:mod:`manifest_broker.cluster`).
        deep: Read every value once (corrupt chunks) of each dataset of at most this
            many logical bytes (a larger one is refused unread, ``too_large_to_read``):
            every file is opened, whatever the cache holds (its findings are cached).

    Returns:
        A :class:`ProbeResult` whose table follows :data:`PROBE_SCHEMA`.
    """
    started = time.perf_counter()
    base_real = os.path.realpath(base_dir)
    files = _located_files(locators, base_real)
    requested = files.explode("dataset")
    keys = ["path", *_STAT, "dataset"]

    cache_file = _cache_path(cache_dir, base_real) if cache_dir else None
    cached = _read_cache(cache_file)
    located_ok = requested.filter(pl.col("loc_status") == "ok")
    hits = located_ok.join(cached.clear() if deep is not None else cached, on=keys, how="inner")
    to_open = (
        located_ok.join(hits.select(keys), on=keys, how="anti").group_by("path", *_STAT).agg(pl.col("dataset").unique())
    )
    # Each file is opened only as the very file located here (its identity at read time).
    tasks: list[_Task] = [
        (row["path"], row["dataset"], Identity(*(row[c] for c in _STAT)))
        for row in to_open.select("path", "dataset", *_STAT).iter_rows(named=True)
    ]
    opened = _run_probes(base_real, tasks, workers or os.cpu_count() or 1, progress, cluster, deep)
    fresh = _fresh_rows(opened, files)
    # One file may be named several ways (sub/f.h5, ./sub//f.h5, a symlink inside the
    # base directory): one description per resolved path and dataset, so that each
    # manifest row joins exactly one.
    results = pl.concat([hits.select(_CACHED), fresh]).unique(["path", "dataset"], keep="first")
    cache_error = _write_cache(cache_file, cached, fresh) if cache_file and tasks else None

    table = (
        requested.join(results.drop(_STAT), on=["path", "dataset"], how="left")
        .with_columns(
            pl.when(pl.col("loc_status") != "ok")
            .then(pl.col("loc_status"))
            .otherwise(pl.col("file_status"))
            .alias("file_status"),
            pl.when(pl.col("loc_status") != "ok")
            .then(pl.col("loc_message"))
            .otherwise(pl.col("file_message"))
            .alias("file_message"),
            pl.when(pl.col("loc_status") != "ok")
            .then(pl.lit("skipped"))
            .otherwise(pl.col("dataset_status"))
            .alias("dataset_status"),
        )
        .select(PROBE_SCHEMA.names)
        .sort("file", "dataset")
        .to_arrow()
        .cast(PROBE_SCHEMA)
    )
    return ProbeResult(
        table, files=files.height, opened=len(tasks), seconds=time.perf_counter() - started, cache_error=cache_error
    )
