"""Read reduced reflectivity files (4 columns: Q R dR dQ, ragged row counts) with polars.

Both flavours parse: plain ``numpy.savetxt`` rows, and the reduction library's ASCII
with a ``#`` header (``# Meta:{json}``, the per-run angle table, a column line) and
fixed-point rows. Each file is read once; its sha256 comes from the same bytes. The
lines of all files of a run go into one polars frame: splitting, the 4-value check,
number parsing and the list columns are vectorised; only the short headers are
parsed in Python.

Real files are not perfect, and one imperfect slice must not refuse a whole run:
a UTF-8 byte-order mark is skipped, comment lines that are not UTF-8 are decoded
with replacement characters (a warning names file and line), ``#`` lines after the
data are comments, and an empty or header-only slice becomes a row with
``n_points = 0`` and empty lists (with a warning). Numbers stay strict: a row that
is not 4 numbers stops the run with file and line.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

COLUMNS = ("Q", "R", "dR", "dQ")
THREAD_CHUNK = 200  # files per chunk read on one thread
_KEY_VALUE = re.compile(r"^#\s*([A-Za-z][A-Za-z ()/]*?)\s*:\s*(.*)$")
_EXPERIMENT = re.compile(r"^#\s*Experiment\s+(\S+)\s+Run\s+(\S+)")
_REDUCTION = re.compile(r"^#\s*Reduction\s+(\S+)\s*$")


class ReducedFileError(ValueError):
    """A reduced file that cannot be packaged; the message names the file and line."""


def _decode(data: bytes, path: Path, warnings: list[str]) -> str:
    """Text of a reduced file: BOM skipped; bytes that are not UTF-8 replaced, with a
    warning naming the line (a replaced byte in a data row then fails as a number)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        warnings.append(f"{path}:{line}: not UTF-8 ({exc.reason} at byte {exc.start}); decoded with replacement characters")
        return data.decode("utf-8", errors="replace")


def _parse_header(lines: list[tuple[int, str]], path: Path) -> dict[str, object]:
    header: dict[str, object] = {}
    angles: list[dict[str, str]] = []
    angle_columns: list[str] | None = None
    for number, line in lines:
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
        elif m := _KEY_VALUE.match(line):  # before the column line: "# Q summing: False" is a field
            header[m.group(1).strip().lower().replace(" ", "_")] = m.group(2).strip()
        elif body.startswith("Q "):
            header["column_line"] = body
    if angles:
        header["angles_json"] = json.dumps(angles)
    return header


def _first(frame: pl.DataFrame, paths: list[Path], message: str) -> ReducedFileError:
    row = frame.sort("file", "lineno").row(0, named=True)
    return ReducedFileError(f"{paths[row['file']]}:{row['lineno']}: {message.format(**row)}")


