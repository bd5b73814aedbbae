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
import pyarrow as pa
import pyarrow.compute as pc

from manifest_broker.errors import BrokerError
from manifest_broker.progress import Progress

COLUMNS = ("Q", "R", "dR", "dQ")
THREAD_CHUNK = 200  # files per chunk read on one thread
_KEY_VALUE = re.compile(r"^#\s*([A-Za-z][A-Za-z ()/]*?)\s*:\s*(.*)$")
_EXPERIMENT = re.compile(r"^#\s*Experiment\s+(\S+)\s+Run\s+(\S+)")
_REDUCTION = re.compile(r"^#\s*Reduction\s+(\S+)\s*$")


class ReducedFileError(BrokerError, ValueError):
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
        warnings.append(
            f"{path}:{line}: not UTF-8 ({exc.reason} at byte {exc.start}); decoded with replacement characters"
        )
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
                raise ReducedFileError(f"{path}:{number}: malformed # Meta JSON ({exc.msg})", where=path) from exc
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


def read_reduced_files(paths: list[Path], progress: Progress | None = None) -> tuple[pl.DataFrame, list[str]]:
    """Read reduced files into one frame, one row per file, in the order given.

    Many files are read as contiguous chunks on threads, one per core: the work is
    in polars' string kernels, which release the GIL.

    Args:
        paths: The reduced files.
        progress: Told ``("reading reduced files", read, total)`` per chunk read.

    Returns:
        Columns ``filename``, ``sha256``, ``n_points``, ``Q``, ``R``, ``dR``, ``dQ``
        (list[f64]), ``n_nan``, ``n_negative_R`` and ``header_json`` (JSON of every
        header field; null for headerless files); and the warnings, each naming a
        file (and line).

    Raises:
        ReducedFileError: naming the file and line of the first problem.
    """
    paths = [Path(p) for p in paths]
    if progress:
        progress("reading reduced files", 0, len(paths))
    if len(paths) <= THREAD_CHUNK:
        one = _read_chunk(paths)
        if progress:
            progress("reading reduced files", len(paths), len(paths))
        return one
    # Chunks of THREAD_CHUNK files: both cores busy, and only a few chunks' line
    # frames alive at a time, so memory does not grow with the size of the run.
    chunks = [paths[i : i + THREAD_CHUNK] for i in range(0, len(paths), THREAD_CHUNK)]
    parts = []
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for part in pool.map(_read_chunk, chunks):
            parts.append(part)
            if progress:
                progress("reading reduced files", min(len(parts) * THREAD_CHUNK, len(paths)), len(paths))
    return pl.concat([frame for frame, _ in parts]), [w for _, found in parts for w in found]


def _read_bytes(paths: list[Path]) -> tuple[list[bytes], list[str]]:
    """Each file's bytes, read once, and their SHA-256."""
    contents, digests = [], []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ReducedFileError(f"{path}: cannot read ({exc.strerror})", where=path) from exc
        contents.append(data)
        digests.append(hashlib.sha256(data).hexdigest())
    return contents, digests


