"""The broker's cache directory: file probes and the catalog template Tiled made.

Everything kept here is a speed-up. A cache file that cannot be read is computed
again; one that cannot be written only makes the next run slower. Files are
replaced with one rename, so a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path


def default_cache_dir() -> Path:
    """``$BROKER_CACHE_DIR``, else ``$XDG_CACHE_HOME/manifest-broker``, else ``~/.cache/...``."""
    if env := os.environ.get("BROKER_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "manifest-broker"


def tiled_cache_file(cache_dir: Path, name: str, suffix: str) -> Path:
    """A file in the cache directory for something Tiled computed: named for the
    Tiled version that computed it, so an upgrade of Tiled never reuses it."""
    from importlib.metadata import version

    return cache_dir / f"{name}-tiled-{version('tiled')}{suffix}"


def replace_atomically(
    target: Path, write: Callable[[Path], None], failures: tuple[type[BaseException], ...] = ()
) -> str | None:
    """Write ``target`` through ``write(partial)`` into a file beside it, then rename
    it into place: a kill leaves the old file or the new one, never half of one.

    Args:
        target: The file to replace (its folder is created when missing).
        write: Writes the whole content to the path it is given.
        failures: Exceptions of ``write`` besides ``OSError`` that mean "could not
            write" (a full disk seen by SQLite or polars, say).

    Returns:
        ``None`` when written, else why not (the partial file is removed).
    """
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    caught: tuple[type[BaseException], ...] = (OSError, *failures)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write(partial)
        os.replace(partial, target)
    except caught as exc:
        # SQLite may leave its journal files beside the partial copy.
        for leftover in (partial, partial.with_name(partial.name + "-wal"), partial.with_name(partial.name + "-shm")):
            with contextlib.suppress(OSError):  # the folder may be a file, or gone
                leftover.unlink(missing_ok=True)
        return getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[-1]
    return None