def read_reduced_files(paths: list[Path]) -> tuple[pl.DataFrame, list[str]]:
    """Read reduced files into one frame, one row per file, in the order given.

    Many files are read as contiguous chunks on threads, one per core: the work is
    in polars' string kernels, which release the GIL.

    Returns:
        Columns ``filename``, ``sha256``, ``n_points``, ``Q``, ``R``, ``dR``, ``dQ``
        (list[f64]), ``n_nan``, ``n_negative_R`` and ``header_json`` (JSON of every
        header field; null for headerless files); and the warnings, each naming a
        file (and line).

    Raises:
        ReducedFileError: naming the file and line of the first problem.
    """
    paths = [Path(p) for p in paths]
    if len(paths) <= THREAD_CHUNK:
        return _read_chunk(paths)
    # Chunks of THREAD_CHUNK files: both cores busy, and only a few chunks' line
    # frames alive at a time, so memory does not grow with the size of the run.
    chunks = [paths[i : i + THREAD_CHUNK] for i in range(0, len(paths), THREAD_CHUNK)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        parts = list(pool.map(_read_chunk, chunks))
    return pl.concat([frame for frame, _ in parts]), [w for _, found in parts for w in found]


def _read_chunk(paths: list[Path]) -> tuple[pl.DataFrame, list[str]]:
    digests: list[str] = []
    lines: list[str] = []
    counts: list[int] = []
    warnings: list[str] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ReducedFileError(f"{path}: cannot read ({exc.strerror})") from exc
        digests.append(hashlib.sha256(data).hexdigest())
        split = _decode(data, path, warnings).splitlines()
        lines.extend(split)
        counts.append(len(split))
    file_ids = np.repeat(np.arange(len(paths), dtype=np.int32), counts)
    frame = pl.DataFrame({"file": file_ids, "line": pl.Series(lines, dtype=pl.String)})
    del lines
    frame = frame.select(
        "file",
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("file").alias("lineno"),
        pl.col("line").str.strip_chars().alias("text"),
    ).filter(pl.col("text") != "")
    is_header = pl.col("text").str.starts_with("#")
    frame = frame.with_columns(is_header.alias("is_header"))

    # A slice without rows is kept (n_points = 0), said once per file.
    present = set(frame["file"].unique().to_list())
    with_rows = set(frame.filter(~pl.col("is_header"))["file"].unique().to_list())
    for index, path in enumerate(paths):
        if index not in present:
            warnings.append(f"{path}: is empty; kept as a slice with no points")
        elif index not in with_rows:
            warnings.append(f"{path}: has a header but no data rows; kept as a slice with no points")

    # Split on single spaces and drop the empty pieces runs of spaces leave: twice as
    # fast as a regex, and fixed-width rows ("%20.16f" joined by two spaces) come out right.
    fields = pl.col("text").str.replace_all("\t", " ", literal=True).str.split(" ").list.filter(pl.element() != "")
    rows = frame.filter(~pl.col("is_header")).with_columns(fields.alias("fields"))
    if (ragged := rows.filter(pl.col("fields").list.len() != 4)).height:
        ragged = ragged.with_columns(pl.col("fields").list.len().alias("n"))
        raise _first(ragged, paths, "expected 4 values (Q R dR dQ), found {n}")
    rows = rows.with_columns(
        pl.col("fields").list.get(i).cast(pl.Float64, strict=False).alias(c) for i, c in enumerate(COLUMNS)
    )
    if (bad := rows.filter(pl.any_horizontal(pl.col(c).is_null() for c in COLUMNS))).height:
        row = bad.sort("file", "lineno").row(0, named=True)
        value = next(f for f, c in zip(row["fields"], COLUMNS) if row[c] is None)
        raise ReducedFileError(f"{paths[row['file']]}:{row['lineno']}: not a number: {value!r}")
    lists = rows.select("file", *COLUMNS).group_by("file", maintain_order=True).agg(
        *[pl.col(c) for c in COLUMNS],
        pl.len().cast(pl.Int32).alias("n_points"),
        pl.col("R").is_nan().sum().cast(pl.Int32).alias("n_nan"),
        (pl.col("R") < 0).sum().cast(pl.Int32).alias("n_negative_R"),
    )

    headers: list[str | None] = [None] * len(paths)
    header_lines = frame.filter(pl.col("is_header")).group_by("file").agg("lineno", "text")
    for file, numbers, texts in header_lines.iter_rows():
        parsed = _parse_header(list(zip(numbers, texts)), paths[file])
        headers[file] = json.dumps(parsed) if parsed else None
    meta = pl.DataFrame({
        "file": pl.Series(range(len(paths)), dtype=pl.Int32),
        "filename": [p.name for p in paths],
        "sha256": digests,
        "header_json": pl.Series(headers, dtype=pl.String),
    })  # fmt: skip
    empty = pl.lit([], pl.List(pl.Float64))
    frame = meta.join(lists, on="file", how="left").sort("file").drop("file")
    return frame.with_columns(
        *[pl.col(c).fill_null(empty) for c in COLUMNS],
        *[pl.col(c).fill_null(0) for c in ("n_points", "n_nan", "n_negative_R")],
    ), warnings
