"""Campaigns: every run under a directory, packaged one commit per run with bounded memory."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from manifest_broker.tnr.inputs import RunInputError, read_json
from manifest_broker.tnr.lake import Lake, LakeError, write_run
from manifest_broker.tnr.package import RunPackage, package_run


@dataclass(frozen=True)
class RunInputs:
    split_file: Path
    reduced_dir: Path
    template_file: Path


@dataclass
class RunSummary:
    reduced_dir: str
    run_number: int | None
    slices: int
    points: int
    warnings: list[str]
    error: str | None = None


def _named_or_beside(
    named: str | None, places: list[Path], pattern: str, accept: Callable[[Path], bool]
) -> Path | None:
    if named:
        for candidate in [Path(named), *(p / Path(named).name for p in places)]:
            if candidate.is_file():
                return candidate
    for place in places:
        for candidate in sorted(place.glob(pattern)):
            if accept(candidate):
                return candidate
    return None


def _is_split(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "intervals" in data and "source_directory" in data


def find_runs(root: Path) -> Iterator[RunInputs | RunInputError]:
    """Each reduced directory (one with a sidecar) with the split file and template that
    its reduction_options.json names, or that sit beside it or one level up."""
    for sidecar in sorted(Path(root).rglob("r*_eis_reduction.json")):
        reduced = sidecar.parent
        options_path = reduced / "reduction_options.json"
        try:
            options = read_json(options_path, "reduction options") if options_path.exists() else {}
        except RunInputError as exc:
            yield exc
            continue
        places = [reduced, reduced.parent]
        split = _named_or_beside(options.get("intervals_file"), places, "*.json", _is_split)
        template = _named_or_beside(options.get("template_file"), places, "*.xml", lambda p: True)
        if split is None or template is None:
            missing = "split file" if split is None else "reduction template"
            yield RunInputError(f"{reduced}: no {missing} named in reduction_options.json or beside it")
            continue
        yield RunInputs(split, reduced, template)


def _package(inputs: RunInputs) -> RunPackage:
    return package_run(inputs.split_file, inputs.reduced_dir, inputs.template_file)


def package_many(root: Path, lake: Lake | str | Path, namespace: str, jobs: int = 1,
                 on_done: Callable[[RunSummary], None] | None = None) -> list[RunSummary]:  # fmt: skip
    """Package every run under ``root``; a failing run is reported and skipped.

    Reading is spread over ``jobs`` processes; at most ``jobs`` runs are in memory at
    once and each is committed (its own commit per table) as soon as it is read.
    """
    found = list(find_runs(root))
    summaries: list[RunSummary] = []

    def record(summary: RunSummary) -> None:
        summaries.append(summary)
        if on_done:
            on_done(summary)

    for item in found:
        if isinstance(item, RunInputError):
            record(RunSummary(str(item).split(":")[0], None, 0, 0, [], str(item)))
    runs = [r for r in found if isinstance(r, RunInputs)]
    # forkserver: polars' thread pool does not survive a plain fork of this process.
    pool = (
        ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("forkserver"))
        if jobs > 1
        else None
    )
    try:
        pending: list = []
        for index in range(len(runs) + 1):
            if index < len(runs):
                pending.append((runs[index], pool.submit(_package, runs[index]) if pool else None))
            while pending and (len(pending) > max(jobs - 1, 0) or index == len(runs)):
                inputs, future = pending.pop(0)
                try:
                    package = future.result() if future else _package(inputs)
                    write_run(lake, package, namespace)
                    record(RunSummary(str(inputs.reduced_dir), package.run_number, package.reflectivity.num_rows,
                                      package.points, package.warnings))  # fmt: skip
                except (ValueError, OSError, LakeError) as exc:
                    record(RunSummary(str(inputs.reduced_dir), None, 0, 0, [], str(exc)))
    finally:
        if pool:
            pool.shutdown()
    return summaries
