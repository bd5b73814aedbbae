"""The metadata sources of one tNR run: split file, reduction sidecar, reduction
options and the reduction template. Each reader names the file (and line) it
cannot use."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Template fields users filter on, collected per <RefLData> block (one per angle).
TEMPLATE_FIELDS = ("data_sets", "norm_dataset", "incident_angle", "q_step", "q_min", "from_q_range",
                   "to_q_range", "angle_offset", "scaling_factor_file", "dead_time_correction")  # fmt: skip
TEMPLATE_HEADER = ("instrument_name", "timestamp", "version", "mantid_version", "generator")
_SIDECAR = re.compile(r"^r(\d+)_eis_reduction\.json$")


class RunInputError(ValueError):
    """An input of the run that cannot be used; nothing is written."""


@dataclass
class Template:
    xml: str
    header: dict[str, str | None]
    blocks: list[dict[str, str | None]]


def read_json(path: Path, what: str) -> Any:
    """Parse a JSON file; errors name the file, line and column."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise RunInputError(f"{path}: {what} not found") from exc
    except json.JSONDecodeError as exc:
        raise RunInputError(f"{path}:{exc.lineno}:{exc.colno}: malformed {what} JSON ({exc.msg})") from exc


def read_split(path: Path) -> dict[str, Any]:
    """The EIS interval extractor's split file, with labelled intervals."""
    split = read_json(path, "split file")
    intervals = split.get("intervals") if isinstance(split, dict) else None
    if not isinstance(intervals, list):
        raise RunInputError(f"{path}: split file has no 'intervals' list")
    for number, interval in enumerate(intervals):
        if "label" not in interval:
            raise RunInputError(
                f"{path}: interval {number} has no label (resolution {split.get('resolution')!r}); "
                "reduced files are matched by label, so per-frequency split files cannot be packaged"
            )
    return split


def find_sidecar(reduced_dir: Path) -> Path | None:
    """The directory's ``r<run>_eis_reduction.json``; two of them are an error."""
    if not Path(reduced_dir).is_dir():
        raise RunInputError(f"{reduced_dir}: reduced directory not found")
    found = sorted(p for p in Path(reduced_dir).iterdir() if _SIDECAR.match(p.name))
    if len(found) > 1:
        raise RunInputError(f"{reduced_dir}: {len(found)} reduction sidecars ({', '.join(p.name for p in found)}); one run per directory")
    return found[0] if found else None


def read_template(path: Path) -> Template:
    """The reduction template: raw XML kept byte for byte, plus the filterable fields."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise RunInputError(f"{path}: reduction template not found") from exc
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        line, column = exc.position
        raise RunInputError(f"{path}:{line}:{column}: malformed reduction template XML ({exc})") from exc
    header = {tag: root.findtext(tag) for tag in TEMPLATE_HEADER}
    blocks = [{tag: (b.findtext(tag) or None) for tag in TEMPLATE_FIELDS} for b in root.iter("RefLData")]
    return Template(raw.decode("utf-8"), header, blocks)
