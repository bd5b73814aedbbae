"""Metadata indexes that Tiled's own searches can use.

Tiled's catalog adapter turns ``Key(col) > x`` (and ``>= < <=``) into
``nodes.parent = $1 AND (nodes.metadata #> $2) > $3::JSONB`` on PostgreSQL (the
path bound as a parameter; equality goes through ``@>`` and Tiled's own GIN index).
An index on ``(parent, (metadata #> '{col}'))`` is that very expression once the
path is a constant, which it is in PostgreSQL's custom plans: the planner then
reads the matching range instead of every child. ``tests/integration/test_index.py``
shows it with ``EXPLAIN`` of the statement captured from Tiled's own engine.

On SQLite the same search is ``JSON_EXTRACT(nodes.metadata, ?) > ?`` with the path
bound too, and SQLite matches an expression index only against the literal
expression: an index on ``json_extract(metadata, '$."col"')`` serves the
``parent = ?`` term and never the range (shown by the same test with SQLite's
plan). The broker therefore creates none there: it would cost writes and disk and
speed up no search Tiled makes. Large catalogs that are searched by parameter
belong on PostgreSQL.

The indexes are named ``broker_ix_...`` and carry the key they serve in their
comment; ``broker index list`` and ``broker index drop`` find them by that name.
They live on the ``nodes`` table, so deleting nodes and ingesting again keeps them,
and Tiled's migrations (``tiled catalog upgrade-database``) leave them alone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from manifest_broker import queries
from manifest_broker.catalog.database import CatalogError, CatalogLocation, check_schema, engine
from manifest_broker.catalog.manifests import HAMILTONIAN_COLUMNS, metadata_columns
from manifest_broker.errors import BrokerError

if TYPE_CHECKING:
    from manifest_broker.catalog.contract import ContractReport

PREFIX = "broker_ix_"
LABEL = "broker metadata index: "
# Indexes created by default at one ingest: a wide manifest (thousands of numeric
# parameters) would otherwise get thousands of indexes to maintain on every write.
DEFAULT_LIMIT = 16

_SLUG = re.compile(r"[^a-z0-9]+")


class IndexRefused(BrokerError, ValueError):
    """An index the broker will not create or cannot find."""


@dataclass(frozen=True)
class MetadataIndex:
    """One broker index: its name, the metadata key it serves (None when the label
    is missing), its definition, and its size in bytes (PostgreSQL)."""

    name: str
    """The index's name in the database (``broker_md_...``)."""
    key: str | None
    """The metadata key it serves (from its label; None when the label is missing)."""
    definition: str
    """The database's own definition of the index."""
    bytes: int | None
    """Its size on disk (PostgreSQL; None elsewhere)."""


def index_name(key: str) -> str:
    """``broker_ix_<readable part>_<digest>``: recognisable, unique per key, within
    PostgreSQL's 63-byte identifiers whatever the key."""
    slug = _SLUG.sub("_", key.lower()).strip("_")[:32]
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return f"{PREFIX}{slug}_{digest}" if slug else f"{PREFIX}{digest}"


def _statement(connection: sa.Connection, statement: str, dialect: str | None, **params: object) -> str:
    text = connection.execute(sa.text(queries.load(statement, dialect)), params).scalar_one()
    return str(text)


def _refuse_sqlite(location: CatalogLocation) -> None:
    if location.dialect == "sqlite":
        raise IndexRefused(
            "SQLite cannot use a metadata index for Tiled's searches: Tiled binds the JSON path as a parameter "
            "(JSON_EXTRACT(nodes.metadata, ?) > ?), and SQLite matches an expression index only against the "
            "literal path, so such an index would serve parent = ? alone and slow every write; "
            "for catalogs searched by parameter use PostgreSQL",
            where=location.redacted(),
        )


