"""The Iceberg side: a pyiceberg ``SqlCatalog`` holding ``<ns>.reflectivity`` (one row
per reduced file) and ``<ns>.runs`` (one row per run), partitioned by run_number.

Embedded by default (``<lake>/catalog.db`` + ``<lake>/warehouse``); or a shared
catalog (``postgresql://...`` with a warehouse path every writer sees), where
several processes or hosts commit concurrently: a commit conflict is retried from
a fresh table load, never lost and never duplicated.

A run is written all or nothing. pyiceberg commits one table at a time, so the
rows of one packaging carry a ``package_id`` in both tables; if the second commit
fails, the first table's rows of that run are put back as they were, and a
process killed between the two commits leaves a mismatch that ``check_lake``
finds and the next packaging of the run (or ``repair_lake``) mends.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from manifest_broker import __version__
from manifest_broker.errors import BrokerError
from manifest_broker.processes import interrupt_deferred
from manifest_broker.tnr.package import RunPackage
from manifest_broker.tnr.schema import TABLES, iceberg_schema, partition_spec

DEFAULT_NAMESPACE = "tnr"
# Snapshots kept per table after a commit: the current one and the one before it
# (an overwrite is a delete snapshot + an append snapshot), so the warehouse holds
# about one copy of the live data. `broker tnr maintain --keep N` keeps more.
DEFAULT_KEEP_SNAPSHOTS = 2
COMMIT_ATTEMPTS = 12
TABLE_PROPERTIES = {
    "manifest-broker.packager-version": __version__,
    # pyiceberg deletes metadata files beyond the last few itself.
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "4",
    # Merge small manifests so a table's metadata does not grow with every commit.
    "commit.manifest-merge.enabled": "true",
}


class LakeError(BrokerError, RuntimeError):
    """A lake that cannot be used or written; the message names the lake."""


@dataclass(frozen=True)
class Lake:
    """Where the catalog and the warehouse are."""

    uri: str  # SQLAlchemy URL of the catalog database
    warehouse: str  # file:// URL
    name: str  # what messages call it

    @property
    def embedded_path(self) -> Path | None:
        """The lake directory of an embedded (SQLite) lake."""
        if self.uri.startswith("sqlite:///"):
            return Path(self.uri.removeprefix("sqlite:///")).parent
        return None


def locate_lake(lake: str | Path, warehouse: str | Path | None = None) -> Lake:
    """A lake directory (embedded SQLite catalog), or a catalog URI plus a warehouse.

    Raises:
        LakeError: for a URI without ``--warehouse`` or an unsupported scheme.
    """
    text = str(lake)
    if "://" not in text:
        root = Path(text).expanduser().resolve()
        where = Path(warehouse).resolve() if warehouse else root / "warehouse"
        return Lake(f"sqlite:///{root / 'catalog.db'}", f"file://{where}", str(root))
    scheme = text.split("://", 1)[0]
    if scheme not in ("postgresql", "postgresql+psycopg", "sqlite"):
        raise LakeError(f"unsupported catalog URI {text!r}: use a lake directory, sqlite:///... or postgresql://...")
    if warehouse is None:
        raise LakeError(f"{text}: a catalog URI needs --warehouse (a path every writer can reach)", where=text)
    uri = text.replace("postgresql://", "postgresql+psycopg://", 1) if scheme == "postgresql" else text
    import sqlalchemy as sa

    return Lake(
        uri, f"file://{Path(warehouse).expanduser().resolve()}", sa.make_url(text).render_as_string(hide_password=True)
    )


def catalog(lake: Lake | str | Path, *, create: bool = True) -> Any:
    """The pyiceberg ``SqlCatalog`` of a lake.

    Args:
        create: False for commands that only read: a lake that does not exist is
            an error instead of being created.

    Raises:
        LakeError: when ``create`` is False and an embedded lake has no catalog.
    """
    from pyiceberg.catalog.sql import SqlCatalog

    location = lake if isinstance(lake, Lake) else locate_lake(lake)
    root = location.embedded_path
    if root is not None:
        if not create and not (root / "catalog.db").is_file():
            raise LakeError(
                f"{location.name}: no lake here (no catalog.db); package a run into it first", where=location.name
            )
        if create:
            root.mkdir(parents=True, exist_ok=True)
    if create:
        Path(location.warehouse.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    from sqlalchemy.exc import DBAPIError

    try:
        return SqlCatalog("lake", uri=location.uri, warehouse=location.warehouse)
    except DBAPIError:
        # Two writers creating a new catalog's tables at once: one loses the race,
        # and the tables are there for it now.
        time.sleep(0.1 + random.random() * 0.2)
        try:
            return SqlCatalog("lake", uri=location.uri, warehouse=location.warehouse)
        except DBAPIError as exc:
            raise LakeError(f"{location.name}: cannot open the catalog ({exc.orig})", where=location.name) from exc


def _load(cat: Any, identifier: str) -> Any:
    """``cat.load_table``, again when the metadata file it points at is gone: a
    concurrent writer committed and pyiceberg deleted the old metadata file between
    reading the catalog's pointer and opening the file."""
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            return cat.load_table(identifier)
        except FileNotFoundError:
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
            time.sleep(0.01 * (1 + random.random()))
    raise AssertionError("unreachable")


