"""Assemble one tNR run: reduced files matched to their intervals, every metadata source kept.

Everything is read, matched, checked and cast to the declared table schemas here,
before anything is written: a run that cannot be packaged fails before the lake
is touched.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from manifest_broker import __version__
from manifest_broker.progress import Progress
from manifest_broker.tnr.inputs import (
    SIDECAR_NAME,
    RunInputError,
    Template,
    find_sidecar,
    inputs_fingerprint,
    read_sidecar,
    read_split,
    read_template,
    side_file_json,
    sidecar_run_number,
)
from manifest_broker.tnr.reduced import ReducedFileError, read_reduced_files
from manifest_broker.tnr.schema import REFLECTIVITY, RUNS, SchemaMismatch, arrow_schema, conform, polars_schema

_RUN_FILE = re.compile(r"^r(\d+)_.+\.(?:txt|ort)$")
SLICE_SUFFIXES = (".txt", ".ort")  # the reducer's text files; ORSO files, where the reduction library is heading
# Interval fields copied from the split file, with their types.
INTERVAL_FIELDS: dict[str, pl.DataType] = {
    "duration_seconds": pl.Float64(),
    "hold_index": pl.Int64(),
    "n_frequencies": pl.Int64(),
    "avg_ewe_v": pl.Float64(),
    "first_time_s": pl.Float64(),
    "last_time_s": pl.Float64(),
    "step_number": pl.Int64(),
    "potential_V": pl.Float64(),
    "potential_vs": pl.String(),
    "frequency_hz": pl.Float64(),
    "measurement_index": pl.Int64(),
    "ewe_v": pl.Float64(),
    "z_ohm": pl.Float64(),
    "im_z_ohm": pl.Float64(),
    "phase_deg": pl.Float64(),
}
# The offsets real time zones use, in hours (UTC-12 to UTC+14).
TZ_OFFSET_RANGE = (-12, 14)
HEADER_FIELDS = ("reduction_version", "run_title", "run_start_time", "theta_offset", "q_summing")


def clean_label(label: str) -> str:
    """The reducer's file-name form of a label: ',' and ' ' become '_'."""
    return label.replace(",", "_").replace(" ", "_")


def reducer_name(interval: dict[str, Any], position: int) -> str:
    """What the reducer names interval ``position`` after: its label, else its
    filename (per-frequency split files have no label), else ``interval_<i>``."""
    return str(interval.get("label") or interval.get("filename") or f"interval_{position}")


@dataclass
class RunPackage:
    """One run, ready to write: both tables' rows conform to the declared schemas."""

    run_number: int
    package_id: str
    reflectivity: pa.Table
    run: pa.Table
    warnings: list[str] = field(default_factory=list)

    @property
    def points(self) -> int:
        return int(pc.sum(self.reflectivity["n_points"]).as_py() or 0)


@dataclass
class Slices:
    """The reduced files of a run in slice order, with the split interval of each."""

    order: list[str]  # cleaned names
    split_index: dict[str, int]  # cleaned name -> position of its interval in the split file
    files: dict[str, Path]  # cleaned name -> reduced file
    n_intervals: int


def interval_type(interval: dict[str, Any]) -> str | None:
    """``hold`` or ``eis``: as the split file says, else ``eis`` for a per-frequency
    interval (one EIS measurement; the reducer records it so)."""
    return interval.get("interval_type") or ("eis" if "frequency_hz" in interval else None)


def to_utc(value: str | None, offset_hours: float, where: str) -> datetime | None:
    """A split-file time in UTC by the reducer's convention: UTC = local + tz_offset hours
    (its default 5.0 is US Eastern standard time: local 22:58 is 03:58 UTC next day).
    A time that carries its own offset is converted by that offset instead."""
    if value is None:
        return None
    try:
        local = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise RunInputError(f"{where}: timestamp {value!r} is not ISO 8601", where=where) from exc
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    return (local + timedelta(hours=offset_hours)).replace(tzinfo=UTC)