def _read_chunk_by_lines(
    paths: list[Path], contents: list[bytes], digests: list[str]
) -> tuple[pl.DataFrame, list[list[str]]]:
    """The line reader: one frame row per line (polars string kernels), every check
    with file and line. Reads any layout of blanks; names the first bad row.

    Returns:
        The frame, and each file's warnings."""
    warnings: list[list[str]] = [[] for _ in paths]
    texts = [_decode(data, path, found) for data, path, found in zip(contents, paths, warnings)]
    # One row per line, in file order; line numbers from the per-file line counts.
    split = pl.Series("text", texts, pl.String).str.split("\n")
    del texts
    counts = split.list.len().to_numpy().astype(np.int64)
    starts = np.cumsum(counts) - counts
    total = int(counts.sum())
    file_ids = np.repeat(np.arange(len(paths), dtype=np.int32), counts)
    frame = pl.DataFrame({
        "file": file_ids,
        "lineno": np.arange(total, dtype=np.int64) - np.repeat(starts, counts) + 1,
        "text": split.explode().str.strip_chars(),
    }).filter(pl.col("text") != "")  # fmt: skip
    del split
    frame = frame.with_columns(pl.col("text").str.starts_with("#").alias("is_header"))

    # A slice without rows is kept (n_points = 0), said once per file.
    present = np.bincount(frame["file"].to_numpy(), minlength=len(paths))
    rows = frame.filter(~pl.col("is_header")).drop("is_header")
    row_files = rows["file"].to_numpy()
    per_file = np.bincount(row_files, minlength=len(paths))
    for index, path in enumerate(paths):
        if not present[index]:
            warnings[index].append(f"{path}: is empty; kept as a slice with no points")
        elif not per_file[index]:
            warnings[index].append(f"{path}: has a header but no data rows; kept as a slice with no points")

    # Runs of blanks (fixed-width rows are "%20.16f" joined by two spaces) become one
    # space; a fifth field or a missing fourth is a row of the wrong width.
    fields = pl.col("text").str.replace_all(r"[ \t]+", " ").str.split_exact(" ", 4).alias("f")
    rows = rows.with_columns(fields).unnest("f")
    if (ragged := rows.filter(pl.col("field_3").is_null() | pl.col("field_4").is_not_null())).height:
        ragged = ragged.with_columns(
            pl.col("text").str.split(" ").list.filter(pl.element() != "").list.len().alias("n")
        )
        raise _first(ragged, paths, "expected 4 values (Q R dR dQ), found {n}")
    values = rows.select(pl.col(f"field_{i}").cast(pl.Float64, strict=False).alias(c) for i, c in enumerate(COLUMNS))
    if (bad := values.with_columns(rows.select("file", "lineno", *[f"field_{i}" for i in range(4)]))
            .filter(pl.any_horizontal(pl.col(c).is_null() for c in COLUMNS))).height:  # fmt: skip
        row = bad.sort("file", "lineno").row(0, named=True)
        value = next(row[f"field_{i}"] for i, c in enumerate(COLUMNS) if row[c] is None)
        raise ReducedFileError(
            f"{paths[row['file']]}:{row['lineno']}: not a number: {value!r}", where=paths[row["file"]]
        )
    comments: list[list[tuple[int, str]]] = [[] for _ in paths]
    header_lines = frame.filter(pl.col("is_header")).group_by("file").agg("lineno", "text")
    for file, numbers, texts in header_lines.iter_rows():
        comments[file] = list(zip(numbers, texts))
    return _assemble(paths, digests, comments, values, per_file), warnings


def _assemble(paths: list[Path], digests: list[str], comments: list[list[tuple[int, str]]],
              values: pl.DataFrame, per_file: np.ndarray) -> pl.DataFrame:  # fmt: skip
    """One row per file from the flat Q, R, dR, dQ values (grouped by file, in order)
    and each file's comment lines."""
    # The list columns are the flat values cut at the per-file offsets: no group-by,
    # no copy of the values.
    # (pl.Series, not pa.array: pyarrow imports pandas to inspect a numpy argument.)
    offsets = pl.Series(np.concatenate([[0], np.cumsum(per_file)]).astype(np.int64)).to_arrow()
    row_files = np.repeat(np.arange(len(paths)), per_file)
    r = values["R"].to_numpy()
    lists = pl.DataFrame({
        **{c: pl.from_arrow(pa.LargeListArray.from_arrays(offsets, values[c].to_arrow())) for c in COLUMNS},
        "n_points": per_file.astype(np.int32),
        "n_nan": np.bincount(row_files, weights=np.isnan(r), minlength=len(paths)).astype(np.int32),
        "n_negative_R": np.bincount(row_files, weights=r < 0, minlength=len(paths)).astype(np.int32),
    })  # fmt: skip
    headers = []
    for path, lines in zip(paths, comments):
        parsed = _parse_header(lines, path) if lines else None
        headers.append(json.dumps(parsed) if parsed else None)
    meta = pl.DataFrame({
        "filename": [p.name for p in paths],
        "sha256": digests,
        "header_json": pl.Series(headers, dtype=pl.String),
    })  # fmt: skip
    return pl.concat([meta, lists], how="horizontal")


_SCHEMA = {c: pl.Float64 for c in COLUMNS}


def _comment(line: bytes, number: int, offset: int, path: Path, warnings: list[str]) -> tuple[int, str]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        warnings.append(f"{path}:{number}: not UTF-8 ({exc.reason} at byte {offset + exc.start}); "
                        "decoded with replacement characters")  # fmt: skip
        text = line.decode("utf-8", errors="replace")
    return number, text.strip()


