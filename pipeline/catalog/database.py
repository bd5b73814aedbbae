"""Open a Tiled catalog database (SQLite or PostgreSQL) and read what is there.

The bulk writer and the contract's key-collision rule both need to find nodes by
path and to refuse a database they do not understand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from manifest_broker import queries
from manifest_broker.errors import BrokerError

# Alembic heads whose schema the writer produces rows for, newest first.
SUPPORTED_REVISIONS: tuple[str, ...] = ("917dbbcfc4b1",)


class CatalogError(BrokerError, RuntimeError):
    """A catalog that cannot be used: not a Tiled catalog, unknown revision, locked..."""


@dataclass(frozen=True)
class CatalogLocation:
    """Where a catalog lives, as SQLAlchemy URLs for sync use and for Tiled itself."""

    url: str  # sync driver, for the broker
    tiled_uri: str  # async driver, what `tiled serve catalog` and tiled's own code take

    @property
    def dialect(self) -> str:
        return sa.make_url(self.url).get_backend_name()

    @property
    def sqlite_path(self) -> Path | None:
        if self.dialect != "sqlite":
            return None
        database = sa.make_url(self.url).database
        return Path(database) if database else None

    def redacted(self) -> str:
        """The catalog's address as it may be printed: without user or password
        (:func:`manifest_broker.errors.redact`, as every address the broker prints)."""
        from manifest_broker.errors import redact

        return redact(sa.make_url(self.url).render_as_string(hide_password=False))


def locate(uri: str | Path) -> CatalogLocation:
    """Normalise a catalog argument: a file path, ``sqlite:///...`` or ``postgresql://...``.

    Raises:
        CatalogError: for a scheme that is neither SQLite nor PostgreSQL.
    """
    text = str(uri)
    if "://" not in text:
        path = Path(text).expanduser().resolve()
        return CatalogLocation(f"sqlite:///{path}", f"sqlite+aiosqlite:///{path}")
    url = sa.make_url(text)
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = Path(url.database or "").expanduser().resolve()
        return CatalogLocation(f"sqlite:///{path}", f"sqlite+aiosqlite:///{path}")
    if backend == "postgresql":
        sync = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        tiled = url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
        return CatalogLocation(sync, tiled)
    raise CatalogError(f"unsupported catalog URI {text!r}: use a SQLite file or postgresql://")


def engine(location: CatalogLocation, *, readonly: bool = False, busy_timeout: float = 5.0) -> Engine:
    """A SQLAlchemy engine; SQLite opened read-only when asked (``mode=ro``), waiting
    up to ``busy_timeout`` seconds for another connection's lock."""
    if location.dialect == "sqlite":
        path = location.sqlite_path
        mode = "ro" if readonly else "rw"
        return sa.create_engine(
            "sqlite://",
            creator=lambda: _sqlite_connect(path, mode, busy_timeout),
            poolclass=sa.pool.NullPool,
        )
    return sa.create_engine(location.url, poolclass=sa.pool.NullPool)


def _sqlite_connect(path: Path | None, mode: str, busy_timeout: float = 5.0):  # type: ignore[no-untyped-def]
    import sqlite3

    # isolation_level=None: the writer issues BEGIN IMMEDIATE itself, so the
    # transaction boundaries are exactly the ones it chooses.
    return sqlite3.connect(
        f"file:{path}?mode={mode}",
        uri=True,
        timeout=busy_timeout,
        isolation_level=None,
        check_same_thread=False,
    )


def check_schema(connection: Connection) -> str:
    """Return the catalog's alembic revision, refusing anything but a known Tiled catalog.

    Raises:
        CatalogError: when the database has no Tiled tables or an unknown revision.
    """
    dialect = connection.dialect.name
    try:
        tables = {r[0] for r in connection.execute(sa.text(queries.load("catalog/table_names", dialect)))}
    except sa.exc.DatabaseError as exc:
        raise CatalogError(f"not a database the broker can read ({exc.orig})") from exc
    if not {"nodes", "nodes_closure", "alembic_version"} <= tables:
        raise CatalogError("not a Tiled catalog: tables nodes, nodes_closure and alembic_version are missing")
    found = [r[0] for r in connection.execute(sa.text(queries.load("catalog/schema_revision")))]
    revision = found[0] if found else "<none>"
    if revision not in SUPPORTED_REVISIONS:
        raise CatalogError(
            f"catalog schema is at alembic revision {revision}; this broker writes revision(s) "
            f"{', '.join(SUPPORTED_REVISIONS)} (tiled {TILED_RELEASE}): {_revision_advice(revision)}"
        )
    return revision