def _number(text: Any) -> float | None:
    """A template or options value as a number; None for absent, 'N/A' or other text
    (the raw XML and JSON keep every value as written)."""
    try:
        return None if text is None else float(text)
    except (TypeError, ValueError):
        return None


def _integer(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


def _winners(names: list[str], where: str, strict: bool, warnings: list[str]) -> dict[str, int]:
    """Cleaned name -> position of the interval whose file it is. The reducer writes
    in interval order, so when two intervals share a cleaned name the later one
    overwrote the earlier: the file holds the last."""
    winner: dict[str, int] = {}
    clashes = []
    for position, name in enumerate(names):
        if name in winner:
            clashes.append(
                f"intervals {winner[name]} and {position} both write *_{name}.txt; the file holds the later one ({position})"
            )
        winner[name] = position
    if clashes and strict:
        raise RunInputError(f"{where}: " + "; ".join(clashes))
    warnings += [f"{where}: {c}" for c in clashes]
    return winner


def match_slices(
    split: dict[str, Any],
    split_file: Path,
    sidecar: dict[str, Any],
    sidecar_path: Path | None,
    reduced_dir: Path,
    run_number: int,
    strict: bool,
    warnings: list[str],
) -> Slices:
    """Match the reduced files to the split file's intervals the way the reducer named them.

    The sidecar, when present, gives the order; its intervals must be the split
    file's. Files are found by their exact name ``r<run>_<clean name>.txt``.

    Raises:
        RunInputError: for intervals the sidecar lists but the split file lacks, no
            file at all, or (``strict``) any unmatched file (also one of another
            run) or interval without a file.
    """
    intervals = split["intervals"]
    names = [clean_label(reducer_name(iv, i)) for i, iv in enumerate(intervals)]
    winner = _winners(names, str(split_file), strict, warnings)
    sidecar_intervals = sidecar.get("intervals") if sidecar_path is not None else None
    if isinstance(sidecar_intervals, list) and sidecar_intervals:
        listed = [clean_label(reducer_name(iv, i)) for i, iv in enumerate(sidecar_intervals) if isinstance(iv, dict)]
        # The reducer lists each interval once; one listed twice (same name, start and
        # end) has no single place in time order. Two intervals sharing a name are
        # another matter: the later one's file overwrote the earlier (see _winners).
        entries = Counter(
            (clean_label(reducer_name(iv, i)), str(iv.get("start")), str(iv.get("end")))
            for i, iv in enumerate(sidecar_intervals)
            if isinstance(iv, dict)
        )
        if twice := sorted({name for (name, _, _), count in entries.items() if count > 1}):
            raise RunInputError(
                f"{sidecar_path}: intervals listed more than once: {', '.join(twice[:5])}", where=sidecar_path
            )
        if unknown := [n for n in listed if n not in winner]:
            raise RunInputError(
                f"{sidecar_path}: intervals {', '.join(unknown[:5])} are not in the split file {split_file}",
                where=sidecar_path,
            )
    else:
        if sidecar_path is not None:  # a sidecar without intervals: the split file's order is the reducer's
            warnings.append(f"{sidecar_path}: no intervals listed; slice order taken from the split file")
        listed = names
    last = {name: position for position, name in enumerate(listed)}
    order = sorted(last, key=last.__getitem__)

    files: dict[str, Path] = {}
    unmatched: list[str] = []
    wanted = {f"r{run_number}_{name}{suffix}": name for name in order for suffix in SLICE_SUFFIXES}
    for name in sorted(os.listdir(reduced_dir)):
        if not name.endswith(SLICE_SUFFIXES):
            continue
        if name in wanted:
            if (other := files.get(wanted[name])) is not None:
                raise RunInputError(
                    f"{reduced_dir}: interval {wanted[name]!r} has two reduced files, {other.name} "
                    f"and {name}; keep one",
                    where=reduced_dir,
                )
            files[wanted[name]] = Path(reduced_dir, name)
        elif (m := _RUN_FILE.match(name)) and int(m.group(1)) != run_number:
            unmatched.append(f"reduced file {name} is of run {m.group(1)}, not of run {run_number}: left out")
        elif m:
            unmatched.append(f"reduced file {name} matches no interval")
        else:  # a whole-run REFL_* file of the reduction library, or any other stray text file
            unmatched.append(f"{name} is not a slice file r{run_number}_<interval>.txt: left out")
    missing = [f"interval {name!r} has no reduced file r{run_number}_{name}.txt" for name in order if name not in files]
    if (missing or unmatched) and strict:
        raise RunInputError(f"{reduced_dir}: " + "; ".join(missing + unmatched))
    warnings += missing + unmatched
    if not files:
        raise RunInputError(
            f"{reduced_dir}: no reduced file r{run_number}_<interval>.txt matches an interval of {split_file}",
            where=reduced_dir,
        )
    return Slices([n for n in order if n in files], winner, files, len(listed))


def _interval_rows(slices: Slices, split: dict[str, Any], offset: float | None, where: str) -> pl.DataFrame:
    rows = []
    for slice_index, name in enumerate(slices.order):
        position = slices.split_index[name]
        iv = split["intervals"][position]
        row: dict[str, Any] = {
            "slice_index": slice_index,
            "split_index": position,
            "interval_label": reducer_name(iv, position),
            "interval_type": interval_type(iv),
            "interval_start": to_utc(iv.get("start"), offset or 0.0, where),
            "interval_end": to_utc(iv.get("end"), offset or 0.0, where),
            "eis_filename": iv.get("filename"),
        }
        row.update({k: iv.get(k) for k in INTERVAL_FIELDS})
        rows.append(row)
    schema = {
        "slice_index": pl.Int32(),
        "split_index": pl.Int32(),
        "interval_label": pl.String(),
        "interval_type": pl.String(),
        "interval_start": pl.Datetime("us", "UTC"),
        "interval_end": pl.Datetime("us", "UTC"),
        "eis_filename": pl.String(),
        **INTERVAL_FIELDS,
    }
    try:
        return pl.DataFrame(rows, schema=schema, strict=False)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        raise RunInputError(
            f"{where}: an interval field has an unexpected type ({str(exc).splitlines()[0]})", where=where
        ) from exc


def reflectivity_rows(
    slices: Slices,
    split: dict[str, Any],
    offset: float | None,
    split_file: Path,
    run_number: int,
    package_id: str,
    warnings: list[str],
    progress: Progress | None = None,
) -> pa.Table:
    """One row per reduced file: the data lists, the header fields, the interval's fields."""
    paths = [slices.files[name] for name in slices.order]
    data, read_warnings = read_reduced_files(paths, progress)
    warnings += read_warnings
    folder = os.path.realpath(paths[0].parent)
    data = data.with_columns(pl.Series("filepath", [os.path.join(folder, p.name) for p in paths], pl.String))
    frame = pl.concat([data, _interval_rows(slices, split, offset, str(split_file))], how="horizontal")
    finite_r = pl.col("R").list.eval(pl.element().filter(pl.element().is_finite()))
    finite_q = pl.col("Q").list.eval(pl.element().filter(pl.element().is_finite()))
    header = pl.col("header_json").str.json_decode(
        pl.Struct({f: pl.String for f in (*HEADER_FIELDS, "meta_json", "angles_json")})
    )
    frame = frame.with_columns(
        pl.lit(run_number, pl.Int64).alias("run_number"),
        pl.lit(package_id).alias("package_id"),
        finite_q.list.min().alias("Q_min"),
        finite_q.list.max().alias("Q_max"),
        finite_r.list.min().alias("R_min"),
        finite_r.list.max().alias("R_max"),
        header.alias("_h"),
    ).unnest("_h")
    return conform(frame.to_arrow(), arrow_schema(REFLECTIVITY))


def run_row(
    *,
    run_number: int,
    package_id: str,
    split: dict[str, Any],
    split_file: Path,
    reduced_dir: Path,
    sidecar: dict[str, Any],
    options: dict[str, Any],
    template: Template,
    template_file: Path,
    offset: float | None,
    n_intervals: int,
    reflectivity: pa.Table,
    warnings: list[str],
) -> pa.Table:
    """The run's one row in ``runs``: the spec's metadata columns plus what users filter on."""
    blocks = template.blocks
    row = {
        "run_number": run_number,
        "package_id": package_id,
        "total_duration": _number(sidecar.get("duration")),
        "n_intervals": _integer(sidecar.get("n_intervals")) or n_intervals,
        "n_reduced_files": reflectivity.num_rows,
        "source_directory": split.get("source_directory"),
        "eis_pattern": split.get("pattern"),
        "resolution": split.get("resolution"),
        "reduction_template_xml": template.xml,
        "template_sha256": template.sha256,
        "template_encoding": template.encoding,
        "packaged_timestamp": datetime.now(UTC),
        "packager_version": __version__,
        "intervals_json": json.dumps(split["intervals"]),
        "split_metadata_json": json.dumps(split),
        "reduction_metadata_json": json.dumps(sidecar) if sidecar else None,
        "reduction_options_json": json.dumps(options) if options else None,
        "tz_offset_hours": offset,
        "split_file": Path(split_file).name,
        "template_file": Path(template_file).name,
        "split_path": os.path.realpath(split_file),
        "template_path": os.path.realpath(template_file),
        "reduced_dir": os.path.realpath(reduced_dir),
        "inputs_fingerprint": inputs_fingerprint(split_file, reduced_dir, template_file),
        "event_file": options.get("event_file"),
        "scan_index": _integer(options.get("scan_index")),
        "theta_offset": _number(options.get("theta_offset")),
        "instrument_name": template.header.get("instrument_name"),
        "reduction_version": template.header.get("version"),
        "mantid_version": template.header.get("mantid_version"),
        "n_angles": len(blocks),
        "n_nan_R": int(pc.sum(reflectivity["n_nan"]).as_py() or 0),
        "n_negative_R": int(pc.sum(reflectivity["n_negative_R"]).as_py() or 0),
        **{f: [b[f] for b in blocks] for f in ("data_sets", "norm_dataset", "scaling_factor_file")},
        **{f: [_number(b[f]) for b in blocks] for f in ("incident_angle", "q_step", "q_min", "angle_offset")},
        "warnings_json": json.dumps(warnings) if warnings else None,
    }
    # Built against the declared dtypes: a value of another type fails here.
    return conform(pl.DataFrame([row], schema=polars_schema(RUNS), orient="row").to_arrow(), arrow_schema(RUNS))


def _run_number(sidecar_path: Path | None, sidecar: dict[str, Any], given: int | None, reduced_dir: Path) -> int:
    if sidecar_path is None:
        if given is None:
            raise RunInputError(
                f"{reduced_dir}: no {SIDECAR_NAME} sidecar; give --run-number to package without it",
                where=reduced_dir,
            )
        return given
    named = sidecar_run_number(sidecar_path.name)
    assert named is not None  # find_sidecar matched the name
    # The file name carries the run number, as the reducer writes it; a run_number
    # field, when there is one, must say the same.
    if "run_number" in sidecar:
        found = _integer(sidecar.get("run_number"))
        if found is None:
            raise RunInputError(
                f"{sidecar_path}: run_number {sidecar.get('run_number')!r} is not an integer", where=sidecar_path
            )
        if found != named:
            raise RunInputError(
                f"{sidecar_path}: run_number {found} differs from the run {named} in the file name", where=sidecar_path
            )
    if given is not None and given != named:
        raise RunInputError(f"{sidecar_path}: run number {named} differs from --run-number {given}", where=sidecar_path)
    return named


def package_run(
    split_file: Path,
    reduced_dir: Path,
    template_file: Path,
    *,
    tz_offset: float | None = None,
    run_number: int | None = None,
    strict: bool = False,
    progress: Progress | None = None,
    side_root: Path | None = None,
) -> RunPackage:
    """Read, match and check everything of one run; nothing is written.

    Args:
        split_file: The EIS interval extractor's JSON.
        reduced_dir: Directory with the reduced files and (normally) the sidecar.
        template_file: The reduction template XML.
        tz_offset: Hours to add to the split file's local times to get UTC (the
            reducer's convention); default: reduction_options.json, else 0.
        run_number: Required when the sidecar is missing; must agree with it otherwise.
        strict: Unmatched files, intervals without a file and intervals sharing a
            file name are errors, not warnings.
        progress: Told ``(stage, done, total)`` while reduced files are read.
        side_root: The folder the split file and template must lie in (symlinks
            out of it refused); default: the folder each resolves into. The
            sidecar, the options and the reduced files must lie in ``reduced_dir``.

    Returns:
        A :class:`RunPackage` whose tables conform to the declared schemas.

    Raises:
        RunInputError, ReducedFileError: naming the file (and line) at fault.
    """
    reduced_dir = Path(reduced_dir)
    warnings: list[str] = []
    split = read_split(split_file, side_root)
    template = read_template(template_file, side_root)
    sidecar_path = find_sidecar(reduced_dir)
    sidecar: dict[str, Any] = read_sidecar(sidecar_path, reduced_dir) if sidecar_path else {}
    number = _run_number(sidecar_path, sidecar, run_number, reduced_dir)
    if sidecar_path is None:
        warnings.append(f"{reduced_dir}: no sidecar; run number {number} from --run-number, order from the split file")

    options_path = reduced_dir / "reduction_options.json"
    options = side_file_json(options_path, "reduction options", reduced_dir) if options_path.exists() else {}
    if not isinstance(options, dict):
        raise RunInputError(f"{options_path}: reduction options are not a JSON object", where=options_path)
    offset = tz_offset if tz_offset is not None else _number(options.get("tz_offset"))
    if offset is not None and not TZ_OFFSET_RANGE[0] <= offset <= TZ_OFFSET_RANGE[1]:
        where = "--tz-offset" if tz_offset is not None else f"{options_path}: tz_offset"
        raise RunInputError(
            f"{where} {offset:g} h is outside the offsets real time zones use "
            f"({TZ_OFFSET_RANGE[0]}..+{TZ_OFFSET_RANGE[1]})",
            where=options_path,
        )
    if offset is None:
        # Unknown, and stored as unknown (null): the times are taken as UTC, which
        # is right only if the split file's local clock was UTC.
        warnings.append(
            "no tz_offset in reduction_options.json and none given: interval times taken as UTC "
            "(tz_offset_hours stored as null)"
        )

    slices = match_slices(split, Path(split_file), sidecar, sidecar_path, reduced_dir, number, strict, warnings)
    package_id = uuid.uuid4().hex
    try:
        reflectivity = reflectivity_rows(
            slices, split, offset, Path(split_file), number, package_id, warnings, progress
        )
        run = run_row(
            run_number=number,
            package_id=package_id,
            split=split,
            split_file=Path(split_file),
            reduced_dir=reduced_dir,
            sidecar=sidecar,
            options=options,
            template=template,
            template_file=Path(template_file),
            offset=offset,
            n_intervals=slices.n_intervals,
            reflectivity=reflectivity,
            warnings=warnings,
        )
    except (RunInputError, ReducedFileError):  # they name their own file and line
        raise
    except (SchemaMismatch, pa.ArrowException, pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        message = str(exc).splitlines()[0]
        raise RunInputError(
            f"{split_file}: run {number} does not fit the table schema ({message})", where=split_file
        ) from exc
    return RunPackage(number, package_id, reflectivity, run, warnings)
