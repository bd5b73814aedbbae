"""`broker tnr watch`: a process that stays up and packages each run once its reduced
folder is complete.

A run is complete when its sidecar ``r<run>_eis_reduction.json`` (which the reducer
writes last) parses, every reduced file it lists is there, and two looks in a row
see the same files (names, sizes, times). The folders are polled (``os.scandir``),
not watched with inotify: the shared parallel filesystems where reduced data lands
(NFS, Lustre, GPFS) do not deliver inotify events for files written on other hosts.

The lake is the only state. Each packaging records the fingerprint of its inputs
(:func:`manifest_broker.tnr.inputs.inputs_fingerprint`) in the runs table; a run
whose current fingerprint is there is done. So a watcher killed at any point and
started again neither loses a run (what was not committed is packaged again) nor
duplicates one (re-packaging replaces a run's rows in both tables, all or nothing).
SIGTERM and SIGINT end it at once: a run being read is abandoned (its commits are
never cut apart), and packaged again by the next start.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from manifest_broker.tnr.campaign import RunInputs, RunSummary, find_runs, package_one
from manifest_broker.tnr.inputs import (
    SIDECAR_GLOB,
    SIDECAR_SUFFIX,
    MalformedJson,
    RunInputError,
    inputs_fingerprint,
    read_sidecar,
)
from manifest_broker.tnr.lake import Lake, LakeError, scan


def _listing(reduced: Path) -> tuple[tuple[tuple[str, int, int], ...] | None, str | None]:
    """(name, size, mtime) of every file in the folder, once its sidecar is whole
    and every reduced file it lists is there; before that ``None`` and why the run
    is not complete yet (``None`` when the folder has no single sidecar)."""

    try:
        with os.scandir(reduced) as scanned:
            found = list(scanned)
        entries = tuple(sorted((e.name, (st := e.stat()).st_size, st.st_mtime_ns) for e in found if e.is_file()))
    except OSError:  # the folder is being moved or removed
        return None, None
    # Every entry that is not a folder counts as a sidecar by its name: one that is a
    # FIFO or a socket is refused by the confined reader below, and said, not skipped.
    sidecars = [e.name for e in found if not e.is_dir() and e.name.startswith("r") and e.name.endswith(SIDECAR_SUFFIX)]
    if len(sidecars) != 1:
        return None, (f"{len(sidecars)} sidecars ({', '.join(sidecars)}); one run per folder" if sidecars else None)
    try:
        sidecar = read_sidecar(reduced / sidecars[0], reduced)
    except MalformedJson:  # still being written
        return None, f"its sidecar {sidecars[0]} is not whole JSON (yet)"
    except RunInputError as exc:  # refused by the confined reader, or not an object
        return None, str(exc)
    listed = sidecar.get("reduced_files")
    names = {name for name, _, _ in entries}
    if isinstance(listed, list):
        missing = [Path(str(p)).name for p in listed if Path(str(p)).name not in names]
        if missing:
            return None, (
                f"waiting for {len(missing)} reduced file(s) its sidecar lists and the folder lacks "
                f"(first: {missing[0]})"
            )
    return entries, None


def packaged(lake: Lake, namespace: str) -> set[str]:
    """The input fingerprints of every run the lake holds."""
    try:
        rows = scan(lake, "runs", namespace)
    except LakeError:  # no lake or no table yet
        return set()
    return (
        set(rows["inputs_fingerprint"].to_pylist()) - {None, ""} if "inputs_fingerprint" in rows.column_names else set()
    )


@dataclass
class WatchEvent:
    """One run packaged (or refused) by the watcher."""

    reduced_dir: str
    run_number: int | None
    slices: int
    seconds: float  # from the look that found the run complete to its commit
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    waiting: str | None = None  # why a run seen is not packaged yet (said once per run and reason)


class Stop:
    """Set by SIGTERM or SIGINT: the watcher ends after the run in progress."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.interrupted = False  # by SIGINT (Ctrl-C), not SIGTERM
        self.busy = False  # a run is being packaged: a signal abandons it (a restart packages it again)
        self._forwarded = False

    def on_signals(self) -> Stop:
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGTERM, signal.SIGINT):
                signal.signal(number, self._received)
        return self

    def _received(self, number: int, _frame: object) -> None:
        if number == signal.SIGINT and self._forwarded:
            self._forwarded = False
        else:
            self.interrupted = self.interrupted or number == signal.SIGINT
        self.event.set()
        if self.busy:
            if number == signal.SIGINT:
                raise KeyboardInterrupt
            # SIGTERM goes the way of SIGINT, whose handler a commit defers to its end
            # (processes.interrupt_deferred): the run's two commits are never cut apart.
            self._forwarded = True
            signal.raise_signal(signal.SIGINT)


