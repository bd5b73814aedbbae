"""One run, end to end: read and check everything, then (unless validating) commit it
to the lake and write the spec's two Parquet files.

``broker tnr package`` and the drop-in ``iceberg-packager`` are this path with
their own options; the command line only parses them and renders the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from manifest_broker.progress import Progress
from manifest_broker.tnr.inputs import SIDECAR_NAME, RunInputError, find_sidecar
from manifest_broker.tnr.lake import DEFAULT_NAMESPACE, Lake
from manifest_broker.tnr.package import RunPackage, package_run
from manifest_broker.tnr.reduced import ReducedFileError

_REDUCED_NAME = re.compile(r"^r(\d+)_.+\.txt$")


@dataclass(frozen=True)
class PackageOptions:
    """What one packaging is asked to do."""

    split_file: Path
    """The EIS interval extractor's split JSON."""
    reduced_dir: Path
    """The run's folder: reduced files, sidecar, reduction options."""
    template_file: Path
    """The reduction template XML."""
    output: Path | None = None
    """Also write the spec's two Parquet files here (``<name>`` and ``<name>_metadata``)."""
    validate_only: bool = False
    """Run every check, write nothing."""
    namespace: str = DEFAULT_NAMESPACE
    """Iceberg namespace of the two tables."""
    tz_offset: float | None = None
    """Hours added to the split file's local times to get UTC (default: the
    reduction options', else unknown)."""
    run_number: int | None = None
    """The run number, needed when the sidecar is missing."""
    strict: bool = False
    """Unmatched files or intervals and shared file names are errors, not warnings."""


@dataclass
class PackageAnswer:
    """What one packaging did: the ``--json`` answer of ``tnr package`` and ``iceberg-packager``."""

    run_number: int
    """The run's number."""
    slices: int
    """Reduced files (time slices) packaged."""
    points: int
    """Q points over every slice."""
    n_nan_R: int
    """R values that are NaN, kept as they are."""
    n_negative_R: int
    """R values below zero, kept as they are."""
    tz_offset_hours: float | None
    """The offset applied to the split file's times (None: unknown, times taken as UTC)."""
    warnings: list[str]
    """Everything worth a look that did not stop the run."""
    written: bool
    """The run was committed to the lake (False with ``validate_only``)."""
    lake: str
    """The lake's name (its folder or catalog URI, without credentials)."""
    namespace: str
    """Iceberg namespace of the two tables."""
    repaired: str | None = None
    """A run left inconsistent by a killed packaging, replaced by this one."""
    files: list[str] = field(default_factory=list)
    """The spec's Parquet files written."""


def run_number_to_validate(reduced_dir: Path, warnings: list[str]) -> int | None:
    """For ``validate_only`` without a sidecar: the one run number the reduced files'
    names carry (``r<run>_*.txt``), said in a warning; None when there is a sidecar
    or the names do not agree (the usual error then says what is missing). The
    reference answers "valid" for such a folder; so do we."""
    try:
        if find_sidecar(reduced_dir) is not None:
            return None
    except RunInputError:
        return None
    numbers = {m.group(1) for p in reduced_dir.iterdir() if (m := _REDUCED_NAME.match(p.name))}
    if len(numbers) != 1:
        return None
    number = int(numbers.pop())
    warnings.append(
        f"{reduced_dir}: no {SIDECAR_NAME} sidecar; validated as run {number} (the reduced "
        "files' names); packaging it needs the sidecar or --run-number"
    )
    return number


def package_one_run(
    options: PackageOptions, lake: Lake, progress: Progress | None = None
) -> tuple[RunPackage, PackageAnswer]:
    """Package one run: check everything, then (unless validating) replace the run's
    rows in both tables and write the spec files.

    Raises:
        RunInputError, ReducedFileError: naming the file at fault, and saying that
            nothing was written.
    """
    from manifest_broker.tnr.lake import write_run
    from manifest_broker.tnr.spec_files import write_spec_files

    found: list[str] = []
    run_number = options.run_number
    if options.validate_only and run_number is None:
        run_number = run_number_to_validate(options.reduced_dir, found)
    try:
        package = package_run(
            options.split_file,
            options.reduced_dir,
            options.template_file,
            tz_offset=options.tz_offset,
            run_number=run_number,
            strict=options.strict,
            progress=progress,
        )
    except (RunInputError, ReducedFileError) as exc:
        raise type(exc)(f"{exc}; nothing was written", where=exc.where) from exc
    package.warnings[:0] = found
    # Only the numeric fields: a timestamp's as_py() makes pyarrow import pandas.
    run = package.run.select(["n_nan_R", "n_negative_R", "tz_offset_hours"]).to_pylist()[0]
    answer = PackageAnswer(
        run_number=package.run_number,
        slices=package.reflectivity.num_rows,
        points=package.points,
        **run,
        warnings=package.warnings,
        written=False,
        lake=str(lake.name),
        namespace=options.namespace,
    )
    if options.validate_only:
        return package, answer
    if progress:
        progress("writing the lake", 0, 1)
    written = write_run(lake, package, options.namespace)
    if progress:
        progress("writing the lake", 1, 1)
    answer.written, answer.repaired = True, written.repaired
    if options.output is not None:
        options.output.parent.mkdir(parents=True, exist_ok=True)  # as the reference does (checked writable first)
        answer.files = [str(f) for f in write_spec_files(package, options.output)]
    return package, answer