def create_indexes(location: CatalogLocation, keys: Iterable[str]) -> list[MetadataIndex]:
    """Create (if missing) one index per metadata key, then refresh the planner's
    statistics. Each index is built in its own transaction: a run stopped midway
    leaves whole indexes, never a half-built one.

    Args:
        keys: Metadata keys as Tiled's ``Key`` takes them (dots reach into nested
            metadata).

    Returns:
        The broker's indexes afterwards (:func:`list_indexes`).

    Raises:
        IndexRefused: on SQLite (see the module), or for an empty key.
        CatalogError: for a database that is not a usable catalog.
    """
    _refuse_sqlite(location)
    wanted = list(dict.fromkeys(keys))
    for key in wanted:
        if not key or not all(key.split(".")):
            raise IndexRefused(f"metadata key {key!r}: empty, or an empty part between dots")
    eng = engine(location)
    try:
        for key in wanted:
            name = index_name(key)
            with eng.begin() as connection:
                check_schema(connection)
                connection.execute(
                    sa.text(
                        _statement(connection, "index/create_statement", "postgresql", name=name, path=key.split("."))
                    )
                )
                connection.execute(
                    sa.text(_statement(connection, "index/comment_statement", "postgresql", name=name, key=key))
                )
        if wanted:
            with eng.begin() as connection:
                connection.execute(sa.text(queries.load("index/analyze", "postgresql")))
        return _list(eng, location)
    finally:
        eng.dispose()


def list_indexes(location: CatalogLocation) -> list[MetadataIndex]:
    """The broker's indexes on the catalog's nodes (none on SQLite unless made by hand).

    Raises:
        CatalogError: for a database that is not a usable catalog.
    """
    eng = engine(location, readonly=True)
    try:
        return _list(eng, location)
    finally:
        eng.dispose()


def _list(eng: sa.Engine, location: CatalogLocation) -> list[MetadataIndex]:
    try:
        with eng.connect() as connection:
            check_schema(connection)
            rows = connection.execute(sa.text(queries.load("index/list", location.dialect))).all()
    except sa.exc.OperationalError as exc:
        raise CatalogError(f"cannot open catalog {location.redacted()}: {exc.orig}") from exc
    return [
        MetadataIndex(name, label[len(LABEL) :] if label and label.startswith(LABEL) else None, definition, size)
        for name, label, definition, size in rows
    ]


def drop_indexes(location: CatalogLocation, keys: Iterable[str] = (), *, every: bool = False) -> list[str]:
    """Drop the broker's indexes of ``keys`` (or all of them with ``every``); each
    key must have one.

    Returns:
        The names dropped.

    Raises:
        IndexRefused: for a key without a broker index (nothing is dropped then).
    """
    eng = engine(location)
    try:
        existing = _list(eng, location)
        by_key = {i.key: i.name for i in existing if i.key is not None}
        wanted = list(dict.fromkeys(keys))
        missing = [k for k in wanted if k not in by_key and k not in {i.name for i in existing}]
        if missing:
            raise IndexRefused(f"no broker index for {', '.join(map(repr, missing))} (see `broker index list`)")
        names = [i.name for i in existing] if every else [by_key.get(k, k) for k in wanted]
        with eng.begin() as connection:
            for name in names:
                connection.execute(sa.text(_statement(connection, "index/drop_statement", None, name=name)))
        return names
    finally:
        eng.dispose()


def parameter_keys(columns: Iterable[tuple[str, str]], limit: int = DEFAULT_LIMIT) -> tuple[list[str], int]:
    """The Hamiltonian parameter columns an ingest indexes by default: the numeric
    ones (the ones ranges are asked of), in manifest order, at most ``limit``.

    Args:
        columns: (name, Arrow type as text) of the Hamiltonians' metadata columns.

    Returns:
        (the keys, how many numeric columns were left out by the limit).
    """
    numeric = [name for name, kind in columns if re.fullmatch(r"u?int\d+|float|double|halffloat|float\d+", kind)]
    return numeric[:limit], max(0, len(numeric) - limit)


def index_parameters(location: CatalogLocation, report: ContractReport) -> list[str]:
    """Index the checked Hamiltonians' numeric parameters (PostgreSQL; run after the
    write's commit, each index in a transaction of its own, so the write does not hold
    its lock while they build). Returns the keys that have a broker index now."""
    columns = {
        name: str(dataset.hamiltonian_schema.field(name).type)
        for dataset in report.datasets.values()
        for name in metadata_columns(dataset.hamiltonian_schema, HAMILTONIAN_COLUMNS)
    }
    keys, _left_out = parameter_keys(columns.items())
    return [i.key for i in create_indexes(location, keys) if i.key is not None]
