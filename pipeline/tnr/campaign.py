"""Campaigns: every run under a directory, packaged one commit per run with bounded memory."""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from manifest_broker.processes import shut_down, submit, worker_pool

if TYPE_CHECKING:
    from distributed import Client
from manifest_broker.tnr.inputs import SIDECAR_GLOB, SIDECAR_NAME, RunInputError, side_file_json
from manifest_broker.tnr.lake import Lake, LakeError, write_runs
from manifest_broker.tnr.lifeline import die_with
from manifest_broker.tnr.package import RunPackage, package_run

_SLICE = re.compile(r"^r\d+_.+\.(?:txt|ort)$")


@dataclass(frozen=True)
class RunInputs:
    split_file: Path
    reduced_dir: Path
    template_file: Path
    warnings: list[str] = field(default_factory=list)  # how the inputs were found
    root: Path | None = None  # the split file and template lie inside it


@dataclass
class RunSummary:
    """One run of a campaign: an entry of ``tnr package-many --json``'s ``runs``."""

    reduced_dir: str
    """The run's folder."""
    run_number: int | None
    """The run's number (None when its inputs could not be read)."""
    slices: int
    """Reduced files (time slices) packaged (0 when it failed)."""
    points: int
    """Q points over every slice."""
    warnings: list[str]
    """Everything worth a look that did not stop the run."""
    error: str | None = None
    """Why the run was not packaged (nothing of it was written); None when it was."""


def _resolve(
    reduced: Path,
    options: dict[str, Any],
    key: str,
    what: str,
    pattern: str,
    accept: Callable[[Path, Path], bool],
    root: Path,
    warnings: list[str],
) -> Path:
    """The run's split file or template, found beside the run, and only inside ``root``.

    ``reduction_options.json`` records the paths as the reducer saw them: relative to
    where it ran, or absolute on the machine (and in the folder) where it ran. A
    campaign copied or moved elsewhere must read its own files, so a recorded path
    is looked up relative to the run's folder and its parent, then by its name in
    them, and then as recorded. Whatever it names, the file read must lie inside
    ``root`` (the run's folder, or the root the user named) once every symlink is
    resolved: the options are the provider's data, and a path in them must not make
    the broker read (and store in the lake) a file from elsewhere. With no recorded
    path, the one matching file beside the run is taken; two are ambiguous and
    refused. Nothing is ever resolved against the working directory.

    Raises:
        RunInputError: naming the run folder and what is missing, ambiguous or
            outside ``root``.
    """
    from manifest_broker import boundary

    places = [reduced, reduced.parent]
    named = options.get(key)
    if isinstance(named, str) and named:
        recorded = Path(named)
        candidates = [] if recorded.is_absolute() else [place / recorded for place in places]
        candidates += [place / recorded.name for place in places]
        candidates.append(recorded if recorded.is_absolute() else reduced / recorded)
        refused: list[str] = []
        for candidate in candidates:
            if not candidate.is_file():
                continue
            try:
                boundary.regular_file(os.path.abspath(candidate), os.path.abspath(root), what=what)
            except boundary.ProviderFileError as exc:
                refused.append(str(exc))
                continue
            if candidate == recorded and recorded.is_absolute():
                warnings.append(
                    f"{reduced}: {what} {recorded} (as recorded in reduction_options.json) lies outside "
                    "the run's folder; none of that name beside the run"
                )
            return candidate
        if refused:
            raise RunInputError(
                f"{reduced}: reduction_options.json names the {what} {named}: {refused[0]}", where=reduced
            )
        raise RunInputError(
            f"{reduced}: reduction_options.json names the {what} {named}, found neither beside the "
            "run nor at that path",
            where=reduced,
        )
    beside = [c for place in places for c in sorted(place.glob(pattern)) if c.is_file()]
    refused = [why for c in beside if (why := _outside(c, root))]
    found = {c.resolve(): c for c in beside if not _outside(c, root) and accept(c, root)}
    if len(found) > 1:
        names = ", ".join(str(c) for c in found.values())
        raise RunInputError(
            f"{reduced}: {len(found)} {what}s beside the run ({names}); name the right one in "
            f"reduction_options.json ({key})",
            where=reduced,
        )
    if not found:
        why = f" ({refused[0]})" if refused else ""
        raise RunInputError(f"{reduced}: no {what} named in reduction_options.json or beside it{why}", where=reduced)
    return next(iter(found.values()))