def _leading_comments(data: bytes, path: Path, warnings: list[str]) -> tuple[list[tuple[int, str]], int, int]:
    """The comment and blank lines at the top of a file (the header is short: read
    line by line).

    Returns:
        ([(line number, comment text)], lines they take, byte offset of the first row).
    """
    pos = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    comments: list[tuple[int, str]] = []
    number = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        stripped = data[pos:end].strip()
        if stripped and not stripped.startswith(b"#"):
            break
        number += 1
        if stripped:
            comments.append(_comment(data[pos:end], number, pos, path, warnings))
        pos = end + 1
    return comments, number, pos


def _read_chunk(paths: list[Path]) -> tuple[pl.DataFrame, list[str]]:
    """Read one chunk of files, each by the fastest reader that can vouch for it.

    Both formats real tools write go through one columnar parse for all the files of
    their kind in the chunk:

    - ``numpy.savetxt`` rows (single spaces; what the event-splitting reducer writes
      per slice) are joined and parsed by one ``polars.read_csv`` (multi-threaded,
      strict floats, ``#`` lines skipped);
    - the reduction library's fixed-width rows (``%20.16f`` joined by two spaces,
      right-aligned, after its ``#`` header) are cut at their column ends, checked for
      every row at once with numpy, and parsed by Arrow's float cast.

    Both parse exactly as Python's ``float`` (and ``numpy.loadtxt``) do: correctly
    rounded. A file neither layout can vouch for (tabs, uneven widths, comments after
    the data), and every file of a group whose parse fails, goes to the line reader,
    which reads any layout of blanks and names the file and line of a bad row; a file
    read that way is named in a warning (it is several times slower).
    """
    contents, digests = _read_bytes(paths)
    heads = [_Head(path, data) for path, data in zip(paths, contents)]
    groups = {
        "plain": [i for i, head in enumerate(heads) if head.layout == "plain"],
        "fixed": [i for i, head in enumerate(heads) if head.layout == "fixed"],
    }
    slow = [i for i, head in enumerate(heads) if head.layout is None]
    readers = {"plain": _read_csv_rows, "fixed": _read_fixed_rows}
    parts: list[tuple[list[int], pl.DataFrame, list[list[str]]]] = []
    for layout, indices in groups.items():
        if not indices:
            continue
        read = readers[layout]([paths[i] for i in indices], [contents[i] for i in indices],
                               [digests[i] for i in indices], [heads[i] for i in indices])  # fmt: skip
        if read is None:
            slow += indices
        else:
            parts.append((indices, *read))
    if slow:
        slow.sort()
        frame, found = _read_chunk_by_lines([paths[i] for i in slow], [contents[i] for i in slow],
                                            [digests[i] for i in slow])  # fmt: skip
        for i, warnings in zip(slow, found):
            if heads[i].start < len(contents[i]):
                warnings.append(f"{paths[i]}: rows are neither savetxt rows nor fixed-width columns; read line by line "
                                "(slower)")  # fmt: skip
        parts.append((slow, frame, found))
    by_file: dict[int, list[str]] = {i: found for indices, _, per_file in parts for i, found in zip(indices, per_file)}
    warnings = [w for i in range(len(paths)) for w in by_file[i]]
    if len(parts) == 1:
        return parts[0][1], warnings
    order = pl.Series("_file", [i for indices, _, _ in parts for i in indices], pl.Int32)
    return pl.concat([f for _, f, _ in parts]).with_columns(order).sort("_file").drop("_file"), warnings


