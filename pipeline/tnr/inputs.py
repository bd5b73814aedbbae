"""The metadata sources of one tNR run: split file, reduction sidecar, reduction
options and the reduction template. Each reader names the file (and line) it
cannot use."""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from manifest_broker.errors import BrokerError

# Template fields users filter on, collected per <RefLData> block (one per angle).
TEMPLATE_FIELDS = (
    "data_sets",
    "norm_dataset",
    "incident_angle",
    "q_step",
    "q_min",
    "from_q_range",
    "to_q_range",
    "angle_offset",
    "scaling_factor_file",
    "dead_time_correction",
)
TEMPLATE_HEADER = ("instrument_name", "timestamp", "version", "mantid_version", "generator")
# The reduction sidecar, the reducer's record of one run (``r<run>_eis_reduction.json``):
# its name, spelled here only.
SIDECAR_SUFFIX = "_eis_reduction.json"
SIDECAR_NAME = f"r<run>{SIDECAR_SUFFIX}"  # as messages spell it
SIDECAR_GLOB = f"r*{SIDECAR_SUFFIX}"
_SIDECAR = re.compile(rf"^r(\d+){re.escape(SIDECAR_SUFFIX)}$")
_XML_ENCODING = re.compile(rb"""^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


class RunInputError(BrokerError, ValueError):
    """An input of the run that cannot be used; nothing is written."""


class MalformedJson(RunInputError):
    """A JSON side file that does not parse (perhaps still being written)."""


@dataclass
class Template:
    xml: str
    header: dict[str, str | None]
    blocks: list[dict[str, str | None]]
    sha256: str
    encoding: str


def inputs_fingerprint(split_file: Path, reduced_dir: Path, template_file: Path) -> str:
    """One digest of what a packaging of the run reads, from the files' names, sizes
    and modification times (no content is read): every entry of the reduced folder,
    the split file and the template. Two looks at unchanged inputs agree; a file
    added, removed, rewritten or touched changes it."""
    digest = hashlib.sha256()
    try:
        entries = sorted((e.name, e.stat()) for e in os.scandir(reduced_dir) if e.is_file())
        extra = [(str(Path(p).resolve()), Path(p).stat()) for p in (split_file, template_file)]
    except OSError:
        return ""
    for name, st in [*entries, *extra]:
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


# Size limits of the side files (real ones: templates of tens of kB, split files and
# sidecars under a few MB for thousands of intervals).
LIMITS = {
    "split file": 256 << 20,
    "reduction sidecar": 256 << 20,
    "reduction options": 1 << 20,
    "reduction template": 16 << 20,
}


def side_file_bytes(path: Path, what: str, root: Path | None = None) -> bytes:
    """A whole input file, read through :mod:`manifest_broker.boundary`: it must lie
    inside ``root`` once every symlink is resolved (default: the folder the file
    itself resolves into, for a path the user named), be a regular file (a FIFO is
    never opened) and be no larger than its kind's limit (:data:`LIMITS`).

    Raises:
        RunInputError: one line naming the file and the rule.
    """
    from manifest_broker import boundary

    if root is None:
        root = Path(os.path.dirname(os.path.realpath(path)))
    try:
        # (absolute: the boundary takes a relative path from the root)
        return boundary.read_bytes(
            os.path.abspath(path), os.path.abspath(root), limit=LIMITS.get(what, 256 << 20), what=what
        )
    except boundary.ProviderFileError as exc:
        if exc.rule == "missing":
            raise RunInputError(f"{path}: {what} not found", where=path) from exc
        if exc.rule == "not_regular" and os.path.isdir(path):
            raise RunInputError(f"{path}: is a directory, not the {what}", where=path) from exc
        raise RunInputError(f"{path}: {exc}", where=path) from exc


def side_file_json(path: Path, what: str, root: Path | None = None) -> Any:
    """Parse a JSON file (read as :func:`side_file_bytes` does); errors name the file, line and column."""
    raw = side_file_bytes(path, what, root)
    try:
        return json.loads(raw)  # UTF-8, -16 or -32, with or without BOM (RFC 8259)
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"{path}: {what} is not UTF-8 JSON ({exc.reason} at byte {exc.start})", where=path) from exc
    except json.JSONDecodeError as exc:
        raise MalformedJson(f"{path}:{exc.lineno}:{exc.colno}: malformed {what} JSON ({exc.msg})", where=path) from exc


def read_split(path: Path, root: Path | None = None) -> dict[str, Any]:
    """The EIS interval extractor's split file (per-file or per-frequency)."""
    split = side_file_json(path, "split file", root)
    intervals = split.get("intervals") if isinstance(split, dict) else None
    if not isinstance(intervals, list) or not all(isinstance(iv, dict) for iv in intervals):
        raise RunInputError(f"{path}: split file has no 'intervals' list of objects", where=path)
    return dict(split)


def is_sidecar(name: str) -> bool:
    """The file name is a reduction sidecar's."""
    return _SIDECAR.match(name) is not None


def sidecar_run_number(name: str) -> int | None:
    """The run number a sidecar's file name carries (None for another name)."""
    found = _SIDECAR.match(name)
    return int(found.group(1)) if found else None


def read_sidecar(path: Path, reduced_dir: Path) -> dict[str, Any]:
    """The reduction sidecar, read inside its run folder through the confined reader.

    Raises:
        RunInputError: naming the file: refused by the boundary, not JSON, or not a
            JSON object.
    """
    sidecar = side_file_json(path, "reduction sidecar", reduced_dir)
    if not isinstance(sidecar, dict):
        raise RunInputError(f"{path}: reduction sidecar is not a JSON object", where=path)
    return sidecar


def find_sidecar(reduced_dir: Path) -> Path | None:
    """The directory's ``r<run>_eis_reduction.json``; two of them are an error."""
    if not Path(reduced_dir).is_dir():
        what = "is not a directory" if Path(reduced_dir).exists() else "not found"
        raise RunInputError(f"{reduced_dir}: reduced directory {what}", where=reduced_dir)
    found = sorted(p for p in Path(reduced_dir).iterdir() if is_sidecar(p.name))
    if len(found) > 1:
        raise RunInputError(
            f"{reduced_dir}: {len(found)} reduction sidecars ({', '.join(p.name for p in found)}); one run per directory",
            where=reduced_dir,
        )
    return found[0] if found else None


def read_template(path: Path, folder: Path | None = None) -> Template:
    """The reduction template: its text, the sha256 of its bytes, and the filterable fields.

    The text is decoded the way the XML declares (UTF-8 when it declares nothing);
    every optional element may be absent (its field is then null).
    """
    raw = side_file_bytes(path, "reduction template", folder)
    declared = _XML_ENCODING.match(raw)
    encoding = declared.group(1).decode("ascii") if declared else "utf-8"
    try:
        encoding = codecs.lookup(encoding).name
        text = raw.decode(encoding).removeprefix("\ufeff")
    except LookupError as exc:
        raise RunInputError(
            f"{path}: reduction template declares an unknown encoding {encoding!r}", where=path
        ) from exc
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        hint = "" if declared else '; declare its encoding, e.g. <?xml version="1.0" encoding="latin-1"?>'
        raise RunInputError(
            f"{path}:{line}: reduction template is not valid {encoding} ({exc.reason}){hint}", where=path
        ) from exc
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        line, column = exc.position
        raise RunInputError(f"{path}:{line}:{column}: malformed reduction template XML ({exc})", where=path) from exc
    header = {tag: root.findtext(tag) for tag in TEMPLATE_HEADER}
    blocks = [{tag: (b.findtext(tag) or None) for tag in TEMPLATE_FIELDS} for b in root.iter("RefLData")]
    return Template(text, header, blocks, hashlib.sha256(raw).hexdigest(), encoding)
