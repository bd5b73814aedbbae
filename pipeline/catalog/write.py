"""Write a node plan straight into Tiled's catalog database, in one transaction.

Rows for every table are computed column-wise and sent in bulk (executemany on
SQLite, COPY on PostgreSQL). Tiled's row-at-a-time triggers (closure table,
full-text index, association guards) are switched off for the bulk rows and their
work is redone set-based for exactly the new rows, inside the same transaction:
a failure or a kill leaves the catalog, triggers included, as it was.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from manifest_broker import queries
from manifest_broker.boundary import printable
from manifest_broker.cache import replace_atomically, tiled_cache_file
from manifest_broker.catalog.database import (
    SUPPORTED_REVISIONS,
    CatalogError,
    CatalogLocation,
    check_schema,
    child_id,
    engine,
    locate,
)
from manifest_broker.catalog.locks import writer_lock
from manifest_broker.catalog.plan import FILE_IDENTITY, HDF5_MIMETYPE, NodePlan, only_new_locators
from manifest_broker.catalog.probe import file_identity
from manifest_broker.catalog.target import Target, WriteResult
from manifest_broker.errors import BrokerError
from manifest_broker.progress import Progress

if TYPE_CHECKING:
    from manifest_broker.catalog.contract import ContractReport

BATCH_ROWS = 50_000  # rows handed to the driver at a time: bounds memory at any size
# How long the SQLite writer waits for a lock held by someone other than a broker
# (e.g. a Tiled server registering a node); brokers queue on the writer lock.
WRITER_BUSY_SECONDS = 60.0
# Bump when the catalog template (see init_catalog) changes meaning.
TEMPLATE_VERSION = 1


class IngestError(BrokerError, RuntimeError):
    """The catalog was left unchanged; the message says why."""


def init_catalog(location: CatalogLocation, *, template_dir: Path | None = None) -> bool:
    """Create and stamp a catalog the way ``tiled catalog init`` does, if it has no tables.

    A catalog whose initialisation was cut short (a kill or a full disk before the
    alembic stamp) is completed: on SQLite, where Tiled creates its tables one by one,
    a catalog of Tiled's tables only and no node but the root is rebuilt; on
    PostgreSQL, where the tables come in one transaction, the stamp is added. Callers
    hold the writer lock (:func:`manifest_broker.catalog.locks.writer_lock`), so two brokers
    never initialise one catalog together. SQLite catalogs are switched to WAL.

    Args:
        location: The catalog.
        template_dir: Where a new SQLite catalog made by Tiled is kept as a template
            (by Tiled version): later new catalogs are copies of it, with the root
            node's times set to now, instead of importing Tiled's catalog modules
            and running its migrations (about 1.5 s). ``None``: always Tiled's way.

    Returns:
        True when the catalog was created (or completed) now.

    Raises:
        CatalogError: for a database that is not a Tiled catalog.
    """
    if location.sqlite_path is not None:
        location.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    tables = _table_names(location)
    if "alembic_version" in tables:
        # An initialised catalog: the write transaction checks its revision
        # (check_schema) without Tiled's catalog modules, which take seconds to import.
        return False
    fresh_sqlite = not tables and location.sqlite_path is not None
    if fresh_sqlite and template_dir is not None and _copy_template(location, template_dir):
        return True
    if fresh_sqlite and location.sqlite_path is not None and not location.sqlite_path.exists():
        return _initialise_aside(location, template_dir)
    return _initialise(location, tables)


def _initialise_aside(location: CatalogLocation, template_dir: Path | None) -> bool:
    """A new SQLite catalog made by Tiled in a file beside it, placed with one rename
    once stamped: a kill, a full disk or Ctrl-C leaves no catalog file at all (never
    an empty or half-made one that a re-run would have to refuse)."""
    assert location.sqlite_path is not None
    target = location.sqlite_path
    staging = target.with_name(f".{target.name}.{os.getpid()}.creating")
    try:
        aside = locate(staging)
        _initialise(aside, set(), named=location)
        if template_dir is not None:
            _save_template(aside, template_dir)
        os.replace(staging, target)
    finally:
        for suffix in ("", "-journal", "-wal", "-shm"):
            staging.with_name(staging.name + suffix).unlink(missing_ok=True)
    return True


def _initialise(location: CatalogLocation, tables: set[str], named: CatalogLocation | None = None) -> bool:
    """Tiled's own initialisation of ``location`` (or the completion of one cut short);
    errors name ``named``, the catalog the user gave, when it is made aside."""
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine
    from tiled.alembic_utils import UninitializedDatabase, check_database, stamp_head
    from tiled.catalog.alembic_constants import ALEMBIC_DIR, ALEMBIC_INI_TEMPLATE_PATH
    from tiled.catalog.core import ALL_REVISIONS, REQUIRED_REVISION, initialize_database

    if tables:  # Tiled's tables without its stamp: initialisation cut short
        if not _complete_partial(location, tables):
            return _stamp(location, stamp_head, ALEMBIC_INI_TEMPLATE_PATH, ALEMBIC_DIR)

    async def setup() -> bool:
        eng = create_async_engine(location.tiled_uri)
        try:
            await check_database(eng, REQUIRED_REVISION, ALL_REVISIONS)
            return False
        except UninitializedDatabase:
            await initialize_database(eng)
            return True
        finally:
            await eng.dispose()

    try:
        created = asyncio.run(setup())
    except Exception as exc:  # tiled raises several types for a database it does not know
        reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        shown = (named or location).redacted()
        raise CatalogError(f"cannot initialise or open {shown}: {reason}; nothing was written", where=shown) from exc
    if created:
        _stamp(location, stamp_head, ALEMBIC_INI_TEMPLATE_PATH, ALEMBIC_DIR)
    return created


def _template_file(template_dir: Path) -> Path:
    return tiled_cache_file(template_dir, f"catalog-template-v{TEMPLATE_VERSION}", ".db")


def _save_template(location: CatalogLocation, template_dir: Path) -> None:
    """Keep a copy of the catalog Tiled just initialised (nothing written to it yet).
    A read-only or full cache only means the next new catalog is made by Tiled again."""
    import sqlite3

    assert location.sqlite_path is not None
    source_path = location.sqlite_path

    def copy_into(partial: Path) -> None:
        with (
            closing(sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)) as source,
            closing(sqlite3.connect(partial, isolation_level=None)) as copy,
        ):
            source.backup(copy)
            copy.execute(queries.load("catalog/journal_delete", "sqlite"))

    replace_atomically(_template_file(template_dir), copy_into, (sqlite3.Error,))


def _copy_template(location: CatalogLocation, template_dir: Path) -> bool:
    """Make the new catalog a copy of the template, if there is a sound one: a Tiled
    catalog at a supported revision with no node but the root. Placed with one
    rename, so a kill leaves no catalog or a complete one."""
    import sqlite3

    assert location.sqlite_path is not None
    template = _template_file(template_dir)
    if not template.is_file():
        return False

    def copy_from_template(partial: Path) -> None:
        with (
            closing(sqlite3.connect(f"file:{template}?mode=ro", uri=True)) as source,
            closing(sqlite3.connect(partial, isolation_level=None)) as copy,
        ):
            source.backup(copy)
            revision = copy.execute(queries.load("catalog/schema_revision")).fetchall()
            others = copy.execute(queries.load("catalog/user_nodes")).fetchone()
            found = [r[0] for r in revision]
            if len(found) != 1 or found[0] not in SUPPORTED_REVISIONS or others != (0,):
                raise sqlite3.DatabaseError("not a sound template")
            copy.execute(queries.load("catalog/root_created_now", "sqlite"))
            copy.execute(queries.load("catalog/journal_wal", "sqlite"))

    # No usable template: Tiled initialises this catalog.
    return replace_atomically(location.sqlite_path, copy_from_template, (sqlite3.Error,)) is None


def _stamp(location: CatalogLocation, stamp_head: Callable[..., Any], ini: Any, directory: Any) -> bool:
    stamp_head(ini, directory, location.tiled_uri)
    use_wal(location)
    return True


def use_wal(location: CatalogLocation) -> None:
    """Put a SQLite catalog in WAL mode (Tiled's own initialisation means to, but its
    ``PRAGMA journal_mode=WAL`` runs inside a transaction, where SQLite ignores it)."""
    if location.sqlite_path is None:
        return
    eng = engine(location)
    try:
        with eng.connect() as conn:
            conn.exec_driver_sql(queries.load("catalog/journal_wal", "sqlite"))
    finally:
        eng.dispose()


def _tiled_tables() -> set[str]:
    from tiled.catalog import orm  # noqa: F401  (registers the tables on Base.metadata)
    from tiled.catalog.core import Base
    from tiled.graph import orm as graph_orm  # noqa: F401

    return set(Base.metadata.tables) | {"alembic_version"}


def _complete_partial(location: CatalogLocation, tables: set[str]) -> bool:
    """Handle a database with tables but no alembic stamp.

    Returns:
        True when the caller should initialise from scratch (the partial tables were
        removed); False when only the stamp is missing.

    Raises:
        CatalogError: when the tables are not (only) Tiled's, or hold nodes.
    """
    known = _tiled_tables()
    foreign = {t for t in tables if t not in known and not t.startswith("metadata_fts5_")}
    if foreign:
        # Never create Tiled's tables inside somebody else's database.
        raise CatalogError(
            f"{location.redacted()} is not a Tiled catalog: it has tables but no alembic_version "
            f"(e.g. {sorted(foreign)[0]})",
            where=location.redacted(),
        )
    eng = engine(location)
    try:
        with eng.begin() as conn:
            if "nodes" in tables and conn.execute(sa.text(queries.load("catalog/user_nodes"))).scalar():
                raise CatalogError(
                    f"{location.redacted()} has Tiled's tables and nodes but no alembic_version; "
                    "stamp it with `tiled catalog` tools before writing to it",
                    where=location.redacted(),
                )
            if location.dialect == "postgresql":
                if tables >= {t for t in known if t != "alembic_version" and not t.startswith("metadata_fts5")}:
                    return False  # created in one transaction: only the stamp is missing
                raise CatalogError(
                    f"{location.redacted()} has part of Tiled's tables and no alembic_version; "
                    "it was not made by tiled's initialisation",
                    where=location.redacted(),
                )
            # SQLite: Tiled's DDL commits table by table; rebuild from nothing.
            for name in sorted(tables, key=lambda t: t != "metadata_fts5"):  # the FTS table takes its shadows
                conn.exec_driver_sql(queries.load("catalog/drop_table").format(table=queries.quote_identifier(name)))
    finally:
        eng.dispose()
    return True


def _table_names(location: CatalogLocation) -> set[str]:
    if location.sqlite_path is not None and not location.sqlite_path.exists():
        return set()
    eng = engine(location, readonly=location.dialect == "sqlite")
    try:
        with eng.connect() as conn:
            return {r[0] for r in conn.execute(sa.text(queries.load("catalog/table_names", location.dialect)))}
    except sa.exc.DatabaseError as exc:
        raise CatalogError(
            f"{location.redacted()} is not a database the broker can read ({exc.orig})", where=location.redacted()
        ) from exc
    finally:
        eng.dispose()


def _batches(rows: Iterable[Sequence[Any]], size: int = BATCH_ROWS) -> Iterable[list[Sequence[Any]]]:
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _bulk(conn: Connection, table: str, rows: Iterable[Sequence[Any]]) -> None:
    """Send rows to one table: executemany on SQLite, COPY on PostgreSQL."""
    dialect = conn.dialect.name
    statement = queries.load(f"write/insert_{table}", dialect)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        if dialect == "postgresql":
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            for batch in _batches(rows):
                cursor.executemany(statement, batch)
    finally:
        cursor.close()


def _rows(table: pa.Table, columns: list[str]) -> Iterable[tuple]:
    """Python rows of an Arrow table, converted one batch at a time."""
    for batch in table.select(columns).to_batches(BATCH_ROWS):
        yield from zip(*(c.to_pylist() for c in batch.columns))


def _reserve(conn: Connection, table: str, n: int, first_free: int | None) -> list[int]:
    if n == 0:
        return []
    if conn.dialect.name == "sqlite":
        assert first_free is not None
        return list(range(first_free, first_free + n))
    return [
        r[0] for r in conn.execute(sa.text(queries.load("write/reserve_ids", "postgresql")), {"table": table, "n": n})
    ]


def _set_based_closure_and_fulltext(conn: Connection, levels: list[list[int]]) -> None:
    dialect = conn.dialect.name
    for ids in levels:
        if not ids:
            continue
        params: dict[str, Any] = {"lo": ids[0], "hi": ids[-1]} if dialect == "sqlite" else {"ids": ids}
        conn.execute(sa.text(queries.load("write/closure_self", dialect)), params)
        conn.execute(sa.text(queries.load("write/closure_ancestors", dialect)), params)
        if dialect == "sqlite":
            conn.execute(sa.text(queries.load("write/fulltext", dialect)), params)


def _ensure_parent(conn: Connection, parent: str, result: WriteResult) -> int:
    node = 0
    walked: list[str] = []
    for segment in [s for s in parent.split("/") if s]:
        walked.append(segment)
        found = child_id(conn, node, segment)
        if found is not None:
            family = conn.execute(sa.text(queries.load("catalog/structure_family")), {"id": found}).scalar_one()
            if family != "container":
                raise IngestError(f"--parent {parent}: {'/'.join(walked)} is an {family}, not a container")
        if found is None:
            conn.execute(sa.text(queries.load("write/insert_container")), {"parent": node, "key": segment})
            found = child_id(conn, node, segment)
            result.created_containers += 1
        assert found is not None
        node = found
    return node


def _verify_files_unchanged(assets: pa.Table) -> None:
    """Files must still be the very files the probe saw: same resolved path, device,
    inode, ctime, mtime and size. A file that vanished, changed, or was swapped for
    another (also through a directory turned into a symlink, with size and mtime
    copied) since the check aborts the transaction."""
    problems = []
    for row in pl.DataFrame(assets.select(["path", *FILE_IDENTITY])).unique("path", maintain_order=True).to_dicts():
        now = file_identity(row["path"])
        if now is None:
            problems.append(f"{printable(row['path'])}: vanished after the check")
        elif now[0] != row["path"]:
            problems.append(
                f"{printable(row['path'])}: now resolves to {printable(now[0])} (a symlink appeared on its path)"
            )
        elif list(now[1:]) != [row[c] for c in FILE_IDENTITY]:
            problems.append(
                f"{printable(row['path'])}: changed or replaced after the check (size, times or inode differ)"
            )
        if len(problems) >= 5:
            break
    if problems:
        raise IngestError("files changed while ingesting; nothing was written: " + "; ".join(problems))


def write_plan(
    location: CatalogLocation,
    plan: NodePlan | Iterable[NodePlan],
    *,
    parent: str = "",
    update_metadata: bool = False,
    before_commit: Callable[[], None] | None = None,
    progress: Progress | None = None,
    parent_metadata: dict[str, Any] | None = None,
) -> WriteResult:
    """Write the plan's new nodes into the catalog in one transaction.

    ``plan`` may also be an iterable of plans (e.g. :func:`~manifest_broker.catalog.plan.plan_chunks`):
    each is made only when the previous one is written, so memory follows one chunk,
    and all of them are written in the same transaction.

    Existing Hamiltonians (same key, same huid) are kept; their missing artifacts
    are added. A Hamiltonian whose metadata differs is reported, and updated (with
    a revision row, as Tiled does) only when ``update_metadata`` is true.

    Args:
        before_commit: Called with the transaction still open, everything written
            (fault-injection tests kill the process there).
        progress: Told ``("writing rows", sent, total)`` as rows go out.
        parent_metadata: Keys set in the ``parent`` container's metadata in the same
            transaction (the dataset card), with a revision row when it changes.

    Raises:
        IngestError: for anything that stops the write; the catalog is unchanged.
        CatalogError: when the catalog is not a usable Tiled catalog.
    """
    with writer_lock(location):
        return _write_transaction(location, plan, parent, update_metadata, before_commit, progress, parent_metadata)


def _write_transaction(
    location: CatalogLocation,
    plan: NodePlan | Iterable[NodePlan],
    parent: str,
    update_metadata: bool,
    before_commit: Callable[[], None] | None,
    progress: Progress | None,
    parent_metadata: dict[str, Any] | None = None,
) -> WriteResult:
    started = time.perf_counter()
    result = WriteResult()
    eng = engine(location, busy_timeout=WRITER_BUSY_SECONDS)
    dialect = location.dialect
    try:
        with eng.connect() as conn:
            try:
                if dialect == "sqlite":
                    conn.exec_driver_sql(queries.load("catalog/journal_wal", "sqlite"))
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                check_schema(conn)
                if isinstance(plan, NodePlan):
                    written = _write(conn, plan, parent, update_metadata, result, progress, parent_metadata)
                else:  # planned chunk by chunk, each written as it comes, all in this transaction
                    parent_id = _ensure_parent(conn, parent, result)
                    if parent_metadata:
                        _update_parent_metadata(conn, parent_id, parent_metadata, result)
                    chunks = [_write_chunk(conn, chunk, parent_id, update_metadata, result, progress) for chunk in plan]
                    done = [assets for assets in chunks if assets is not None]
                    written = pa.concat_tables(done) if done else None
                if before_commit:
                    before_commit()
                # Last, as close to the commit as it gets: the files of the new arrays
                # are still the very files the probe saw.
                if written is not None:
                    _verify_files_unchanged(written)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
    except sa.exc.DBAPIError as exc:
        raise _database_failure(location, exc.orig or exc) from exc
    except eng.dialect.dbapi.Error as exc:  # type: ignore[union-attr]  # raised by the raw cursors (executemany, COPY)
        raise _database_failure(location, exc) from exc
    finally:
        eng.dispose()
    result.seconds = time.perf_counter() - started
    return result


def _database_failure(location: CatalogLocation, error: BaseException) -> IngestError:
    """One line saying why the database refused the run (which it rolled back)."""
    message = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if "locked" in message or "busy" in message:
        return IngestError(f"catalog {location.redacted()} is locked by another writer; nothing was written")
    if "readonly" in message or "read-only" in message:
        return IngestError(f"catalog {location.redacted()} is read-only; nothing was written")
    return IngestError(f"catalog {location.redacted()}: {message}; nothing was written")


def _write(
    conn: Connection,
    plan: NodePlan,
    parent: str,
    update_metadata: bool,
    result: WriteResult,
    progress: Progress | None = None,
    parent_metadata: dict[str, Any] | None = None,
) -> pa.Table | None:
    """The whole write, in the caller's transaction: what is already there, ids,
    triggers off, rows in bulk, triggers back.

    Returns:
        The assets (path and file identity) of the arrays written, for the re-check
        just before the commit; ``None`` when no array was added.
    """
    parent_id = _ensure_parent(conn, parent, result)
    if parent_metadata:
        _update_parent_metadata(conn, parent_id, parent_metadata, result)
    return _write_chunk(conn, plan, parent_id, update_metadata, result, progress)


def _write_chunk(
    conn: Connection,
    plan: NodePlan,
    parent_id: int,
    update_metadata: bool,
    result: WriteResult,
    progress: Progress | None,
) -> pa.Table | None:
    """One plan's new rows under an existing parent, in the caller's transaction;
    the assets written, or ``None``."""
    keep = _keep_existing_hamiltonians(conn, plan, parent_id, update_metadata, result)
    if update_metadata and result.updated_metadata:
        _refuse_other_files(conn, plan, parent_id, set(result.updated_metadata))
    new_hams = pl.DataFrame(plan.hamiltonians).filter(~pl.col("key").is_in(list(keep)))
    arrays = _missing_arrays(conn, pl.DataFrame(plan.arrays), parent_id, keep, result)
    if new_hams.height == 0 and arrays.height == 0:
        return None
    ids = _allocate_ids(conn, new_hams, arrays, pl.DataFrame(plan.assets), keep)
    triggers, bypass = _suspend_triggers(conn)
    _insert_rows(conn, plan, parent_id, new_hams, arrays, ids, bypass, progress)
    for _, sql in triggers:
        conn.exec_driver_sql(sql)
    result.created_hamiltonians += new_hams.height
    result.created_arrays += arrays.height
    return ids.assets.to_arrow()


def _update_parent_metadata(conn: Connection, parent_id: int, metadata: dict[str, Any], result: WriteResult) -> None:
    """Set ``metadata``'s keys in the parent container's metadata, keeping the old
    document as a revision (as Tiled's ``update_metadata`` does) when it changes."""
    if parent_id == 0:
        raise IngestError("the catalog's root keeps no dataset metadata: give --parent; nothing was written")
    current = conn.execute(sa.text(queries.load("catalog/node_metadata")), {"id": parent_id}).scalar_one()
    current = current if isinstance(current, dict) else json.loads(current or "{}")
    wanted = {**current, **metadata}
    if json.dumps(wanted, sort_keys=True) == json.dumps(current, sort_keys=True):
        return
    from manifest_broker.catalog.contract import METADATA_BYTES

    document = json.dumps(wanted)
    if len(document.encode()) > METADATA_BYTES:
        raise IngestError(
            f"the parent's metadata would be {len(document.encode()):,} bytes, over Tiled's "
            f"{METADATA_BYTES:,}-byte limit; nothing was written"
        )
    conn.execute(sa.text(queries.load("write/revision")), {"id": parent_id})
    conn.execute(
        sa.text(queries.load("write/update_metadata", conn.dialect.name)), {"id": parent_id, "metadata": document}
    )
    result.parent_metadata_updated = True


def _keep_existing_hamiltonians(
    conn: Connection, plan: NodePlan, parent_id: int, update_metadata: bool, result: WriteResult
) -> dict[str, int]:
    """Ids of planned Hamiltonians already under the parent with the same huid; a key
    taken by another huid or by a non-container stops the write. Metadata that
    differs is reported, or revised (only new Mode A locators, or ``update_metadata``)."""
    dialect = conn.dialect.name
    existing = pl.DataFrame(
        conn.execute(
            sa.text(queries.load("write/children", dialect)),
            {"parent": parent_id, "keys": _id_list(dialect, plan.hamiltonians["key"].to_pylist())},
        ).all(),
        schema={"id": pl.Int64, "key": pl.String, "structure_family": pl.String, "metadata": pl.Object},
        orient="row",
    )
    clashes = pl.DataFrame(plan.hamiltonians).join(
        existing.select("id", "key", "structure_family"), on="key", how="inner"
    )
    existing_meta = dict(zip(existing["key"].to_list(), existing["metadata"].to_list()))
    keep: dict[str, int] = {}
    for key, huid, metadata, node_id, family in clashes.select(
        "key", "huid", "metadata", "id", "structure_family"
    ).iter_rows():
        current = existing_meta[key]
        current = current if isinstance(current, dict) else json.loads(current)
        if family != "container" or current.get("huid") != huid:
            raise IngestError(
                f"key {key} already exists in the catalog for "
                f"{'huid ' + str(current.get('huid')) if family == 'container' else 'a ' + str(family)}, "
                f"not huid {huid}; nothing was written"
            )
        keep[key] = node_id
        wanted = json.loads(metadata)
        if current != wanted:
            extends = only_new_locators(current, wanted)
            if not extends:
                result.differing_metadata.append(key)
            if update_metadata or extends:
                conn.execute(sa.text(queries.load("write/revision")), {"id": node_id})
                conn.execute(
                    sa.text(queries.load("write/update_metadata", dialect)), {"id": node_id, "metadata": metadata}
                )
                result.updated_metadata.append(key)
    result.existing_hamiltonians += len(keep)
    return keep


def _id_list(dialect: str, values: list[Any]) -> Any:
    """A list bound as one parameter: an array on PostgreSQL, JSON text for SQLite's json_each."""
    return values if dialect == "postgresql" else json.dumps(values)


def _refuse_other_files(conn: Connection, plan: NodePlan, parent_id: int, updated: set[str]) -> None:
    """Metadata and data move together: an updated Hamiltonian whose registered arrays
    read another file or dataset than the manifest now names would have its Mode A
    locators point at the new files while the server reads the old ones.

    Raises:
        IngestError: naming the first such array (nothing is written).
    """
    from tiled.utils import ensure_uri

    planned = {
        (r["parent_key"], r["key"]): (ensure_uri(r["path"]), json.loads(r["parameters"]))
        for r in plan.arrays.select(["parent_key", "key", "path", "parameters"]).to_pylist()
        if r["parent_key"] in updated
    }
    rows = conn.execute(sa.text(queries.load("write/grandchild_sources")), {"parent": parent_id}).all()
    for parent_key, key, management, parameters, data_uri in rows:
        want = planned.get((parent_key, key))
        if want is None or str(getattr(management, "value", management)) != "external":
            continue  # not updated here, or uploaded (a copy the catalog keeps, whatever the file is now)
        have = (data_uri, parameters if isinstance(parameters, dict) else json.loads(parameters))
        if have != want:
            raise IngestError(
                f"{parent_key}/{key}: the catalog serves it from {have[0]} {have[1]}, the manifest now "
                f"names {want[0]} {want[1]}; --update-metadata updates metadata, not what an array "
                f"reads: delete {parent_key} (`broker delete`) and ingest again; nothing was written"
            )


def _missing_arrays(
    conn: Connection, arrays: pl.DataFrame, parent_id: int, keep: dict[str, int], result: WriteResult
) -> pl.DataFrame:
    """The planned arrays not yet under their (kept) Hamiltonian."""
    if not keep or arrays.height == 0:
        return arrays
    dialect = conn.dialect.name
    registered = pl.DataFrame(
        conn.execute(
            sa.text(queries.load("write/grandchildren", dialect)),
            {"parent": parent_id, "ids": _id_list(dialect, list(keep.values()))},
        ).all(),
        schema={"parent_key": pl.String, "key": pl.String},
        orient="row",
    )
    missing = arrays.join(registered, on=["parent_key", "key"], how="anti")
    result.existing_arrays += arrays.height - missing.height
    return missing


@dataclass
class _Ids:
    """Ids of every row to insert, and the assets they point at."""

    hamiltonians: list[int]
    arrays: list[int]
    parents: dict[str, int]  # Hamiltonian key -> node id, kept and new
    data_sources: list[int]
    assets: pl.DataFrame  # path, data_uri, size of the arrays' files
    fresh_assets: pl.DataFrame  # the ones the catalog does not have yet
    fresh_asset_ids: list[int]
    asset_of_path: dict[str, int]


def _allocate_ids(
    conn: Connection, new_hams: pl.DataFrame, arrays: pl.DataFrame, assets: pl.DataFrame, keep: dict[str, int]
) -> _Ids:
    """Ids: contiguous on SQLite under the write lock; reserved from the sequences on
    PostgreSQL. Assets the catalog already has (same data URI) are reused."""
    first = (
        conn.execute(sa.text(queries.load("write/next_ids", "sqlite"))).one()
        if conn.dialect.name == "sqlite"
        else (None, None, None)
    )
    node_ids = _reserve(conn, "nodes", new_hams.height + arrays.height, first[0])
    ham_ids = node_ids[: new_hams.height]
    assets = assets.join(arrays.select("path").unique(), on="path", how="semi")
    conn.execute(sa.text(queries.load("write/create_incoming_uris")))
    _bulk(conn, "incoming_uris", ((u,) for u in assets["data_uri"].to_list()))
    known = dict((uri, i) for i, uri in conn.execute(sa.text(queries.load("write/existing_assets"))).all())
    conn.execute(sa.text(queries.load("write/drop_incoming_uris")))
    fresh_assets = assets.filter(~pl.col("data_uri").is_in(list(known)))
    asset_ids = _reserve(conn, "assets", fresh_assets.height, first[2])
    uri_to_asset = {**known, **dict(zip(fresh_assets["data_uri"].to_list(), asset_ids))}
    return _Ids(
        hamiltonians=ham_ids,
        arrays=node_ids[new_hams.height :],
        parents={**keep, **dict(zip(new_hams["key"].to_list(), ham_ids))},
        data_sources=_reserve(conn, "data_sources", arrays.height, first[1]),
        assets=assets,
        fresh_assets=fresh_assets,
        fresh_asset_ids=asset_ids,
        asset_of_path={p: uri_to_asset[u] for p, u in zip(assets["path"].to_list(), assets["data_uri"].to_list())},
    )


def _suspend_triggers(conn: Connection) -> tuple[list[tuple[str, str]], bool]:
    """Take Tiled's per-row triggers out of the transaction; their work (closure
    rows, full-text index) is redone set-based. Returns the SQLite triggers to
    restore, and whether the triggers are bypassed at all (PostgreSQL needs a
    superuser for ``session_replication_role``; otherwise they run row by row)."""
    if conn.dialect.name == "sqlite":
        triggers = [(r[0], r[1]) for r in conn.execute(sa.text(queries.load("write/triggers", "sqlite")))]
        for name, _ in triggers:
            conn.exec_driver_sql(f"DROP TRIGGER {queries.quote_identifier(name)}")
        return triggers, True
    bypass = bool(conn.execute(sa.text(queries.load("write/is_superuser", "postgresql"))).scalar())
    if bypass:
        # Session-local and transaction-local: other sessions keep their triggers.
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
    return [], bypass


def _insert_rows(
    conn: Connection,
    plan: NodePlan,
    parent_id: int,
    new_hams: pl.DataFrame,
    arrays: pl.DataFrame,
    ids: _Ids,
    bypass: bool,
    progress: Progress | None,
) -> None:
    """Every new row, table by table, in bulk; ``progress`` hears rows sent of all."""
    total = new_hams.height + 3 * arrays.height + ids.fresh_assets.height
    sent = 0

    def advance(rows: int) -> None:
        nonlocal sent
        sent += rows
        if progress:
            progress("writing rows", sent, total)

    advance(0)
    if plan.structures.num_rows:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.executemany(
            queries.load("write/insert_structures", conn.dialect.name),
            list(_rows(plan.structures, ["id", "structure"])),
        )
        cursor.close()
    _bulk(
        conn,
        "nodes",
        (
            (i, parent_id, key, "container", metadata, "[]")
            for i, (key, metadata) in zip(ids.hamiltonians, new_hams.select("key", "metadata").iter_rows())
        ),
    )
    _bulk(
        conn,
        "nodes",
        (
            (i, ids.parents[pk], key, "array", metadata, "[]")
            for i, (pk, key, metadata) in zip(ids.arrays, arrays.select("parent_key", "key", "metadata").iter_rows())
        ),
    )
    advance(new_hams.height + arrays.height)
    if bypass:
        _set_based_closure_and_fulltext(conn, [ids.hamiltonians, ids.arrays])
    _bulk(
        conn,
        "assets",
        (
            (i, uri, False, size)
            for i, (uri, size) in zip(ids.fresh_asset_ids, ids.fresh_assets.select("data_uri", "size").iter_rows())
        ),
    )
    advance(ids.fresh_assets.height)
    _bulk(
        conn,
        "data_sources",
        (
            (d, n, sid, HDF5_MIMETYPE, params, "{}", "external", "array")
            for d, n, (sid, params) in zip(
                ids.data_sources, ids.arrays, arrays.select("structure_id", "parameters").iter_rows()
            )
        ),
    )
    advance(arrays.height)
    _bulk(
        conn,
        "data_source_asset_association",
        ((d, ids.asset_of_path[p], "data_uri", None) for d, p in zip(ids.data_sources, arrays["path"].to_list())),
    )
    advance(arrays.height)


class CatalogTarget(Target):
    """The catalog database, written straight in one transaction (``broker ingest``).

    The writer lock is taken here, once, from the catalog's initialisation to the
    commit: a second broker waits, then adds only what the first one left missing.
    The plan may come chunk by chunk (each chunk planned while the previous one is
    written), all in the one transaction.
    """

    chunked = True
    updates_metadata = True

    def __init__(
        self, catalog: str, *, update_metadata: bool = False, indexes: bool = True, template_dir: Path | None = None
    ) -> None:
        """
        Args:
            catalog: A SQLite file, ``sqlite:///...`` or ``postgresql://...`` URL.
            update_metadata: Replace the metadata of existing Hamiltonians that
                differs (a revision kept), instead of reporting it.
            indexes: On PostgreSQL, create (when missing) the metadata indexes of the
                Hamiltonians' numeric parameters after the write
                (:mod:`manifest_broker.catalog.index`); SQLite gets none.
            template_dir: Where an initialised empty catalog is kept to be copied
                for the next new one (the cache folder).
        """
        self.location = locate(catalog)
        self.destination = f"the catalog {self.location.sqlite_path or self.location.redacted()}"
        self.update_metadata = update_metadata
        self.indexes = indexes
        self.template_dir = template_dir
        self._created = False

    def where(self) -> str | None:
        return self.location.redacted()

    def existing_keys(self, parent: str) -> pa.Table:
        # A catalog that is not one is said as such here, before any file is probed.
        from manifest_broker.catalog.database import existing_keys

        return existing_keys(self.location.url, parent)

    def write(
        self,
        plan: NodePlan | Iterable[NodePlan],
        *,
        base_dir: Path,
        parent: str,
        parent_metadata: dict[str, Any] | None,
        progress: Progress | None,
        notify: Any = None,
        before_commit: Callable[[], None] | None = None,
    ) -> WriteResult:
        del base_dir  # the catalog records where the files are; it reads none of them
        with writer_lock(self.location, notify=notify):
            self.initialise()
            return _write_transaction(
                self.location, plan, parent, self.update_metadata, before_commit, progress, parent_metadata
            )

    def initialise(self) -> None:
        """Create the catalog when it has no tables (:func:`init_catalog`); the
        caller holds the writer lock."""
        self._created = init_catalog(self.location, template_dir=self.template_dir) or self._created

    def finish(self, report: ContractReport) -> list[str]:
        if not self.indexes or self.location.dialect != "postgresql":
            return []
        from manifest_broker.catalog.index import index_parameters

        return index_parameters(self.location, report)

    @property
    def created(self) -> bool:
        return self._created
