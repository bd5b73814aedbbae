"""Assemble one tNR run: reduced files matched to their intervals, every metadata source kept."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from pipeline import __version__
from pipeline.tnr.inputs import RunInputError, find_sidecar, read_json, read_split, read_template
from pipeline.tnr.reduced import read_reduced_files

_REDUCED = re.compile(r"^r(\d+)_(.+)\.txt$")
# Interval fields copied from the split file, with their types.
INTERVAL_FIELDS: dict[str, pl.DataType] = {
    "duration_seconds": pl.Float64(), "hold_index": pl.Int64(), "n_frequencies": pl.Int64(),
    "avg_ewe_v": pl.Float64(), "first_time_s": pl.Float64(), "last_time_s": pl.Float64(),
    "step_number": pl.Int64(), "potential_V": pl.Float64(), "potential_vs": pl.String(),
}  # fmt: skip
HEADER_FIELDS = ("reduction_version", "run_title", "run_start_time", "theta_offset", "q_summing")


def clean_label(label: str) -> str:
    """The reducer's file-name form of a label: ',' and ' ' become '_'."""
    return label.replace(",", "_").replace(" ", "_")


@dataclass
class RunPackage:
    run_number: int
    reflectivity: pa.Table
    run: pa.Table
    warnings: list[str] = field(default_factory=list)

    @property
    def points(self) -> int:
        return int(pa.compute.sum(self.reflectivity["n_points"]).as_py() or 0)