def _outside(path: Path, root: Path) -> str | None:
    """Why the boundary refuses ``path`` (a symlink out of ``root``...), or None."""
    from manifest_broker import boundary

    try:
        boundary.regular_file(os.path.abspath(path), os.path.abspath(root), what="file")
    except boundary.ProviderFileError as exc:
        return str(exc)
    return None


def _is_split(path: Path, root: Path) -> bool:
    try:
        data = side_file_json(path, "split file", root)
    except RunInputError:
        return False
    return isinstance(data, dict) and "intervals" in data and "source_directory" in data


def find_runs(root: Path, inputs_root: Path | None = None) -> Iterator[RunInputs | RunInputError]:
    """Each reduced directory (one with a sidecar) with the split file and template
    that belong to it (:func:`_resolve`), found inside the run's folder or inside
    ``inputs_root`` when the user names one."""
    for sidecar in sorted(Path(root).rglob(SIDECAR_GLOB)):
        reduced = sidecar.parent
        side_root = Path(inputs_root) if inputs_root is not None else reduced.parent
        options_path = reduced / "reduction_options.json"
        warnings: list[str] = []
        try:
            options = side_file_json(options_path, "reduction options", reduced) if options_path.exists() else {}
            if not isinstance(options, dict):
                raise RunInputError(f"{options_path}: reduction options are not a JSON object", where=options_path)
            split = _resolve(reduced, options, "intervals_file", "split file", "*.json", _is_split, side_root, warnings)
            template = _resolve(
                reduced, options, "template_file", "reduction template", "*.xml", lambda p, r: True, side_root, warnings
            )
        except RunInputError as exc:
            yield exc
            continue
        yield RunInputs(split, reduced, template, warnings, side_root)
    with_sidecar = {p.parent for p in Path(root).rglob(SIDECAR_GLOB)}
    for folder in sorted({p.parent for p in Path(root).rglob("r*_*.txt") if _SLICE.match(p.name)} - with_sidecar):
        yield RunInputError(
            f"{folder}: reduced files but no {SIDECAR_NAME} sidecar: skipped (the reducer "
            "writes it last; `broker tnr package --run-number N` packages a run without one)",
            where=folder,
        )


def _package(inputs: RunInputs) -> RunPackage:
    package = package_run(inputs.split_file, inputs.reduced_dir, inputs.template_file, side_root=inputs.root)
    package.warnings[:0] = inputs.warnings
    return package


def package_one(inputs: RunInputs, lake: Lake | str | Path, namespace: str) -> RunSummary:
    """Read and commit one run; a run that cannot be packaged is a summary with its error."""
    try:
        package = _package(inputs)
    except (ValueError, OSError) as exc:
        return RunSummary(str(inputs.reduced_dir), None, 0, 0, list(inputs.warnings), str(exc))
    return _committed(inputs, package, lake, namespace)


# Runs committed together (one commit per table for all of them): a commit's fixed
# cost (catalog round trips, manifest list, metadata file) is paid once per batch.
BATCH_RUNS = 8


class _Batches:
    """Runs read, waiting for their commit: ``batch`` runs per commit pair. A batch
    whose commit fails is committed again run by run, so one run's fault is that
    run's alone."""

    def __init__(
        self, lake: Lake | str | Path, namespace: str, batch: int, record: Callable[[RunSummary], None]
    ) -> None:
        self.lake, self.namespace, self.batch, self.record = lake, namespace, batch, record
        self.ready: list[tuple[RunInputs, RunPackage]] = []

    def add(self, inputs: RunInputs, package: RunPackage | str) -> None:
        """A run read (or why it could not be); commits when a batch is full."""
        if isinstance(package, str):
            self.record(RunSummary(str(inputs.reduced_dir), None, 0, 0, list(inputs.warnings), package))
        else:
            self.ready.append((inputs, package))
        if len(self.ready) >= self.batch:
            self.commit()

    def commit(self) -> None:
        if not self.ready:
            return
        try:
            write_runs(self.lake, [package for _, package in self.ready], self.namespace)
        except (ValueError, OSError, LakeError) as exc:
            if len(self.ready) == 1:
                self.record(RunSummary(str(self.ready[0][0].reduced_dir), None, 0, 0, [], str(exc)))
            else:  # which run is at fault: each alone
                for inputs, package in self.ready:
                    self.record(_committed(inputs, package, self.lake, self.namespace))
        else:
            for inputs, package in self.ready:
                self.record(_summary(inputs, package))
        self.ready.clear()