def _run_filter(run_number: int) -> Any:
    from pyiceberg.expressions import EqualTo, Reference
    from pyiceberg.expressions.literals import literal

    return EqualTo(term=Reference("run_number"), value=literal(run_number))


def _runs_filter(run_numbers: Iterable[int]) -> Any:
    from pyiceberg.expressions import In, Reference
    from pyiceberg.expressions.literals import literal

    numbers = sorted(set(run_numbers))
    if len(numbers) == 1:
        return _run_filter(numbers[0])
    return In(Reference("run_number"), literals={literal(n) for n in numbers})  # type: ignore[call-arg]


def _retrying(action: Callable[[], Any], what: str) -> Any:
    """Run ``action`` until it commits, each time from a fresh table load.

    pyiceberg retries a lost commit itself; what reaches here is a conflict it
    could not rebase (another writer committed first, or expired the snapshot this
    attempt started from, whose files may be gone mid-read) or a busy SQLite
    catalog: retried with exponential backoff and jitter. ``action`` must reload
    the table itself.
    """
    from pyiceberg.exceptions import CommitFailedException, ValidationException
    from sqlalchemy.exc import OperationalError

    for attempt in range(COMMIT_ATTEMPTS):
        try:
            return action()
        except (CommitFailedException, ValidationException, OperationalError, FileNotFoundError) as exc:
            if isinstance(exc, OperationalError) and "locked" not in str(exc):
                raise
            if attempt == COMMIT_ATTEMPTS - 1:
                raise LakeError(
                    f"{what}: still conflicting after {COMMIT_ATTEMPTS} attempts ({exc})", where=what
                ) from exc
            time.sleep(min(2.0, 0.02 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def ensure_table(cat: Any, namespace: str, name: str) -> Any:
    """Load ``<namespace>.<name>``, creating it from its declaration, or adding the
    declared fields it lacks (a table made by an older packager)."""
    from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError, TableAlreadyExistsError

    identifier = f"{namespace}.{name}"
    schema = iceberg_schema(TABLES[name])
    from sqlalchemy.exc import IntegrityError

    try:
        cat.create_namespace_if_not_exists(namespace)
    except (NamespaceAlreadyExistsError, IntegrityError):  # created by a concurrent writer just now
        pass
    try:
        table = _load(cat, identifier)
    except NoSuchTableError:
        try:
            return cat.create_table(
                identifier, schema=schema, partition_spec=partition_spec(schema), properties=TABLE_PROPERTIES
            )
        except TableAlreadyExistsError:
            table = _load(cat, identifier)
    missing = [f.name for f in schema.fields if f.name not in table.schema().column_names]
    if missing:

        def evolve() -> None:
            fresh = _load(cat, identifier)
            with fresh.update_schema() as update:
                update.union_by_name(schema)

        _retrying(evolve, f"{identifier}: adding fields {', '.join(missing)}")
        table = _load(cat, identifier)
    return table


def _conformed(table: Any, data: pa.Table) -> pa.Table:
    """``data`` in the table's own Arrow schema (its field ids), matched by name."""
    from manifest_broker.tnr.schema import conform

    return conform(data, table.schema().as_arrow())


def _snapshot_files(io: Any, snapshot: Any, cache: dict[str, set[str]]) -> set[str]:
    """Every file a snapshot reads: its manifest list, manifests and live data files."""
    files = {snapshot.manifest_list}
    for manifest in snapshot.manifests(io):
        files.add(manifest.manifest_path)
        if manifest.manifest_path not in cache:
            cache[manifest.manifest_path] = {
                e.data_file.file_path for e in manifest.fetch_manifest_entry(io, discard_deleted=True)
            }
        files |= cache[manifest.manifest_path]
    return files


def _write_data_file(table: Any, rows: pa.Table, run_number: int) -> str:
    """Write one run's rows (already in the table's Arrow schema, its field ids) as
    one Parquet data file in the table's location, once: a commit retried after a
    conflict registers the same file again."""
    import uuid

    import pyarrow.parquet as pq

    location = f"{table.metadata.location}/data/run_number={run_number}/{uuid.uuid4().hex}.parquet"
    local = Path(location.removeprefix("file://"))
    local.parent.mkdir(parents=True, exist_ok=True)
    # zstd level 1: most of the size gain of zstd at a fraction of its time. No
    # dictionary for the float lists: pyarrow would try one, find no repeats and
    # fall back (5x the write time, and a larger file).
    strings = [f.name for f in rows.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    pq.write_table(rows, local, compression="zstd", compression_level=1, use_dictionary=strings)
    return location


def _replace_runs(cat: Any, table: Any, rows: dict[int, pa.Table]) -> int | None:
    """Replace the rows of some runs in one commit (delete them, add one data file
    per run), retried on conflict from a fresh table load.

    ``rows`` (by run number) are already in ``table``'s Arrow schema (see
    :func:`_conformed`). Each run's rows go into one Parquet file written once by
    pyarrow and registered with pyiceberg's ``add_files`` (partition and statistics
    come from its footer); the delete drops the runs' previous files whole
    (identity partition). Files whose commit never landed are deleted.

    Returns:
        The id of the snapshot the commit replaced (None for an empty table).
    """
    identifier = ".".join(table.name())
    paths = [_write_data_file(table, data, number) for number, data in rows.items() if data.num_rows]

    def attempt() -> int | None:
        table = _load(cat, identifier)
        base = table.current_snapshot()
        with warnings.catch_warnings():
            # A first packaging has nothing to delete; pyiceberg warns about that.
            warnings.filterwarnings("ignore", "Delete operation did not match any records")
            with table.transaction() as transaction:
                transaction.delete(_runs_filter(rows))
                if paths:
                    transaction.add_files(paths, check_duplicate_files=False)
        return base.snapshot_id if base else None

    from pyiceberg.exceptions import CommitFailedException, ValidationException

    try:
        snapshot: int | None = _retrying(attempt, identifier)
        return snapshot
    except (LakeError, CommitFailedException, ValidationException):
        # These say the commit did not land; after any other error the outcome is
        # unknown and the files may be referenced, so they stay.
        io = _load(cat, identifier).io
        for path in paths:
            io.delete(path)
        raise


def _restore_runs(cat: Any, identifier: str, run_numbers: list[int], snapshot_id: int | None) -> None:
    """Put some runs' rows back as they were at ``snapshot_id`` (none: remove them)."""
    table = _load(cat, identifier)
    empty = table.schema().as_arrow().empty_table()
    if snapshot_id is None:
        _replace_runs(cat, table, dict.fromkeys(run_numbers, empty))
        return
    found = _conformed(table, table.scan(row_filter=_runs_filter(run_numbers), snapshot_id=snapshot_id).to_arrow())
    numbers = found["run_number"]
    _replace_runs(cat, table, {n: found.filter(pc.equal(numbers, n)) for n in run_numbers})


@dataclass
class WriteResult:
    """What one packaging did to the lake."""

    repaired: str | None = None  # a half-written earlier packaging this one replaced
    expired_snapshots: int = 0
    deleted_files: int = 0
    deleted_bytes: int = 0


def write_run(
    lake: Lake | str | Path,
    package: RunPackage,
    namespace: str = DEFAULT_NAMESPACE,
    *,
    keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS,
    between_commits: Callable[[], None] | None = None,
) -> WriteResult:
    """Replace the run's rows in both tables, all or nothing (:func:`write_runs`)."""
    return write_runs(lake, [package], namespace, keep_snapshots=keep_snapshots, between_commits=between_commits)


def write_runs(
    lake: Lake | str | Path,
    packages: list[RunPackage],
    namespace: str = DEFAULT_NAMESPACE,
    *,
    keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS,
    between_commits: Callable[[], None] | None = None,
) -> WriteResult:
    """Replace some runs' rows in both tables, all or nothing: one commit per table
    for all of them (a campaign pays a commit's fixed cost once per batch, not per run).

    Both tables are created or evolved and the data cast to them before the first
    commit. ``reflectivity`` is committed first, ``runs`` last (a run listed in
    ``runs`` is complete); if the ``runs`` commit fails, the runs' reflectivity
    rows are put back as they were and the error is raised. Afterwards snapshots
    beyond ``keep_snapshots`` are expired and the files only they read deleted.

    Args:
        packages: Runs of distinct run numbers.
        between_commits: Called between the two commits (fault-injection tests).

    Raises:
        LakeError: with both tables as they were before the call.
    """
    from sqlalchemy.exc import SQLAlchemyError

    name = lake.name if isinstance(lake, Lake) else str(lake)
    numbers = [p.run_number for p in packages]
    try:
        return _write_runs(lake, packages, namespace, keep_snapshots, between_commits)
    except SQLAlchemyError as exc:  # the catalog database itself failed (disk, server, permissions)
        raise LakeError(
            f"{name}: catalog database error ({str(getattr(exc, 'orig', exc)).splitlines()[0]})", where=name
        ) from exc
    except OSError as exc:  # the warehouse refused a data or metadata file (a full disk, permissions)
        import os

        reason = os.strerror(exc.errno) if exc.errno else (str(exc).splitlines() or [type(exc).__name__])[0]
        which = f"run {numbers[0]}" if len(numbers) == 1 else f"runs {', '.join(map(str, numbers))}"
        raise LakeError(
            f"{name}: {reason} while writing {which}; nothing was committed, the tables are as they were", where=name
        ) from exc


def _write_runs(
    lake: Lake | str | Path,
    packages: list[RunPackage],
    namespace: str,
    keep_snapshots: int,
    between_commits: Callable[[], None] | None,
) -> WriteResult:
    cat = catalog(lake)
    tables = {name: ensure_table(cat, namespace, name) for name in ("reflectivity", "runs")}
    numbers = [p.run_number for p in packages]
    # Cast everything before the first commit: a value that does not fit fails here.
    rows = {
        "reflectivity": {p.run_number: _conformed(tables["reflectivity"], p.reflectivity) for p in packages},
        "runs": {p.run_number: _conformed(tables["runs"], p.run) for p in packages},
    }
    result = WriteResult()
    problems = check_lake(cat, namespace, run_numbers=numbers)
    if problems:
        result.repaired = "; ".join(problem.describe() for problem in problems)
    refl, runs = f"{namespace}.reflectivity", f"{namespace}.runs"
    # Both commits, or neither: a Ctrl-C in between would leave the tables disagreeing.
    with interrupt_deferred():
        previous = _replace_runs(cat, tables["reflectivity"], rows["reflectivity"])
        if between_commits:
            between_commits()
        try:
            _replace_runs(cat, tables["runs"], rows["runs"])
        except Exception as exc:
            try:
                _restore_runs(cat, refl, numbers, previous)
            except Exception as restore_exc:  # the catalog itself is gone: say what to run
                raise LakeError(
                    f"{runs}: commit failed ({exc}); putting back {refl} also failed ({restore_exc}): "
                    f"run `broker tnr check --repair` once the catalog answers",
                    where=runs,
                ) from exc
            raise LakeError(
                f"{runs}: commit failed ({exc}); {refl} was put back, the lake is as before", where=runs
            ) from exc
    for name in ("reflectivity", "runs"):
        expired, files, size = expire_snapshots(cat, f"{namespace}.{name}", keep_snapshots)
        result.expired_snapshots += expired
        result.deleted_files += files
        result.deleted_bytes += size
    return result


def expire_snapshots(cat: Any, identifier: str, keep: int) -> tuple[int, int, int]:
    """Expire all but the newest ``keep`` snapshots (never the current one) with
    pyiceberg's ``expire_snapshots``, then delete the files that only they read.

    Files are found from the snapshots themselves (not by listing the warehouse),
    so files a concurrent writer has written but not yet committed are never
    touched.

    Returns:
        (snapshots expired, files deleted, bytes deleted).
    """
    keep = max(keep, 1)

    def attempt() -> tuple[int, set[str], Any]:
        table = _load(cat, identifier)
        current = table.current_snapshot()
        snapshots = sorted(table.metadata.snapshots, key=lambda s: (s.sequence_number or 0, s.timestamp_ms))
        old = [s for s in snapshots[:-keep] if current is None or s.snapshot_id != current.snapshot_id]
        if not old:
            return 0, set(), table
        cache: dict[str, set[str]] = {}
        kept = set().union(*(_snapshot_files(table.io, s, cache) for s in snapshots if s not in old))
        gone = set().union(*(_snapshot_files(table.io, s, cache) for s in old)) - kept
        try:
            table.maintenance.expire_snapshots().by_ids([s.snapshot_id for s in old]).commit()
        except ValueError as exc:  # a concurrent maintainer expired some of them first
            from pyiceberg.exceptions import CommitFailedException

            raise CommitFailedException(str(exc)[:200]) from exc
        return len(old), gone, table

    expired, gone, table = _retrying(attempt, f"{identifier}: expiring snapshots")
    size = 0
    for path in gone:
        local = Path(path.removeprefix("file://"))
        size += local.stat().st_size if local.exists() else 0
        table.io.delete(path)
    return expired, len(gone), size


@dataclass
class RunMismatch:
    """A run whose rows in reflectivity and runs come from different packagings."""

    run_number: int
    reflectivity_ids: list[str]
    runs_ids: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"run {self.run_number}: reflectivity has packaging(s) {', '.join(self.reflectivity_ids) or 'none'}, "
            f"runs has {', '.join(self.runs_ids) or 'none'} (an interrupted packaging)"
        )


def _package_ids(cat: Any, identifier: str, run_numbers: list[int] | None) -> dict[int, set[str]]:
    from pyiceberg.exceptions import NoSuchTableError
    from pyiceberg.expressions import AlwaysTrue

    def read() -> pa.Table | None:
        try:
            table = _load(cat, identifier)
        except NoSuchTableError:
            return None
        if "package_id" not in table.schema().column_names:
            return None
        return table.scan(
            row_filter=_runs_filter(run_numbers) if run_numbers else AlwaysTrue(),
            selected_fields=("run_number", "package_id"),
        ).to_arrow()

    # A concurrent writer may expire the snapshot being read (its files then vanish):
    # read again from a fresh load.
    rows = _retrying(read, f"{identifier}: reading package ids")
    if rows is None:
        return {}
    found: dict[int, set[str]] = {}
    for number, package_id in zip(rows["run_number"].to_pylist(), rows["package_id"].to_pylist()):
        found.setdefault(number, set()).add(package_id)
    return found


def check_lake(
    cat: Any, namespace: str = DEFAULT_NAMESPACE, *, run_numbers: list[int] | None = None
) -> list[RunMismatch]:
    """Runs (all, or these) whose two tables disagree (a packaging killed between its commits)."""
    refl = _package_ids(cat, f"{namespace}.reflectivity", run_numbers)
    runs = _package_ids(cat, f"{namespace}.runs", run_numbers)
    return [
        RunMismatch(number, sorted(refl.get(number, ())), sorted(runs.get(number, ())))
        for number in sorted(set(refl) | set(runs))
        if refl.get(number, set()) != runs.get(number, set()) or len(runs.get(number, ())) > 1
    ]


def repair_lake(cat: Any, namespace: str, mismatches: Iterable[RunMismatch]) -> list[str]:
    """Make each mismatched run consistent without its inputs: its reflectivity rows
    go back to the newest snapshot whose rows carry the runs table's packaging; when
    no snapshot has them any more, the run is removed from both tables (package it
    again). Returns what was done, one line per run."""
    refl, runs = f"{namespace}.reflectivity", f"{namespace}.runs"
    done = []
    for mismatch in mismatches:
        table = _load(cat, refl)
        target = set(mismatch.runs_ids)
        source = None
        if len(target) == 1:
            for snapshot in sorted(table.metadata.snapshots, key=lambda s: s.sequence_number or 0, reverse=True):
                rows = table.scan(
                    row_filter=_run_filter(mismatch.run_number),
                    snapshot_id=snapshot.snapshot_id,
                    selected_fields=("package_id",),
                ).to_arrow()
                if rows.num_rows and set(rows["package_id"].to_pylist()) == target:
                    source = snapshot.snapshot_id
                    break
        if source is not None:
            _restore_runs(cat, refl, [mismatch.run_number], source)
            done.append(f"run {mismatch.run_number}: reflectivity put back to packaging {next(iter(target))}")
        else:
            _restore_runs(cat, refl, [mismatch.run_number], None)
            _restore_runs(cat, runs, [mismatch.run_number], None)
            done.append(
                f"run {mismatch.run_number}: no snapshot holds a complete packaging; removed from both tables, package it again"
            )
    return done


class Maintenance(NamedTuple):
    """What ``maintain`` did to one table."""

    expired: int  # snapshots expired
    files: int  # files only they read, deleted
    bytes: int
    orphans: int  # files no metadata of the table references, deleted
    orphan_bytes: int


def require_namespace(cat: Any, namespace: str, lake_name: str) -> None:
    """Refuse a namespace the lake does not have, naming the ones it has.

    Raises:
        LakeError: for a missing namespace.
    """
    have = sorted(".".join(n) for n in cat.list_namespaces())
    if namespace not in have:
        listed = ", ".join(have) or "none yet"
        raise LakeError(f"{lake_name}: no namespace {namespace!r} (namespaces: {listed})", where=lake_name)


def referenced_files(table: Any) -> set[str]:
    """Every file the table's metadata can reach: the current and logged metadata
    files, and of every snapshot its manifest list, manifests and data files."""
    files = {table.metadata_location, *(entry.metadata_file for entry in table.metadata.metadata_log)}
    cache: dict[str, set[str]] = {}
    for snapshot in table.metadata.snapshots:
        files |= _snapshot_files(table.io, snapshot, cache)
        for manifest in snapshot.manifests(table.io):  # deleted entries too: an older snapshot reads them
            files |= {e.data_file.file_path for e in manifest.fetch_manifest_entry(table.io, discard_deleted=False)}
    return files


def remove_orphan_files(cat: Any, identifier: str, older_than: timedelta) -> tuple[int, int]:
    """Delete the files under the table's location that its metadata does not
    reference and that are older than ``older_than``, as Iceberg engines'
    ``remove_orphan_files`` does: a packaging killed before its commit leaves its
    data and manifest files there. The age is what keeps this safe beside live
    writers: a packaging commits the files it writes within seconds, so no file of
    a running packaging is that old.

    Returns:
        (files deleted, bytes deleted).
    """
    root = Path(_load(cat, identifier).location().removeprefix("file://"))
    if not root.is_dir():
        return 0, 0

    cutoff = time.time() - older_than.total_seconds()
    candidates: dict[Path, int] = {}
    for path in root.rglob("*"):
        try:
            st = path.stat()
        except FileNotFoundError:  # removed by a concurrent maintainer
            continue
        if path.is_file() and st.st_mtime < cutoff:
            candidates[path] = st.st_size
    # References read after the listing: a commit in between may have made a listed file live.
    live = {Path(f.removeprefix("file://")) for f in referenced_files(_load(cat, identifier))} if candidates else set()
    orphans = {p: n for p, n in candidates.items() if p not in live}
    for path in orphans:
        path.unlink(missing_ok=True)
    return len(orphans), sum(orphans.values())


def maintain(
    lake: Lake | str | Path,
    namespace: str = DEFAULT_NAMESPACE,
    keep: int = DEFAULT_KEEP_SNAPSHOTS,
    *,
    orphan_age_hours: float = 24.0,
) -> dict[str, Maintenance]:
    """Expire snapshots, delete unread files and remove orphan files in every table
    of the namespace.

    Raises:
        LakeError: when the lake or the namespace does not exist (nothing is created).
    """
    location = lake if isinstance(lake, Lake) else locate_lake(lake)
    cat = catalog(location, create=False)
    require_namespace(cat, namespace, location.name)
    done = {}
    for parts in cat.list_tables(namespace):
        identifier = ".".join(parts)
        expired = expire_snapshots(cat, identifier, keep)
        orphans = remove_orphan_files(cat, identifier, timedelta(hours=orphan_age_hours))
        done[identifier] = Maintenance(*expired, *orphans)
    return done


def scan(
    lake: Lake | str | Path,
    table: str,
    namespace: str = DEFAULT_NAMESPACE,
    run: int | None = None,
    columns: tuple[str, ...] = ("*",),
) -> pa.Table:
    """Read a table (optionally one run, optionally some columns) as Arrow through a pyiceberg scan.

    Raises:
        LakeError: when the lake or the table does not exist (nothing is created).
    """
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
    from pyiceberg.expressions import AlwaysTrue

    cat = catalog(lake, create=False)
    try:
        t = _load(cat, f"{namespace}.{table}")
    except (NoSuchTableError, NoSuchNamespaceError) as exc:
        raise LakeError(f"{lake}: no table {namespace}.{table}; package a run into it first", where=lake) from exc
    return t.scan(row_filter=_run_filter(run) if run is not None else AlwaysTrue(), selected_fields=columns).to_arrow()
