"""Every SQL statement the pipeline runs lives in ``sql/``, one named file each.

This module finds those files and quotes the few identifiers that have to be
interpolated (values are always bound as parameters, never formatted in).
"""

from __future__ import annotations

import functools
import re
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # duckdb costs start-up time: imported by the commands that run SQL
    import duckdb
    import pyarrow as pa

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


# DuckDB's own memory limit for one connection outside the broker's stages (its
# default is 80% of the host's memory): a user's query, the plan's join that gives
# each artifact its chunk (its table of huids spills only so far). Past it, joins,
# aggregates and sorts spill to the temporary directory; an operator that cannot
# fails at the limit, so it is a safeguard: a quarter of the host's memory, at
# least 2 GiB. $BROKER_DUCKDB_MEMORY sets it (DuckDB's units: "2GB", "512MB").
MIN_MEMORY_LIMIT_MB = 2048


def default_memory_limit() -> str:
    """DuckDB's memory limit when ``$BROKER_DUCKDB_MEMORY`` is not set."""
    import os

    try:
        total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError):
        total_mb = 0
    return f"{max(MIN_MEMORY_LIMIT_MB, total_mb // 4)}MB"


_MEMORY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?)?B\s*", re.IGNORECASE)
# The largest limit taken (1024 TiB; the units stop at T): DuckDB refuses sizes past its range when a
# connection is made, where the broker would have no usage error to give.
_MEMORY_MAX = 2**50


def given_memory_limit() -> str | None:
    """``$BROKER_DUCKDB_MEMORY`` when set: a positive size with DuckDB's units.

    Raises:
        BrokerError: (a usage error) for anything else, before DuckDB reads it.
    """
    import os

    from manifest_broker.errors import BrokerError

    given = os.environ.get("BROKER_DUCKDB_MEMORY")
    if not given:
        return None
    found = _MEMORY.fullmatch(given)
    size = 0.0
    if found is not None:
        prefix = (found.group(2) or " ").upper()  # K, Ki, M, ... or none (bytes)
        size = float(found.group(1)) * (1024 if prefix.endswith("I") else 1000) ** " KMGT".index(prefix[0])
    if size <= 0 or size > _MEMORY_MAX:
        raise BrokerError(
            f"BROKER_DUCKDB_MEMORY={given!r}: give DuckDB's memory limit as a positive size with its unit "
            "(512MB, 2GB, 4GiB), at most 1024TiB",
            exit_code=2,
        )
    return given.strip()


# A spill folder untouched this long, of a process id that is not running, is left
# over (the age spares a live process of another PID namespace sharing the folder).
STALE_SPILL_SECONDS = 600


def _sweep_spill_directories(root: str) -> None:
    """Remove the spill folders of broker processes that are gone (killed, so their
    exit handler did not run)."""
    import glob
    import os
    import shutil
    import time

    for folder in glob.glob(os.path.join(root, "manifest-broker-duckdb-*")):
        pid = folder.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            if time.time() - os.stat(folder).st_mtime < STALE_SPILL_SECONDS:
                continue
        except OSError:
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:  # alive, another user's
            continue


@functools.cache
def spill_directory() -> str:
    """Where DuckDB spills, one folder per process (DuckDB names its files per
    connection), made here and removed when the process ends; the check's database
    file and the plan's chunk files live in it too. An in-memory DuckDB spills
    nowhere unless it is given one."""
    import atexit
    import os
    import shutil
    import tempfile

    _sweep_spill_directories(tempfile.gettempdir())
    path = os.path.join(tempfile.gettempdir(), f"manifest-broker-duckdb-{os.getpid()}")
    os.makedirs(path, exist_ok=True)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


# DuckDB's memory limit in the broker's own stages over a dataset's rows (the
# contract check and the plan), which spill past it: their operators are chosen so
# that they can (aggregates and joins, no ordered list over every row), so the
# process's memory stays flat from 10^5 to 10^7 nodes. $BROKER_DUCKDB_MEMORY sets it.
# The check at 10^7 nodes (measured twice each): 192 MB, 48-51 s and 557-567 MiB;
# 256 MB, 44-47 s and 629-633 MiB; 160 MB, 53 s and 520 MiB.
STAGE_MEMORY_LIMIT = "192MB"


def connect(
    database: str = ":memory:", *, stage: bool = False, threads: int | None = None, limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection as every stage uses it: no progress bar on the terminal
    (the broker draws its own), insertion order kept (rule results and plans follow
    manifest order), a memory limit with a folder to spill to.

    Args:
        database: In memory by default; a file for tables that may outgrow memory
            (DuckDB compresses them and keeps in memory what its limit allows).
        stage: One of the broker's own stages over a dataset's rows
            (:data:`STAGE_MEMORY_LIMIT`), not a user's query.
        limit: A stage's own memory limit in place of :data:`STAGE_MEMORY_LIMIT`
            ($BROKER_DUCKDB_MEMORY still wins).
        threads: DuckDB's threads (default: every core). Each thread of a join or
            sort that spills holds blocks of its own: one thread is what lets a
            large one finish within a small limit.
    """
    import duckdb

    limit = given_memory_limit() or limit or (STAGE_MEMORY_LIMIT if stage else default_memory_limit())
    config: dict[str, Any] = {
        "preserve_insertion_order": True,
        "memory_limit": limit,
        "temp_directory": spill_directory(),
    }
    if threads is not None:
        config["threads"] = threads
    con = duckdb.connect(database, config=config)
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


def user_query(con: duckdb.DuckDBPyConnection, query: str) -> pa.Table:
    """The Arrow result of a statement the user typed (``broker sql``, ``broker tnr sql``).

    Raises:
        BrokerError: ``query failed: ...`` with DuckDB's first line, or when there is
            no statement to run (empty, or only a comment).
    """
    import duckdb

    from manifest_broker.errors import BrokerError

    try:
        cursor = con.execute(query)
        if cursor is None or con.description is None:
            raise BrokerError("query failed: there is no statement to run (the query is empty, or only a comment)")
        return cursor.to_arrow_table()
    except (duckdb.Error, ValueError) as exc:
        raise BrokerError(f"query failed: {str(exc).splitlines()[0]}") from exc
