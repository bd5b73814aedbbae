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
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from manifest_broker import queries
from manifest_broker.catalog import CatalogError, CatalogLocation, check_schema, child_id, engine
from manifest_broker.locks import writer_lock
from manifest_broker.plan import HDF5_MIMETYPE, NodePlan, only_new_locators

BATCH_ROWS = 50_000  # rows handed to the driver at a time: bounds memory at any size
# How long the SQLite writer waits for a lock held by someone other than a broker
# (e.g. a Tiled server registering a node); brokers queue on the writer lock.
WRITER_BUSY_SECONDS = 60.0


class IngestError(RuntimeError):
    """The catalog was left unchanged; the message says why."""


@dataclass
class IngestResult:
    created_containers: int = 0
    created_hamiltonians: int = 0
    created_arrays: int = 0
    existing_hamiltonians: int = 0
    existing_arrays: int = 0
    updated_metadata: list[str] = field(default_factory=list)
    differing_metadata: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def created_nodes(self) -> int:
        return self.created_containers + self.created_hamiltonians + self.created_arrays


def init_catalog(location: CatalogLocation) -> bool:
    """Create and stamp a catalog the way ``tiled catalog init`` does, if it has no tables.

    A catalog whose initialisation was cut short (a kill or a full disk before the
    alembic stamp) is completed: on SQLite, where Tiled creates its tables one by one,
    a catalog of Tiled's tables only and no node but the root is rebuilt; on
    PostgreSQL, where the tables come in one transaction, the stamp is added. Callers
    hold the writer lock (:func:`manifest_broker.locks.writer_lock`), so two brokers
    never initialise one catalog together. SQLite catalogs are switched to WAL.

    Returns:
        True when the catalog was created (or completed) now.

    Raises:
        CatalogError: for a database that is not a Tiled catalog.
    """
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine
    from tiled.alembic_utils import UninitializedDatabase, check_database, stamp_head
    from tiled.catalog.alembic_constants import ALEMBIC_DIR, ALEMBIC_INI_TEMPLATE_PATH
    from tiled.catalog.core import ALL_REVISIONS, REQUIRED_REVISION, initialize_database

    if location.sqlite_path is not None:
        location.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    tables = _table_names(location)
    if tables and "alembic_version" not in tables:
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
        raise CatalogError(f"cannot initialise or open {location.redacted()}: {reason}; nothing was written") from exc
    if created:
        _stamp(location, stamp_head, ALEMBIC_INI_TEMPLATE_PATH, ALEMBIC_DIR)
    return created


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
        raise CatalogError(f"{location.redacted()} is not a Tiled catalog: it has tables but no alembic_version "
                           f"(e.g. {sorted(foreign)[0]})")  # fmt: skip
    eng = engine(location)
    try:
        with eng.begin() as conn:
            if "nodes" in tables and conn.execute(sa.text(queries.load("catalog/user_nodes"))).scalar():
                raise CatalogError(f"{location.redacted()} has Tiled's tables and nodes but no alembic_version; "
                                   "stamp it with `tiled catalog` tools before writing to it")  # fmt: skip
            if location.dialect == "postgresql":
                if tables >= {t for t in known if t != "alembic_version" and not t.startswith("metadata_fts5")}:
                    return False  # created in one transaction: only the stamp is missing
                raise CatalogError(f"{location.redacted()} has part of Tiled's tables and no alembic_version; "
                                   "it was not made by tiled's initialisation")  # fmt: skip
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
        raise CatalogError(f"{location.redacted()} is not a database the broker can read ({exc.orig})") from exc
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
    return [r[0] for r in conn.execute(sa.text(queries.load("write/reserve_ids", "postgresql")), {"table": table, "n": n})]


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


def _ensure_parent(conn: Connection, parent: str, result: IngestResult) -> int:
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
    """Files must still be what the probe saw: a file that vanished or changed since
    the check aborts the transaction."""
    problems = []
    for path, size, mtime in zip(assets["path"].to_pylist(), assets["size"].to_pylist(), assets["mtime_ns"].to_pylist()):
        try:
            st = os.stat(path)
        except OSError:
            problems.append(f"{path}: vanished after the check")
            continue
        if st.st_size != size or st.st_mtime_ns != mtime:
            problems.append(f"{path}: changed after the check (size or mtime differs)")
        if len(problems) >= 5:
            break
    if problems:
        raise IngestError("files changed while ingesting; nothing was written:\n  " + "\n  ".join(problems))


def write_plan(location: CatalogLocation, plan: NodePlan, *, parent: str = "", update_metadata: bool = False,
               before_commit: Callable[[], None] | None = None) -> IngestResult:  # fmt: skip
    """Write the plan's new nodes into the catalog in one transaction.

    Existing Hamiltonians (same key, same huid) are kept; their missing artifacts
    are added. A Hamiltonian whose metadata differs is reported, and updated (with
    a revision row, as Tiled does) only when ``update_metadata`` is true.

    Args:
        before_commit: Called with the transaction still open, everything written
            (fault-injection tests kill the process there).

    Raises:
        IngestError: for anything that stops the write; the catalog is unchanged.
        CatalogError: when the catalog is not a usable Tiled catalog.
    """
    with writer_lock(location):
        return _write_transaction(location, plan, parent, update_metadata, before_commit)


def _write_transaction(location: CatalogLocation, plan: NodePlan, parent: str, update_metadata: bool,
                       before_commit: Callable[[], None] | None) -> IngestResult:  # fmt: skip
    started = time.perf_counter()
    result = IngestResult()
    eng = engine(location, busy_timeout=WRITER_BUSY_SECONDS)
    dialect = location.dialect
    try:
        with eng.connect() as conn:
            try:
                if dialect == "sqlite":
                    conn.exec_driver_sql(queries.load("catalog/journal_wal", "sqlite"))
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                check_schema(conn)
                _write(conn, plan, parent, update_metadata, result)
                if before_commit:
                    before_commit()
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