def watch(
    root: Path,
    lake: Lake,
    namespace: str = "tnr",
    *,
    poll: float = 0.25,
    once: bool = False,
    on_event: Callable[[WatchEvent], None] | None = None,
    stop: Stop | None = None,
    inputs_root: Path | None = None,
) -> list[WatchEvent]:
    """Package every complete run under ``root``, then keep looking for new or changed ones.

    Args:
        poll: Seconds between two looks; a run is complete when two looks in a row
            see it whole and unchanged.
        once: Package what is complete now and return.
        on_event: Told of each run packaged or refused, as it happens.
        stop: Ends the loop, after the run in progress, when set.
        inputs_root: Where split files and templates may lie (default: each run's folder).

    Returns:
        Every event, in order.
    """
    stop = stop or Stop()
    done = packaged(lake, namespace)
    failed: set[str] = set()  # tried again only when the inputs change
    seen: dict[Path, tuple[tuple[str, int, int], ...]] = {}
    resolved: dict[Path, tuple[tuple[tuple[str, int, int], ...], RunInputs | RunInputError]] = {}
    events: list[WatchEvent] = []
    told: set[tuple[Path, str]] = set()
    while not stop.event.is_set():
        for reduced in sorted({p.parent for p in Path(root).rglob(SIDECAR_GLOB)}):
            if stop.event.is_set():
                break
            listing, why = _listing(reduced)
            stable = listing is not None and (once or seen.get(reduced) == listing)
            if listing is None:
                seen.pop(reduced, None)
                if why and (reduced, why) not in told:
                    told.add((reduced, why))
                    _tell(WatchEvent(str(reduced), None, 0, 0.0, waiting=why), events, on_event)
                continue
            seen[reduced] = listing
            if not stable:
                continue
            if reduced not in resolved or resolved[reduced][0] != listing:  # where its split file and template are
                resolved[reduced] = (listing, _inputs(reduced, inputs_root))
            inputs = resolved[reduced][1]
            if isinstance(inputs, RunInputError):
                key = f"{reduced}\0{hash(listing)}"
                if key not in failed:
                    failed.add(key)
                    _tell(WatchEvent(str(reduced), None, 0, 0.0, str(inputs)), events, on_event)
                continue
            key = inputs_fingerprint(inputs.split_file, reduced, inputs.template_file)
            if key in done or key in failed:
                continue
            started = time.monotonic()
            stop.busy = True
            try:
                summary: RunSummary = package_one(inputs, lake, namespace)
            except KeyboardInterrupt:
                if stop.event.is_set():  # stopped mid-run: nothing of it committed, or all of it
                    return events
                raise
            finally:
                stop.busy = False
            (failed if summary.error else done).add(key)
            _tell(
                WatchEvent(
                    str(reduced),
                    summary.run_number,
                    summary.slices,
                    time.monotonic() - started,
                    summary.error,
                    summary.warnings,
                ),
                events,
                on_event,
            )
        if once or stop.event.wait(poll):
            break
    return events


def _inputs(reduced: Path, inputs_root: Path | None) -> RunInputs | RunInputError:
    found = list(find_runs(reduced, inputs_root))
    mine = [r for r in found if isinstance(r, RunInputs) and r.reduced_dir == reduced]
    refused = [r for r in found if isinstance(r, RunInputError)]
    return mine[0] if mine else (refused[0] if refused else RunInputError(f"{reduced}: no run here", where=reduced))


def _tell(event: WatchEvent, events: list[WatchEvent], on_event: Callable[[WatchEvent], None] | None) -> None:
    events.append(event)
    if on_event:
        on_event(event)
