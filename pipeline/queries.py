"""Every SQL statement the pipeline runs lives in ``sql/``, one named file each.

This module finds those files and quotes the few identifiers that have to be
interpolated (values are always bound as parameters, never formatted in).
"""

from __future__ import annotations

import functools
import re
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # duckdb costs start-up time: imported by the commands that run SQL
    import duckdb

# The sql/ folder, installed as the package data manifest_broker.sql: the same
# files in a checkout (editable install) and in a wheel.
SQL_ROOT: Traversable = files("manifest_broker.sql")

_IDENTIFIER = re.compile(r"^[^\x00-\x1f\x7f]+$")


class SqlNotFound(LookupError):
    """Raised when a named statement has no file under ``sql/``."""


@functools.cache
def load(name: str, dialect: str | None = None) -> str:
    """Return the text of the statement ``sql/<name>.sql``.

    Args:
        name: Path below ``sql/`` without the suffix, e.g. ``"contract/huid_duplicate"``.
        dialect: ``"sqlite"`` or ``"postgresql"``; a file ``<name>.<dialect>.sql``
            wins over the dialect-neutral one when it exists.

    Returns:
        The SQL text.

    Raises:
        SqlNotFound: when neither file exists.
    """
    *folders, stem = name.split("/")
    directory = SQL_ROOT.joinpath(*folders)
    candidates = [directory / f"{stem}.{dialect}.sql"] if dialect else []
    candidates.append(directory / f"{stem}.sql")
    for candidate in candidates:
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise SqlNotFound(f"no SQL file for {name!r} (dialect {dialect}) under {SQL_ROOT}")


def names(folder: str) -> list[str]:
    """Names (``folder/stem``) of the dialect-neutral statements in one folder, sorted."""
    directory = SQL_ROOT.joinpath(*folder.split("/"))
    stems = (entry.name.removesuffix(".sql") for entry in directory.iterdir() if entry.name.endswith(".sql"))
    return sorted(f"{folder}/{stem}" for stem in stems if "." not in stem)


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection as every stage uses it: no progress bar on
    the terminal (the broker draws its own), insertion order kept (rule results and
    plans follow manifest order)."""
    import duckdb

    con = duckdb.connect(config={"preserve_insertion_order": True})
    con.execute(load("session/duckdb"))
    return con


def quote_identifier(name: str) -> str:
    """Quote an identifier for DuckDB, SQLite or PostgreSQL.

    Raises:
        ValueError: for an empty name or one holding control characters.
    """
    if not name or not _IDENTIFIER.match(name):
        raise ValueError(f"not a usable SQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'