def _write(conn: Connection, plan: NodePlan, parent: str, update_metadata: bool, result: IngestResult) -> None:
    dialect = conn.dialect.name
    parent_id = _ensure_parent(conn, parent, result)

    existing = pl.DataFrame(
        conn.execute(sa.text(queries.load("write/children")), {"parent": parent_id}).all(),
        schema={"id": pl.Int64, "key": pl.String, "structure_family": pl.String, "metadata": pl.Object},
        orient="row",
    )
    planned = pl.DataFrame(plan.hamiltonians)
    clashes = planned.join(existing.select("id", "key", "structure_family"), on="key", how="inner")
    existing_meta = dict(zip(existing["key"].to_list(), existing["metadata"].to_list()))
    keep: dict[str, int] = {}
    for key, huid, metadata, node_id, family in clashes.select("key", "huid", "metadata", "id", "structure_family").iter_rows():
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
                conn.execute(sa.text(queries.load("write/update_metadata", dialect)), {"id": node_id, "metadata": metadata})
                result.updated_metadata.append(key)
    result.existing_hamiltonians = len(keep)
    new_hams = planned.filter(~pl.col("key").is_in(list(keep)))

    arrays = pl.DataFrame(plan.arrays)
    if keep and arrays.height:
        registered = pl.DataFrame(
            conn.execute(sa.text(queries.load("write/grandchildren")), {"parent": parent_id}).all(),
            schema={"parent_key": pl.String, "key": pl.String}, orient="row",
        )  # fmt: skip
        before = arrays.height
        arrays = arrays.join(registered, on=["parent_key", "key"], how="anti")
        result.existing_arrays = before - arrays.height

    if new_hams.height == 0 and arrays.height == 0:
        return

    # Ids: contiguous on SQLite under the write lock; reserved from the sequences on PostgreSQL.
    first = conn.execute(sa.text(queries.load("write/next_ids", "sqlite"))).one() if dialect == "sqlite" else (None, None, None)
    node_ids = _reserve(conn, "nodes", new_hams.height + arrays.height, first[0])
    ham_ids = node_ids[: new_hams.height]
    array_ids = node_ids[new_hams.height :]
    ham_index = {**keep, **dict(zip(new_hams["key"].to_list(), ham_ids))}

    assets = pl.DataFrame(plan.assets)
    assets = assets.join(arrays.select("path").unique(), on="path", how="semi")
    conn.execute(sa.text(queries.load("write/create_incoming_uris")))
    _bulk(conn, "incoming_uris", ((u,) for u in assets["data_uri"].to_list()))
    known = dict((uri, i) for i, uri in conn.execute(sa.text(queries.load("write/existing_assets"))).all())
    conn.execute(sa.text(queries.load("write/drop_incoming_uris")))
    fresh_assets = assets.filter(~pl.col("data_uri").is_in(list(known)))
    asset_ids = _reserve(conn, "assets", fresh_assets.height, first[2])
    uri_to_asset = {**known, **dict(zip(fresh_assets["data_uri"].to_list(), asset_ids))}
    path_to_asset = {p: uri_to_asset[u] for p, u in zip(assets["path"].to_list(), assets["data_uri"].to_list())}
    ds_ids = _reserve(conn, "data_sources", arrays.height, first[1])

    triggers: list[tuple[str, str]] = []
    bypass = True
    if dialect == "sqlite":
        triggers = [(r[0], r[1]) for r in conn.execute(sa.text(queries.load("write/triggers", "sqlite")))]
        for name, _ in triggers:
            conn.exec_driver_sql(f"DROP TRIGGER {queries.quote_identifier(name)}")
    else:
        bypass = bool(conn.execute(sa.text(queries.load("write/is_superuser", "postgresql"))).scalar())
        if bypass:
            # Session-local and transaction-local: other sessions keep their triggers.
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")

    if plan.structures.num_rows:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.executemany(queries.load("write/insert_structures", dialect), list(_rows(plan.structures, ["id", "structure"])))
        cursor.close()
    _bulk(conn, "nodes", (
        (i, parent_id, key, "container", metadata, "[]")
        for i, (key, metadata) in zip(ham_ids, new_hams.select("key", "metadata").iter_rows())
    ))  # fmt: skip
    _bulk(conn, "nodes", (
        (i, ham_index[pk], key, "array", metadata, "[]")
        for i, (pk, key, metadata) in zip(array_ids, arrays.select("parent_key", "key", "metadata").iter_rows())
    ))  # fmt: skip
    if bypass:
        _set_based_closure_and_fulltext(conn, [ham_ids, array_ids])
    _bulk(conn, "assets", (
        (i, uri, False, size)
        for i, (uri, size) in zip(asset_ids, fresh_assets.select("data_uri", "size").iter_rows())
    ))  # fmt: skip
    _bulk(conn, "data_sources", (
        (d, n, sid, HDF5_MIMETYPE, params, "{}", "external", "array")
        for d, n, (sid, params) in zip(ds_ids, array_ids, arrays.select("structure_id", "parameters").iter_rows())
    ))  # fmt: skip
    _bulk(conn, "data_source_asset_association", (
        (d, path_to_asset[p], "data_uri", None) for d, p in zip(ds_ids, arrays["path"].to_list())
    ))  # fmt: skip
    for _, sql in triggers:
        conn.exec_driver_sql(sql)
    _verify_files_unchanged(assets.to_arrow())
    result.created_hamiltonians = new_hams.height
    result.created_arrays = arrays.height
