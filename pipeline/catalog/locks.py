"""One broker writer per catalog at a time.

Two ``broker ingest`` runs started together must not both initialise a new catalog
or both insert the same keys or assets. Each holds the writer lock of the catalog
from initialisation to commit; a second one waits, then finds the first one's nodes
and adds only what is still missing. The lock dies with its holder, so a killed
broker never leaves it behind:

- SQLite: ``flock`` on ``<catalog>-broker.lock`` beside the catalog (next to
  SQLite's own ``-wal`` and ``-shm`` files). Like SQLite's WAL itself, it needs a
  local filesystem.
- PostgreSQL: a session-level advisory lock, held on its own connection.

Readers (``tiled serve``) never take it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from manifest_broker import queries
from manifest_broker.catalog.database import CatalogError, CatalogLocation, engine

POLL_SECONDS = 0.2
# Locks this process holds, by catalog: a nested request (write_plan inside ingest)
# must not wait for itself.
_held: dict[str, int] = {}


def lock_path(location: CatalogLocation) -> Path:
    """The lock file of a SQLite catalog."""
    assert location.sqlite_path is not None
    return location.sqlite_path.with_name(location.sqlite_path.name + "-broker.lock")


def _wait(
    try_once: Callable[[], bool], location: CatalogLocation, timeout: float | None, notify: Callable[[str], None] | None
) -> None:
    started = time.monotonic()
    told = False
    while not try_once():
        waited = time.monotonic() - started
        if timeout is not None and waited >= timeout:
            raise CatalogError(
                f"another broker is still writing to {location.redacted()} after {waited:.0f} s; "
                "nothing was written (re-run when it has finished)"
            )
        if notify and not told:
            notify(f"waiting for another broker writing to {location.redacted()} ...")
            told = True
        time.sleep(POLL_SECONDS)


@contextmanager
def writer_lock(
    location: CatalogLocation, *, timeout: float | None = None, notify: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the catalog's writer lock for the body of the ``with``.

    Args:
        timeout: Seconds to wait for another writer; ``None`` waits as long as it takes.
        notify: Called once with a message when the lock is busy.

    Raises:
        CatalogError: when the lock cannot be had in ``timeout`` seconds, or the lock
            file cannot be created.
    """
    key = location.url
    if _held.get(key):
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    if location.dialect == "sqlite":
        path = lock_path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
        except OSError as exc:
            raise CatalogError(f"cannot create the writer lock {path} ({exc.strerror})") from exc

        def try_flock() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False

        try:
            _wait(try_flock, location, timeout, notify)
            _held[key] = 1
            try:
                yield
            finally:
                del _held[key]
        finally:
            os.close(fd)  # releases the flock
        return
    eng = engine(location)
    try:
        try:
            conn = eng.connect()
        except sa.exc.OperationalError as exc:
            raise CatalogError(f"cannot open catalog {location.redacted()}: {exc.orig}") from exc
        with conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            statement = sa.text(queries.load("catalog/try_writer_lock", "postgresql"))
            _wait(lambda: bool(conn.execute(statement).scalar()), location, timeout, notify)
            _held[key] = 1
            try:
                yield
            finally:
                del _held[key]
                try:
                    conn.execute(sa.text(queries.load("catalog/release_writer_lock", "postgresql")))
                except sa.exc.DBAPIError:
                    pass  # the session is gone, and its lock with it
    finally:
        eng.dispose()