def _utc(value: str | None, offset_hours: float, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        local = datetime.fromisoformat(value)
    except ValueError as exc:
        raise RunInputError(f"{where}: timestamp {value!r} is not ISO 8601") from exc
    if local.tzinfo is not None:
        return local.astimezone(timezone.utc)
    return (local - timedelta(hours=offset_hours)).replace(tzinfo=timezone.utc)


def _number(text: str | None) -> float | None:
    """A template value as a number; None for absent, 'N/A' or non-numeric text
    (the raw XML keeps every value as written)."""
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def _duplicates(labels: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({x for x in labels if x in seen or seen.add(x)})  # type: ignore[func-returns-value]


def package_run(
    split_file: Path,
    reduced_dir: Path,
    template_file: Path,
    *,
    tz_offset: float | None = None,
    run_number: int | None = None,
    strict: bool = False,
) -> RunPackage:
    """Read and match everything of one run; nothing is written.

    Args:
        split_file: The EIS interval extractor's JSON.
        reduced_dir: Directory with the reduced files and the sidecar.
        template_file: The reduction template XML.
        tz_offset: Hours the reducer shifted local times by; default: reduction_options.json.
        run_number: Required when the sidecar is missing; must agree with it otherwise.
        strict: Unmatched files and intervals without a file are errors, not warnings.

    Raises:
        RunInputError, ReducedFileError: naming the file (and line) at fault.
    """
    reduced_dir = Path(reduced_dir)
    warnings: list[str] = []
    split = read_split(split_file)
    by_label = {iv["label"]: iv for iv in split["intervals"]}
    if dup := _duplicates([iv["label"] for iv in split["intervals"]]):
        raise RunInputError(f"{split_file}: duplicate interval labels {', '.join(dup)}: files cannot be matched unambiguously")
    sidecar_path = find_sidecar(reduced_dir)
    sidecar: dict[str, Any] = {}
    if sidecar_path is None:
        if run_number is None:
            raise RunInputError(f"{reduced_dir}: no r<run>_eis_reduction.json sidecar; give --run-number to package without it")
        warnings.append(f"{reduced_dir}: no sidecar; run number {run_number} from --run-number, order from the split file")
        order = list(by_label)
    else:
        sidecar = read_json(sidecar_path, "reduction sidecar")
        found = int(sidecar.get("run_number", -1))
        if run_number is not None and run_number != found:
            raise RunInputError(f"{sidecar_path}: run number {found} differs from --run-number {run_number}")
        run_number = found
        order = [iv["label"] for iv in sidecar.get("intervals", [])]
        if dup := _duplicates(order):
            raise RunInputError(f"{sidecar_path}: duplicate interval labels {', '.join(dup)}")
        if unknown := [label for label in order if label not in by_label]:
            raise RunInputError(f"{sidecar_path}: intervals {', '.join(unknown[:5])} are not in the split file {split_file}")
    assert run_number is not None

    options_path = reduced_dir / "reduction_options.json"
    options = read_json(options_path, "reduction options") if options_path.exists() else {}
    offset = tz_offset if tz_offset is not None else options.get("tz_offset")
    if offset is None:
        warnings.append("no tz_offset in reduction_options.json and none given: interval times taken as UTC")
        offset = 0.0
    offset = float(offset)

    files: dict[str, Path] = {}
    for path in sorted(reduced_dir.glob("r*.txt")):
        m = _REDUCED.match(path.name)
        if not m:
            continue
        if int(m.group(1)) != run_number:
            raise RunInputError(f"{path}: run number {m.group(1)} in the file name differs from the sidecar's {run_number}")
        files[m.group(2)] = path
    clean = {clean_label(label): label for label in order}
    if len(clean) != len(order):
        raise RunInputError(f"{split_file}: labels that differ only by ',' or ' ' map to the same file name")
    problems = [f"interval {label!r} has no reduced file r{run_number}_{c}.txt" for c, label in clean.items() if c not in files]
    problems += [f"reduced file {files[c].name} matches no interval" for c in files if c not in clean]
    if problems and strict:
        raise RunInputError(f"{reduced_dir}: " + "; ".join(problems))
    warnings += problems
    matched = [(label, files[c]) for c, label in clean.items() if c in files]
    if not matched:
        raise RunInputError(f"{reduced_dir}: no reduced file matches an interval of {split_file}")

    data = read_reduced_files([p for _, p in matched]).with_columns(
        pl.Series("filepath", [str(p.resolve()) for _, p in matched], pl.String)
    )
    intervals = []
    for slice_index, (label, path) in enumerate(matched):
        iv = by_label[label]
        row: dict[str, Any] = {
            "slice_index": slice_index, "interval_label": label, "interval_type": iv.get("interval_type"),
            "interval_start": _utc(iv.get("start"), offset, str(split_file)),
            "interval_end": _utc(iv.get("end"), offset, str(split_file)), "eis_filename": iv.get("filename"),
        }  # fmt: skip
        row.update({k: iv.get(k) for k in INTERVAL_FIELDS})
        intervals.append(row)
    schema = {"slice_index": pl.Int32(), "interval_label": pl.String(), "interval_type": pl.String(),
              "interval_start": pl.Datetime("us", "UTC"), "interval_end": pl.Datetime("us", "UTC"),
              "eis_filename": pl.String(), **INTERVAL_FIELDS}  # fmt: skip
    frame = pl.concat([data, pl.DataFrame(intervals, schema=schema)], how="horizontal")
    finite_r = pl.col("R").list.eval(pl.element().filter(pl.element().is_not_nan()))
    header = pl.col("header_json").str.json_decode(pl.Struct({f: pl.String for f in (*HEADER_FIELDS, "meta_json", "angles_json")}))
    frame = frame.with_columns(
        pl.lit(run_number, pl.Int64).alias("run_number"),
        pl.col("Q").list.min().alias("Q_min"), pl.col("Q").list.max().alias("Q_max"),
        finite_r.list.min().alias("R_min"), finite_r.list.max().alias("R_max"),
        header.alias("_h"),
    ).unnest("_h")  # fmt: skip

    template = read_template(template_file)
    now = datetime.now(timezone.utc)
    blocks = template.blocks
    run = {
        "run_number": run_number,
        "total_duration": float(sidecar["duration"]) if "duration" in sidecar else None,
        "n_intervals": int(sidecar.get("n_intervals", len(order))),
        "n_reduced_files": len(matched),
        "source_directory": split.get("source_directory"), "eis_pattern": split.get("pattern"),
        "resolution": split.get("resolution"),
        "reduction_template_xml": template.xml, "packaged_timestamp": now, "packager_version": __version__,
        "intervals_json": json.dumps(split["intervals"]), "split_metadata_json": json.dumps(split),
        "reduction_metadata_json": json.dumps(sidecar) if sidecar else None,
        "reduction_options_json": json.dumps(options) if options else None,
        "tz_offset_hours": offset, "split_file": Path(split_file).name, "template_file": Path(template_file).name,
        "event_file": options.get("event_file"), "scan_index": options.get("scan_index"),
        "theta_offset": options.get("theta_offset"),
        "instrument_name": template.header.get("instrument_name"),
        "reduction_version": template.header.get("version"), "mantid_version": template.header.get("mantid_version"),
        "n_angles": len(blocks), "n_nan_R": int(frame["n_nan"].sum()), "n_negative_R": int(frame["n_negative_R"].sum()),
        **{f: [b[f] for b in blocks] for f in ("data_sets", "norm_dataset", "scaling_factor_file")},
        **{f: [_number(b[f]) for b in blocks]
           for f in ("incident_angle", "q_step", "q_min", "angle_offset")},
    }  # fmt: skip
    return RunPackage(run_number, frame.to_arrow(), pa.Table.from_pylist([run]), warnings)
