"""Read reduced reflectivity files (4 columns: Q R dR dQ, ragged row counts) with polars.

Both flavours parse: plain ``numpy.savetxt`` rows, and the reduction library's ASCII
with a ``#`` header (``# Meta:{json}``, the per-run angle table, a column line) and
fixed-point rows. Each file is read once; its sha256 comes from the same bytes. All
files of a run go through one polars CSV parse and come out as list columns.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

COLUMNS = ("Q", "R", "dR", "dQ")
_KEY_VALUE = re.compile(r"^#\s*([A-Za-z][A-Za-z ()/]*?)\s*:\s*(.*)$")
_EXPERIMENT = re.compile(r"^#\s*Experiment\s+(\S+)\s+Run\s+(\S+)")
_REDUCTION = re.compile(r"^#\s*Reduction\s+(\S+)\s*$")


class ReducedFileError(ValueError):
    """A reduced file that cannot be packaged; the message names the file and line."""


@dataclass
class _Parsed:
    header: dict[str, object]
    rows: list[str]  # normalised "Q R dR dQ" lines
    first_line: int  # 1-based line number of the first data row


def _parse_header(lines: list[str], path: Path) -> dict[str, object]:
    header: dict[str, object] = {}
    angles: list[dict[str, str]] = []
    angle_columns: list[str] | None = None
    for number, line in enumerate(lines, start=1):
        body = line[1:].strip()
        if m := _EXPERIMENT.match(line):
            header["experiment"], header["header_run_number"] = m.group(1), m.group(2)
        elif m := _REDUCTION.match(line):
            header["reduction_version"] = m.group(1)
        elif body.startswith("Meta:"):
            try:
                header["meta_json"] = json.dumps(json.loads(body[5:]))
            except json.JSONDecodeError as exc:
                raise ReducedFileError(f"{path}:{number}: malformed # Meta JSON ({exc.msg})") from exc
        elif body.startswith("DataRun"):
            angle_columns = body.split()
        elif angle_columns and body[:1].isdigit():
            angles.append(dict(zip(angle_columns, body.split())))
        elif body.startswith("Q "):
            header["column_line"] = body
        elif m := _KEY_VALUE.match(line):
            header[m.group(1).strip().lower().replace(" ", "_")] = m.group(2).strip()
    if angles:
        header["angles_json"] = json.dumps(angles)
    return header


def _split(path: Path, text: str) -> _Parsed:
    lines = text.splitlines()
    header_lines: list[str] = []
    rows: list[str] = []
    first = 0
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if rows:
                raise ReducedFileError(f"{path}:{number}: header line after data rows")
            header_lines.append(stripped)
            continue
        fields = stripped.split()
        if len(fields) != 4:
            raise ReducedFileError(f"{path}:{number}: expected 4 values (Q R dR dQ), found {len(fields)}")
        if not rows:
            first = number
        rows.append(" ".join(fields))
    if not rows:
        what = "has a header but no data rows" if header_lines else "is empty"
        raise ReducedFileError(f"{path}: {what}")
    return _Parsed(_parse_header(header_lines, path), rows, first)


def _locate_non_numeric(path: Path, parsed: _Parsed) -> str:
    for offset, row in enumerate(parsed.rows):
        for value in row.split():
            try:
                float(value)
            except ValueError:
                return f"{path}:{parsed.first_line + offset}: not a number: {value!r}"
    return f"{path}: values polars cannot parse as numbers"


def read_reduced_files(paths: list[Path]) -> pl.DataFrame:
    """Read reduced files into one frame, one row per file.

    Returns:
        Columns ``filename``, ``sha256``, ``n_points``, ``Q``, ``R``, ``dR``, ``dQ``
        (list[f64]), ``n_nan``, ``n_negative_R`` and ``header_json`` (JSON of every header
        field; empty for headerless files).

    Raises:
        ReducedFileError: naming the file and line of the first problem.
    """
    parsed: list[_Parsed] = []
    digests: list[str] = []
    buffer = io.StringIO()
    for index, path in enumerate(paths):
        data = Path(path).read_bytes()
        digests.append(hashlib.sha256(data).hexdigest())
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ReducedFileError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from exc
        item = _split(Path(path), text)
        parsed.append(item)
        buffer.write("".join(f"{index} {row}\n" for row in item.rows))
    schema = {"file": pl.Int32, **{c: pl.Float64 for c in COLUMNS}}
    try:
        values = pl.read_csv(io.BytesIO(buffer.getvalue().encode()), has_header=False, separator=" ",
                             new_columns=list(schema), schema=schema)  # fmt: skip
    except pl.exceptions.PolarsError as exc:
        for path, item in zip(paths, parsed):
            message = _locate_non_numeric(Path(path), item)
            if "not a number" in message:
                raise ReducedFileError(message) from exc
        raise ReducedFileError(f"cannot parse reduced files: {exc}") from exc
    lists = values.group_by("file", maintain_order=True).agg(
        *[pl.col(c) for c in COLUMNS],
        pl.len().alias("n_points"),
        pl.col("R").is_nan().sum().alias("n_nan"),
        (pl.col("R") < 0).sum().alias("n_negative_R"),
    )
    meta = pl.DataFrame({
        "file": pl.Series(range(len(paths)), dtype=pl.Int32),
        "filename": [Path(p).name for p in paths],
        "sha256": digests,
        "header_json": [json.dumps(p.header) if p.header else None for p in parsed],
    })  # fmt: skip
    return meta.join(lists, on="file", how="left").drop("file").with_columns(
        pl.col("n_points").cast(pl.Int32), pl.col("n_nan").cast(pl.Int32), pl.col("n_negative_R").cast(pl.Int32)
    )