class _Head:
    """A file's leading comment lines, read once, and the layout of its rows, judged
    from its first data row (the parse then checks every row):

    - ``plain``: single-space separated, nothing before the first value, no ``#``
      after the header (``numpy.savetxt``);
    - ``fixed``: right-aligned columns, every field ending at the same column and
      followed by a blank (the reduction library's ``%20.16f`` rows); ``ends`` holds
      the column where each of the four fields ends, ``width`` the row's length with
      its newline;
    - ``None``: neither (the line reader takes it).
    """

    def __init__(self, path: Path, data: bytes) -> None:
        self.warnings: list[str] = []
        self.comments, self.lines, self.start = _leading_comments(data, path, self.warnings)
        self.ends: list[int] = []
        self.width = 0
        self.rows: np.ndarray | None = None
        newline = data.find(b"\n", self.start)
        first = data[self.start : newline if newline >= 0 else len(data)]
        self.layout: str | None = None
        if self.start >= len(data) or b"\t" in first or data.find(b"#", self.start) >= 0:
            return
        if not first.startswith(b" ") and b"  " not in first.rstrip(b"\r"):
            # Windows line ends are fine for polars' reader, a stray carriage return is not.
            if b"\r" not in data or data.count(b"\r") == data.count(b"\r\n"):
                self.layout = "plain"
            return
        if b"\r" in data:
            return
        tokens = [m.span() for m in re.finditer(rb"\S+", first)]
        if len(tokens) == 4 and newline >= 0 and tokens[-1][1] == len(first):
            self.ends = [end for _, end in tokens]
            self.width = len(first) + 1
            self.rows = self._fixed_rows(data)
            self.layout = "fixed" if self.rows is not None else None

    def _fixed_rows(self, data: bytes) -> np.ndarray | None:
        """The data rows as a (rows, width) byte array when every row keeps the first
        row's layout: its newline in place, a value's last character where each field
        ends, a blank just after each but the last; else None."""
        body = data[self.start :]
        if not body.endswith(b"\n"):
            body += b"\n"
        if len(body) % self.width:
            return None
        rows = np.frombuffer(body, np.uint8).reshape(-1, self.width)
        ends = np.array(self.ends)
        if (rows[:, -1] == 10).all() and (rows[:, ends - 1] != 32).all() and (rows[:, ends[:-1]] == 32).all():
            return rows
        return None


def _read_fixed_rows(paths: list[Path], contents: list[bytes], digests: list[str],
                     heads: list[_Head]) -> tuple[pl.DataFrame, list[list[str]]] | None:  # fmt: skip
    """The fixed-width reader over files whose rows all keep their layout
    (:class:`_Head`): the frame and each file's warnings, or None when a field does
    not parse as a number (the line reader then names it)."""
    warnings = [list(head.warnings) for head in heads]
    columns: list[list[pa.Array]] = [[] for _ in COLUMNS]
    per_file = []
    for head in heads:
        rows = head.rows
        assert rows is not None
        starts, ends = [0, *head.ends[:-1]], head.ends
        for column, (start, end) in zip(columns, zip(starts, ends)):
            field = np.ascontiguousarray(rows[:, start:end]).ravel()
            column.append(pa.FixedSizeBinaryArray.from_buffers(pa.binary(end - start), len(rows),
                                                               [None, pa.py_buffer(field)]))  # fmt: skip
        per_file.append(len(rows))
    values = {}
    try:
        for name, parts in zip(COLUMNS, columns):
            text = pa.chunked_array([p.cast(pa.string()) for p in parts], pa.string())
            values[name] = pc.cast(pc.utf8_trim_whitespace(text), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a field that is not a number: the line reader names it
        return None
    frame = pl.from_arrow(pa.table(values))
    assert isinstance(frame, pl.DataFrame)
    return _assemble(paths, digests, [head.comments for head in heads], frame, np.array(per_file, np.int64)), warnings


def _read_csv_rows(paths: list[Path], contents: list[bytes], digests: list[str],
                   heads: list[_Head]) -> tuple[pl.DataFrame, list[list[str]]] | None:  # fmt: skip
    """The fast reader: the frame and each file's warnings, or None when it cannot
    vouch for every row."""
    counts: list[int] = []
    warnings: list[list[str]] = []
    for path, data, head in zip(paths, contents, heads):
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        counts.append(lines - head.lines)
        found = list(head.warnings)
        if head.start >= len(data):
            what = "has a header but no data rows" if head.comments else "is empty"
            found.append(f"{path}: {what}; kept as a slice with no points")
        warnings.append(found)
    per_file = np.array(counts, dtype=np.int64)
    rows = [(d[3:] if d.startswith(b"\xef\xbb\xbf") else d).rstrip(b"\n") for d in contents]
    joined = rows[0] if len(rows) == 1 else b"\n".join(r for r in rows if r)
    del rows
    try:
        values = (pl.read_csv(joined, separator=" ", has_header=False, schema=_SCHEMA, quote_char=None, comment_prefix="#")
                  if per_file.sum() else pl.DataFrame(schema=_SCHEMA))  # fmt: skip
    except (pl.exceptions.PolarsError, ValueError):
        return None
    if values.height != int(per_file.sum()) or values.null_count().sum_horizontal()[0]:
        return None
    return _assemble(paths, digests, [head.comments for head in heads], values, per_file), warnings
