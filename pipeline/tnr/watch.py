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
SIGTERM and SIGINT end it after the run in progress.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from manifest_broker.tnr.campaign import RunInputs, RunSummary, find_runs, package_one
from manifest_broker.tnr.inputs import RunInputError, inputs_fingerprint
from manifest_broker.tnr.lake import Lake, LakeError, scan

SIDECAR_SUFFIX = "_eis_reduction.json"


def _listing(reduced: Path) -> tuple[tuple[str, int, int], ...] | None:
    """(name, size, mtime) of every file in the folder, once its sidecar is whole
    and every reduced file it lists is there; ``None`` before."""
    try:
        entries = tuple(sorted((e.name, (st := e.stat()).st_size, st.st_mtime_ns)
                               for e in os.scandir(reduced) if e.is_file()))  # fmt: skip
    except OSError:  # the folder is being moved or removed
        return None
    sidecars = [name for name, _, _ in entries if name.startswith("r") and name.endswith(SIDECAR_SUFFIX)]
    if len(sidecars) != 1:
        return None
    try:
        sidecar = json.loads((reduced / sidecars[0]).read_bytes())
    except (OSError, ValueError):  # still being written
        return None
    listed = sidecar.get("reduced_files") if isinstance(sidecar, dict) else None
    names = {name for name, _, _ in entries}
    if isinstance(listed, list) and not all(Path(str(p)).name in names for p in listed):
        return None
    return entries


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


class Stop:
    """Set by SIGTERM or SIGINT: the watcher ends after the run in progress."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def on_signals(self) -> Stop:
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGTERM, signal.SIGINT):
                signal.signal(number, lambda _n, _f: self.event.set())
        return self


def watch(root: Path, lake: Lake, namespace: str = "tnr", *, poll: float = 0.25, once: bool = False,
          on_event: Callable[[WatchEvent], None] | None = None, stop: Stop | None = None) -> list[WatchEvent]:  # fmt: skip
    """Package every complete run under ``root``, then keep looking for new or changed ones.

    Args:
        poll: Seconds between two looks; a run is complete when two looks in a row
            see it whole and unchanged.
        once: Package what is complete now and return.
        on_event: Told of each run packaged or refused, as it happens.
        stop: Ends the loop, after the run in progress, when set.

    Returns:
        Every event, in order.
    """
    stop = stop or Stop()
    done = packaged(lake, namespace)
    failed: set[str] = set()  # tried again only when the inputs change
    seen: dict[Path, tuple[tuple[str, int, int], ...]] = {}
    resolved: dict[Path, tuple[tuple[tuple[str, int, int], ...], RunInputs | RunInputError]] = {}
    events: list[WatchEvent] = []
    while not stop.event.is_set():
        for reduced in sorted({p.parent for p in Path(root).rglob(f"r*{SIDECAR_SUFFIX}")}):
            if stop.event.is_set():
                break
            listing = _listing(reduced)
            stable = listing is not None and (once or seen.get(reduced) == listing)
            if listing is None:
                seen.pop(reduced, None)
                continue
            seen[reduced] = listing
            if not stable:
                continue
            if reduced not in resolved or resolved[reduced][0] != listing:  # where its split file and template are
                resolved[reduced] = (listing, _inputs(reduced))
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
            summary: RunSummary = package_one(inputs, lake, namespace)
            (failed if summary.error else done).add(key)
            _tell(WatchEvent(str(reduced), summary.run_number, summary.slices, time.monotonic() - started,
                             summary.error, summary.warnings), events, on_event)  # fmt: skip
        if once or stop.event.wait(poll):
            break
    return events


def _inputs(reduced: Path) -> RunInputs | RunInputError:
    found = list(find_runs(reduced))
    mine = [r for r in found if isinstance(r, RunInputs) and r.reduced_dir == reduced]
    refused = [r for r in found if isinstance(r, RunInputError)]
    return mine[0] if mine else (refused[0] if refused else RunInputError(f"{reduced}: no run here", where=reduced))


def _tell(event: WatchEvent, events: list[WatchEvent], on_event: Callable[[WatchEvent], None] | None) -> None:
    events.append(event)
    if on_event:
        on_event(event)