# The Tiled release whose catalog schema the writer produces (pinned in pyproject.toml).
TILED_RELEASE = "0.2.20"


def _revision_advice(revision: str) -> str:
    """What to do about a catalog at another revision (Tiled's migration history is
    read only here, on the error path: importing it costs seconds)."""
    from tiled.catalog.core import ALL_REVISIONS

    if revision in ALL_REVISIONS[1:]:
        return (
            "the catalog is older; upgrade it with `tiled catalog upgrade-database CATALOG_URI` "
            f"(tiled {TILED_RELEASE}, installed with the broker)"
        )
    return (
        "Tiled's history has no such revision (a newer Tiled made the catalog?); use the broker release made "
        "for that Tiled, or a catalog of this one"
    )


def require_file(location: CatalogLocation) -> None:
    """Refuse a SQLite catalog that is not an existing file, before anything (a lock
    file, an empty database) is created beside it.

    Raises:
        CatalogError: naming the path and what it is instead.
    """
    path = location.sqlite_path
    if path is not None and not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise CatalogError(f"catalog {path} {what}; create one with `broker ingest`", where=path)


def check_catalog(uri: str | Path) -> str:
    """Refuse, before a server starts on it, a catalog that does not exist or is not
    a Tiled catalog at a supported revision. Opens it read-only; creates nothing.

    Returns:
        The catalog's alembic revision.

    Raises:
        CatalogError: naming the catalog and what is wrong with it.
    """
    location = locate(uri)
    require_file(location)
    eng = engine(location, readonly=True)
    try:
        with eng.connect() as connection:
            return check_schema(connection)
    except CatalogError as exc:  # said with the catalog it is about
        raise CatalogError(f"{location.redacted()}: {exc}", where=location.redacted()) from None
    except sa.exc.OperationalError as exc:
        raise CatalogError(f"cannot open catalog {location.redacted()}: {exc.orig}") from exc
    finally:
        eng.dispose()


def child_id(connection: Connection, parent: int, key: str) -> int | None:
    """Node id of one child, or None."""
    row = connection.execute(sa.text(queries.load("catalog/child_id")), {"parent": parent, "key": key}).first()
    return None if row is None else int(row[0])


def find_node(connection: Connection, path: str) -> int | None:
    """Node id of ``a/b/c`` below the root (id 0), or None when a segment is missing."""
    node: int | None = 0
    for segment in [s for s in path.split("/") if s]:
        assert node is not None
        node = child_id(connection, node, segment)
        if node is None:
            return None
    return node


def existing_keys(uri: str | Path, parent: str = "") -> pa.Table:
    """Keys already present under ``parent`` in a catalog, as a table (key, huid, location).

    A catalog file that does not exist yet, or a database not yet initialised, has no keys.

    Raises:
        CatalogError: when the catalog exists but is not a usable Tiled catalog.
    """
    location = locate(uri)
    schema = pa.schema([("key", pa.string()), ("huid", pa.string()), ("location", pa.string())])
    if location.sqlite_path is not None and not location.sqlite_path.exists():
        return schema.empty_table()
    where = f"{location.redacted()} /{parent.strip('/')}"
    eng = engine(location, readonly=True)
    try:
        with eng.connect() as connection:
            tables = {
                r[0] for r in connection.execute(sa.text(queries.load("catalog/table_names", connection.dialect.name)))
            }
            if "alembic_version" not in tables:
                # empty, or initialisation cut short: no keys yet (init_catalog completes or refuses it)
                return schema.empty_table()
            check_schema(connection)
            node = find_node(connection, parent)
            if node is None:
                return schema.empty_table()
            rows = connection.execute(
                sa.text(queries.load("catalog/child_keys", connection.dialect.name)), {"parent": node}
            ).all()
    except sa.exc.DatabaseError as exc:  # locked, unreadable, or not a database at all
        raise CatalogError(f"cannot open catalog {location.redacted()}: {exc.orig}") from exc
    finally:
        eng.dispose()
    return pa.table(
        {
            "key": [r[0] for r in rows],
            "huid": [None if r[1] is None else str(r[1]) for r in rows],
            "location": [where] * len(rows),
        },
        schema=schema,
    )