def _read(inputs: RunInputs) -> RunPackage | str:
    """One run read and conformed, or why it could not be (what a worker sends back)."""
    try:
        return _package(inputs)
    except (ValueError, OSError) as exc:
        return str(exc)


def _found(root: Path, record: Callable[[RunSummary], None], inputs_root: Path | None) -> list[RunInputs]:
    runs = []
    for item in find_runs(root, inputs_root):
        if isinstance(item, RunInputError):
            record(RunSummary(str(item.where), None, 0, 0, [], str(item)))
        else:
            runs.append(item)
    return runs


def package_many(
    root: Path,
    lake: Lake | str | Path,
    namespace: str,
    jobs: int = 1,
    on_done: Callable[[RunSummary], None] | None = None,
    batch: int = BATCH_RUNS,
    cluster: Client | None = None,
    inputs_root: Path | None = None,
) -> list[RunSummary]:
    """Package every run under ``root``; a failing run is reported and skipped.

    Runs are read on ``jobs`` worker processes (inline for one job), or on the Dask
    ``cluster``'s workers, while this process commits the runs already read,
    ``batch`` runs per commit pair: reading and committing overlap. Locally at most
    ``jobs`` runs are being read and ``batch`` wait for their commit, so memory does
    not grow with the campaign.
    """
    summaries: list[RunSummary] = []

    def record(summary: RunSummary) -> None:
        summaries.append(summary)
        if on_done:
            on_done(summary)

    runs = _found(root, record, inputs_root)
    batches = _Batches(lake, namespace, batch, record)
    if cluster is not None:
        from manifest_broker.cluster import map_unordered

        for inputs, package in map_unordered(cluster, _read_with_inputs, runs, "broker-tnr-read"):
            batches.add(inputs, package)
        batches.commit()
        return summaries
    pool = (
        worker_pool(
            jobs,
            ["polars", "pyarrow", "manifest_broker.tnr.package", "manifest_broker.tnr.lifeline"],
            initializer=die_with,
            initargs=(os.getpid(),),
        )
        if jobs > 1
        else None
    )
    pending: deque[tuple[RunInputs, Future[RunPackage | str] | None]] = deque()

    def take() -> None:
        inputs, future = pending.popleft()
        batches.add(inputs, future.result() if future else _read(inputs))

    try:
        for inputs in runs:
            pending.append((inputs, submit(pool, _read, inputs) if pool else None))
            while len(pending) > (jobs if pool else 0):
                take()
        while pending:
            take()
        batches.commit()
    except BaseException:
        if pool:  # Ctrl-C or SIGTERM: the runs being read are dropped now, not finished (a re-run reads them)
            _kill_workers(pool)
        raise
    finally:
        if pool:  # runs not yet read are dropped; the workers ignore SIGINT
            shut_down(pool)
    return summaries


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """End the pool's workers at once (what they were reading is lost, nothing else:
    every commit is made by this process)."""
    for process in list(getattr(pool, "_processes", {}).values()):
        try:
            process.kill()
        except (OSError, ValueError):
            pass


def _read_with_inputs(inputs: RunInputs) -> tuple[RunInputs, RunPackage | str]:
    return inputs, _read(inputs)


def _summary(inputs: RunInputs, package: RunPackage) -> RunSummary:
    return RunSummary(
        str(inputs.reduced_dir), package.run_number, package.reflectivity.num_rows, package.points, package.warnings
    )


def _committed(inputs: RunInputs, package: RunPackage, lake: Lake | str | Path, namespace: str) -> RunSummary:
    try:
        write_runs(lake, [package], namespace)
    except (ValueError, OSError, LakeError) as exc:
        return RunSummary(str(inputs.reduced_dir), None, 0, 0, list(package.warnings), str(exc))
    return _summary(inputs, package)
