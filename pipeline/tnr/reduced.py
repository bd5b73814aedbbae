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

import functools
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


@functools.lru_cache(maxsize=4096)
def _header_line(line: str) -> tuple[str, ...]:
    """What one header line is (cached: most lines repeat from file to file of a run).

    Returns:
        ``(kind, ...)``: ``experiment``, ``reduction``, ``meta`` (its JSON text),
        ``angles`` (the table's column line), ``angle_row`` (its fields), ``field``
        (key, value), ``columns`` (the column line) or ``other``.
    """
    body = line[1:].strip()
    if m := _EXPERIMENT.match(line):
        return ("experiment", m.group(1), m.group(2))
    if m := _REDUCTION.match(line):
        return ("reduction", m.group(1))
    if body.startswith("Meta:"):
        return ("meta", body[5:])
    if body.startswith("DataRun"):
        return ("angles", *body.split())
    if body[:1].isdigit():
        return ("angle_row", *body.split())
    if m := _KEY_VALUE.match(line):  # before the column line: "# Q summing: False" is a field
        return ("field", m.group(1).strip().lower().replace(" ", "_"), m.group(2).strip())
    if body.startswith("Q "):
        return ("columns", body)
    return ("other",)


def _parse_header(lines: list[tuple[int, str]], path: Path) -> dict[str, object]:
    header: dict[str, object] = {}
    angles: list[dict[str, str]] = []
    angle_columns: tuple[str, ...] | None = None
    for number, line in lines:
        kind, *parts = _header_line(line)
        if kind == "experiment":
            header["experiment"], header["header_run_number"] = parts
        elif kind == "reduction":
            header["reduction_version"] = parts[0]
        elif kind == "meta":
            try:
                header["meta_json"] = json.dumps(json.loads(parts[0]))
            except json.JSONDecodeError as exc:
                raise ReducedFileError(f"{path}:{number}: malformed # Meta JSON ({exc.msg})", where=path) from exc
        elif kind == "angles":
            angle_columns = tuple(parts)
        elif kind == "angle_row" and angle_columns:
            angles.append(dict(zip(angle_columns, parts)))
        elif kind == "field":
            header[parts[0]] = parts[1]
        elif kind == "angle_row" and (m := _KEY_VALUE.match(line)):
            header[m.group(1).strip().lower().replace(" ", "_")] = m.group(2).strip()
        elif kind == "columns":
            header["column_line"] = parts[0]
    if angles:
        header["angles_json"] = json.dumps(angles)
    return header


def _first(frame: pl.DataFrame, paths: list[Path], message: str) -> ReducedFileError:
    row = frame.sort("file", "lineno").row(0, named=True)
    return ReducedFileError(f"{paths[row['file']]}:{row['lineno']}: {message.format(**row)}")


def read_reduced_files(
    paths: list[Path], progress: Progress | None = None, root: Path | None = None
) -> tuple[pl.DataFrame, list[str]]:
    """Read reduced files into one frame, one row per file, in the order given.

    Many files are read as contiguous chunks on threads, one per core: the work is
    in numpy, Arrow and polars kernels, which release the GIL.

    Args:
        paths: The reduced files.
        progress: Told ``("reading reduced files", read, total)`` per chunk read.
        root: The folder every file must lie in (symlinks out of it are refused;
            :mod:`manifest_broker.boundary`); default: the first file's folder.

    Returns:
        Columns ``filename``, ``sha256``, ``n_points``, ``Q``, ``R``, ``dR``, ``dQ``
        (list[f64]), ``n_nan``, ``n_negative_R`` and ``header_json`` (JSON of every
        header field; null for headerless files); and the warnings, each naming a
        file (and line). Files that only the line reader could read are one warning
        for the whole call (their count and the first), never one per file.

    Raises:
        ReducedFileError: naming the file and line of the first problem.
    """
    paths = [Path(p) for p in paths]
    folder = Path(root) if root is not None else (paths[0].parent if paths else Path("."))
    if progress:
        progress("reading reduced files", 0, len(paths))
    chunks = [paths[i : i + THREAD_CHUNK] for i in range(0, len(paths), THREAD_CHUNK)] or [[]]
    parts: list[_Chunk] = []
    if len(chunks) == 1:
        parts.append(_read_chunk_parts(chunks[0], folder))
    else:
        # Chunks of THREAD_CHUNK files: both cores busy, and only a few chunks' frames
        # alive at a time, so memory does not grow with the size of the run.
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            for part in pool.map(lambda chunk: _read_chunk_parts(chunk, folder), chunks):
                parts.append(part)
                if progress:
                    progress("reading reduced files", min(len(parts) * THREAD_CHUNK, len(paths)), len(paths))
    if progress and len(chunks) == 1:
        progress("reading reduced files", len(paths), len(paths))
    warnings = [w for part in parts for w in part.warnings]
    slow = [p for part in parts for p in part.slow]
    if slow:
        warnings.append(_slow_warning(slow))
    frame = parts[0].frame if len(parts) == 1 else pl.concat([part.frame for part in parts])
    return frame, warnings


def _slow_warning(slow: list[Path]) -> str:
    message = f"{slow[0]}: rows are neither savetxt rows nor fixed-width columns; read line by line (slower)"
    if len(slow) > 1:
        message += f"; so were {len(slow) - 1} more of these {len(slow)} files"
    return message


# The largest reduced file read (a whole run's 10^6 rows are about 100 MB).
REDUCED_FILE_LIMIT = 1 << 32


def _read_bytes(paths: list[Path], root: Path | None = None) -> tuple[list[bytes], list[str]]:
    """Each file's bytes, read once through the boundary (inside ``root``, regular
    files only; the files of one folder with one resolution of the folder), and
    their SHA-256."""
    from manifest_broker import boundary

    contents: list[bytes] = []
    folder_root = os.path.abspath(root) if root is not None else None
    try:
        for folder, group in _by_folder(paths):
            contents += boundary.read_folder_files(
                [p.name for p in group],
                os.path.abspath(folder),
                folder_root or os.path.abspath(folder),
                limit=REDUCED_FILE_LIMIT,
                what="reduced file",
            )
    except boundary.ProviderFileError as exc:
        where = Path(str(exc.where)) if exc.where else paths[0]
        raise ReducedFileError(f"{where.name}: {exc}", where=where) from exc
    return contents, [hashlib.sha256(data).hexdigest() for data in contents]


def _by_folder(paths: list[Path]) -> list[tuple[Path, list[Path]]]:
    """Consecutive runs of paths that share a folder, in order."""
    groups: list[tuple[Path, list[Path]]] = []
    for path in paths:
        if groups and groups[-1][0] == path.parent:
            groups[-1][1].append(path)
        else:
            groups.append((path.parent, [path]))
    return groups


_TRAILING_BLANKS = re.compile(rb"[ \t]+(?=\n|$)")
_HEAD_BYTES = 4096


def _normalised(data: bytes, path: Path, warnings: list[str]) -> bytes:
    """The bytes the readers parse: line ends made ``\\n`` (CRLF and CR-only, as numpy
    reads them) and blanks at the ends of lines dropped, by whole-buffer byte
    operations (no per-line Python); a UTF-16 file (byte-order mark) re-encoded as
    UTF-8 with a warning. The digest is always of the bytes on disk."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            data = data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as exc:
            raise ReducedFileError(
                f"{path}: starts with a UTF-16 byte-order mark but is not UTF-16 text "
                f"({exc.reason} at byte {exc.start})",
                where=path,
            ) from exc
        warnings.append(f"{path}: UTF-16 text (byte-order mark); read as UTF-16")
    # Judged from the head of the file (a writer ends every line alike): scanning
    # whole files for a byte that is not there costs more than parsing them. A file
    # whose later lines differ fails the fast readers' checks and goes to the line
    # reader, which normalises it whole.
    head = data[:_HEAD_BYTES]
    if b"\r" in head:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if b" \n" in head or b" \r" in head or data.endswith(b" "):  # (tabs send a file to the line reader)
        data = _TRAILING_BLANKS.sub(b"", data)
    return data


def _normalised_whole(data: bytes, path: Path, warnings: list[str]) -> bytes:
    """:func:`_normalised` judged from the whole file (the line reader's)."""
    data = _normalised(data, path, warnings)
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if b" \n" in data or b"\t\n" in data:
        data = _TRAILING_BLANKS.sub(b"", data)
    return data


def _refuse_nul(data: bytes, path: Path) -> None:
    """A NUL byte: UTF-16 without its byte-order mark, or not text at all (checked
    on the line reader's path, where a file that is not rows of numbers ends up)."""
    if (zero := data.find(b"\x00")) >= 0:
        line = data.count(b"\n", 0, zero) + 1
        raise ReducedFileError(
            f"{path}:{line}: NUL byte at byte {zero}: UTF-16 without a byte-order mark, or not "
            "a text file; save it as UTF-8",
            where=path,
        )


class _Chunk:
    """One chunk read: its frame (rows in the chunk's order), its warnings, and the
    files only the line reader could read."""

    def __init__(self, frame: pl.DataFrame, warnings: list[str], slow: list[Path]) -> None:
        self.frame, self.warnings, self.slow = frame, warnings, slow


def _read_chunk(paths: list[Path], root: Path | None = None) -> tuple[pl.DataFrame, list[str]]:
    """One chunk's frame and warnings (the slow-path summary included)."""
    part = _read_chunk_parts(paths, root)
    return part.frame, part.warnings + ([_slow_warning(part.slow)] if part.slow else [])


def _read_chunk_by_lines(
    paths: list[Path], contents: list[bytes], digests: list[str]
) -> tuple[pl.DataFrame, list[list[str]]]:
    """The line reader: one frame row per line (polars string kernels), every check
    with file and line. Reads any layout of blanks, comments after values (``#`` to
    the end of the line, as numpy does), and files with more than four columns when
    a header line names them (``Q``, ``R``, ``dR``, ``dQ`` taken by name; the others
    named in a warning); names the first bad row.

    Returns:
        The frame, and each file's warnings."""
    warnings: list[list[str]] = [[] for _ in paths]
    for data, path in zip(contents, paths):
        _refuse_nul(data, path)
    texts = [
        _decode(_normalised_whole(data, path, found), path, found)
        for data, path, found in zip(contents, paths, warnings)
    ]
    # One row per line, in file order; line numbers from the per-file line counts.
    split = pl.Series("text", texts, pl.String).str.split("\n")
    del texts
    counts = split.list.len().to_numpy().astype(np.int64)
    starts = np.cumsum(counts) - counts
    total = int(counts.sum())
    file_ids = np.repeat(np.arange(len(paths), dtype=np.int32), counts)
    frame = pl.DataFrame(
        {
            "file": file_ids,
            "lineno": np.arange(total, dtype=np.int64) - np.repeat(starts, counts) + 1,
            "text": split.explode().str.strip_chars(),
        }
    ).filter(pl.col("text") != "")
    del split
    frame = frame.with_columns(pl.col("text").str.starts_with("#").alias("is_header"))

    # A slice without rows is kept (n_points = 0), said once per file.
    present = np.bincount(frame["file"].to_numpy(), minlength=len(paths))
    rows = frame.filter(~pl.col("is_header")).drop("is_header")
    # A comment after the values ends the row (numpy.loadtxt's comments="#").
    rows = rows.with_columns(pl.col("text").str.replace(r"\s*#.*$", "")).filter(pl.col("text") != "")
    per_file = np.bincount(rows["file"].to_numpy(), minlength=len(paths))
    for index, path in enumerate(paths):
        if not present[index]:
            warnings[index].append(f"{path}: is empty; kept as a slice with no points")
        elif not per_file[index]:
            warnings[index].append(f"{path}: has a header but no data rows; kept as a slice with no points")
    comments: list[list[tuple[int, str]]] = [[] for _ in paths]
    header_lines = frame.filter(pl.col("is_header")).group_by("file").agg("lineno", "text")
    for file, numbers, texts_of_file in header_lines.iter_rows():
        comments[file] = list(zip(numbers, texts_of_file))

    # Runs of blanks (fixed-width rows are "%20.16f" joined by two spaces) separate
    # fields; each file's columns are Q R dR dQ, or chosen by the names its header
    # gives them.
    rows = rows.with_columns(pl.col("text").str.replace_all(r"\s+", " ").str.split(" ").alias("fields"))
    rows = rows.with_columns(pl.col("fields").list.len().alias("n"))
    widths = rows.group_by("file").agg(pl.col("n").first().alias("first_n"))
    chosen = np.tile(np.arange(4, dtype=np.int64), (len(paths), 1))
    expected = np.full(len(paths), 4, np.int64)
    for file, first_n in widths.iter_rows():
        if first_n > 4 and (picked := _named_columns(comments[file], first_n)) is not None:
            chosen[file], extra = picked
            expected[file] = first_n
            warnings[file].append(
                f"{paths[file]}: {first_n} columns; Q R dR dQ taken by the header's names, {', '.join(extra)} left out"
            )
    rows = rows.with_columns(pl.Series("expected", expected[rows["file"].to_numpy()]))
    if (ragged := rows.filter(pl.col("n") != pl.col("expected"))).height:
        expected_of = int(ragged.sort("file", "lineno")["expected"][0])
        what = "(Q R dR dQ)" if expected_of == 4 else "(as its header names them)"
        raise _first(ragged, paths, f"expected {expected_of} values {what}, found {{n}}")
    file_of_row = rows["file"].to_numpy()
    fields = rows.select(
        pl.col("fields").list.get(pl.lit(pl.Series(chosen[file_of_row, i])), null_on_oob=True).alias(f"field_{i}")
        for i in range(4)
    )
    values = fields.select(pl.col(f"field_{i}").cast(pl.Float64, strict=False).alias(c) for i, c in enumerate(COLUMNS))
    if (
        bad := pl.concat([values, fields, rows.select("file", "lineno")], how="horizontal").filter(
            pl.any_horizontal(pl.col(c).is_null() for c in COLUMNS)
        )
    ).height:
        row = bad.sort("file", "lineno").row(0, named=True)
        value = next(row[f"field_{i}"] for i, c in enumerate(COLUMNS) if row[c] is None)
        raise ReducedFileError(
            f"{paths[row['file']]}:{row['lineno']}: not a number: {value!r}", where=paths[row["file"]]
        )
    return _assemble(paths, digests, comments, values, per_file), warnings


# Names a header may give the four columns (the reduction library's, ORSO's).
_COLUMN_NAMES = {"q": 0, "qz": 0, "r": 1, "dr": 2, "sr": 2, "dq": 3, "sqz": 3}
_UNIT = re.compile(r"\[[^\]]*\]|\([^)]*\)")


def _named_columns(comments: list[tuple[int, str]], n: int) -> tuple[np.ndarray, list[str]] | None:
    """The positions of Q, R, dR, dQ from the last header line that names ``n``
    columns among which all four, and the other names; None when no line does."""
    for _, line in reversed(comments):
        names = _UNIT.sub(" ", line.lstrip("#")).split()
        if len(names) != n:
            continue
        found = {
            _COLUMN_NAMES[name.lower()]: i
            for i, name in reversed(list(enumerate(names)))
            if name.lower() in _COLUMN_NAMES
        }
        if len(found) == 4:
            picked = np.array([found[k] for k in range(4)], np.int64)
            return picked, [name for i, name in enumerate(names) if i not in set(picked.tolist())]
    return None


def _assemble(
    paths: list[Path],
    digests: list[str],
    comments: list[list[tuple[int, str]]],
    values: pl.DataFrame,
    per_file: np.ndarray,
) -> pl.DataFrame:
    """One row per file from the flat Q, R, dR, dQ values (grouped by file, in order)
    and each file's comment lines."""
    # The list columns are the flat values cut at the per-file offsets: no group-by,
    # no copy of the values.
    # (pl.Series, not pa.array: pyarrow imports pandas to inspect a numpy argument.)
    offsets = pl.Series(np.concatenate([[0], np.cumsum(per_file)]).astype(np.int64)).to_arrow()
    row_files = np.repeat(np.arange(len(paths)), per_file)
    r = values["R"].to_numpy()
    lists = pl.DataFrame(
        {
            **{c: pl.from_arrow(pa.LargeListArray.from_arrays(offsets, values[c].to_arrow())) for c in COLUMNS},
            "n_points": per_file.astype(np.int32),
            "n_nan": np.bincount(row_files, weights=np.isnan(r), minlength=len(paths)).astype(np.int32),
            "n_negative_R": np.bincount(row_files, weights=r < 0, minlength=len(paths)).astype(np.int32),
        }
    )
    headers = [_header_json(lines, path) if lines else None for path, lines in zip(paths, comments)]
    meta = pl.DataFrame(
        {
            "filename": [p.name for p in paths],
            "sha256": digests,
            "header_json": pl.Series(headers, dtype=pl.String),
        }
    )
    return pl.concat([meta, lists], how="horizontal")


def _header_json(lines: list[tuple[int, str]], path: Path) -> str | None:
    parsed = _parse_header(lines, path)
    return json.dumps(parsed) if parsed else None


_SCHEMA = {c: pl.Float64 for c in COLUMNS}


def _comment(line: bytes, number: int, offset: int, path: Path, warnings: list[str]) -> tuple[int, str]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        warnings.append(
            f"{path}:{number}: not UTF-8 ({exc.reason} at byte {offset + exc.start}); "
            "decoded with replacement characters"
        )
        text = line.decode("utf-8", errors="replace")
    return number, text.strip()


# The comment and blank lines at the top of a file, matched in one regex call.
_LEADING = re.compile(rb"(?:[ \t]*(?:#[^\n]*)?\n)*")


def _leading_comments(data: bytes, path: Path, warnings: list[str]) -> tuple[list[tuple[int, str]], int, int]:
    """The comment and blank lines at the top of a (normalised) file.

    Returns:
        ([(line number, comment text)], lines they take, byte offset of the first row).
    """
    pos = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    end = _LEADING.match(data, pos).end()  # type: ignore[union-attr]  # matches the empty string at least
    if end == len(data) or data.find(b"\n", end) < 0:
        # The last line has no newline: a comment there belongs to the header too.
        tail = data[end:].strip()
        if not tail or tail.startswith(b"#"):
            end = len(data)
    block = data[pos:end]
    lines = block.split(b"\n") if block else []
    if block.endswith(b"\n"):
        lines.pop()
    comments: list[tuple[int, str]] = []
    offset = pos
    for number, line in enumerate(lines, 1):
        if line.strip():
            comments.append(_comment(line, number, offset, path, warnings))
        offset += len(line) + 1
    return comments, len(lines), end


def _read_chunk_parts(paths: list[Path], root: Path | None = None) -> _Chunk:
    """Read one chunk of files, each by the fastest reader that can vouch for it.

    Both formats real tools write go through one columnar parse for all the files of
    their kind in the chunk:

    - ``numpy.savetxt`` rows (single spaces; what the event-splitting reducer writes
      per slice) are joined and parsed by one ``polars.read_csv`` (multi-threaded,
      strict floats, ``#`` lines skipped);
    - the reduction library's fixed-width rows (``%20.16f`` joined by two spaces,
      right-aligned, after its ``#`` header): the rows of every file of one layout
      in the chunk are joined into one byte matrix, checked at once with numpy, cut
      at their column ends and parsed by one Arrow float cast per column.

    CRLF and CR-only line ends and blanks at line ends are normalised first, with
    byte operations on the whole file, so such files stay on the fast path. Both
    parse exactly as Python's ``float`` (and ``numpy.loadtxt``) do: correctly
    rounded. A file neither layout can vouch for (tabs, uneven widths, comments
    after the data, more than four columns), and every file of a group whose parse
    fails, goes to the line reader, which names the file and line of a bad row; such
    files are returned in ``slow`` (the caller says so once).
    """
    contents, digests = _read_bytes(paths, root)
    orso = [i for i, (path, data) in enumerate(zip(paths, contents)) if is_orso(path, data)]
    if orso:  # a third format, read by its own library; the rest of the chunk as usual
        others = [i for i in range(len(paths)) if i not in set(orso)]
        frame, orso_warnings = _read_orso(
            [paths[i] for i in orso], [contents[i] for i in orso], [digests[i] for i in orso]
        )
        if not others:
            return _Chunk(frame, [w for ws in orso_warnings for w in ws], [])
        rest = _read_chunk_parts([paths[i] for i in others], root)
        order = pl.Series("_file", orso + others, pl.Int32)
        merged = pl.concat([frame, rest.frame]).with_columns(order).sort("_file").drop("_file")
        return _Chunk(merged, [w for ws in orso_warnings for w in ws] + rest.warnings, rest.slow)
    found: list[list[str]] = [[] for _ in paths]
    contents = [_normalised(data, path, w) for data, path, w in zip(contents, paths, found)]
    heads = [_Head(path, data) for path, data in zip(paths, contents)]
    for head, w in zip(heads, found):
        w += head.warnings
    groups: dict[tuple[str, tuple[int, ...]], list[int]] = {}
    slow = []
    for i, head in enumerate(heads):
        if head.layout is None:
            slow.append(i)
        else:
            groups.setdefault((head.layout, tuple(head.ends)), []).append(i)
    parts: list[tuple[list[int], pl.DataFrame, list[list[str]]]] = []
    for (layout, _), indices in groups.items():
        reader = _read_csv_rows if layout == "plain" else _read_fixed_rows
        read = reader(
            [paths[i] for i in indices],
            [contents[i] for i in indices],
            [digests[i] for i in indices],
            [heads[i] for i in indices],
        )
        if read is None:
            slow += indices
        else:
            parts.append((indices, *read))
    slow_paths: list[Path] = []
    if slow:
        slow.sort()
        frame, by_lines = _read_chunk_by_lines(
            [paths[i] for i in slow], [contents[i] for i in slow], [digests[i] for i in slow]
        )
        # The line reader repeats the head's warnings (it decodes the file again).
        by_lines = [[w for w in ws if w not in found[i]] for i, ws in zip(slow, by_lines)]
        slow_paths = [paths[i] for i in slow if heads[i].start < len(contents[i])]
        parts.append((slow, frame, by_lines))
    by_file: dict[int, list[str]] = {i: w for indices, _, per_file in parts for i, w in zip(indices, per_file)}
    warnings = [w for i in range(len(paths)) for w in (found[i] + by_file.get(i, []))]
    if not parts:
        return _Chunk(_assemble([], [], [], pl.DataFrame(schema=_SCHEMA), np.zeros(0, np.int64)), warnings, [])
    if len(parts) == 1:
        return _Chunk(parts[0][1], warnings, slow_paths)
    order = pl.Series("_file", [i for indices, _, _ in parts for i in indices], pl.Int32)
    frame = pl.concat([f for _, f, _ in parts]).with_columns(order).sort("_file").drop("_file")
    return _Chunk(frame, warnings, slow_paths)


class _Head:
    """A (normalised) file's leading comment lines, read once, and the layout of its
    rows, judged from its first data row (the parse then checks every row):

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
        self.body = b""
        newline = data.find(b"\n", self.start)
        first = data[self.start : newline if newline >= 0 else len(data)]
        self.layout: str | None = None
        if self.start >= len(data) or b"\t" in first or data.find(b"#", self.start) >= 0:
            if self.start >= len(data):
                self.layout = "plain"  # no rows: the plain reader keeps it as an empty slice
            return
        if not first.startswith(b" ") and b"  " not in first:
            self.layout = "plain"
            return
        tokens = [m.span() for m in re.finditer(rb"\S+", first)]
        if len(tokens) == 4 and tokens[-1][1] == len(first):
            self.ends = [end for _, end in tokens]
            self.width = len(first) + 1
            body = data[self.start :]
            self.body = body if body.endswith(b"\n") else body + b"\n"
            if len(self.body) % self.width == 0:
                self.layout = "fixed"


def _read_fixed_rows(
    paths: list[Path], contents: list[bytes], digests: list[str], heads: list[_Head]
) -> tuple[pl.DataFrame, list[list[str]]] | None:
    """The fixed-width reader over files of one layout (:class:`_Head`; the same
    column ends): their rows joined into one (rows, width) byte matrix, every row's
    layout checked at once (its newline in place, a value's last character where
    each field ends, a blank just after each but the last), each column cut out and
    cast by Arrow in one call. None when a row breaks the layout or a field is not a
    number (the line reader then reads the group and names the row)."""
    width, ends = heads[0].width, np.array(heads[0].ends)
    rows = np.frombuffer(b"".join(head.body for head in heads), np.uint8).reshape(-1, width)
    if not ((rows[:, -1] == 10).all() and (rows[:, ends - 1] != 32).all() and (rows[:, ends[:-1]] == 32).all()):
        return None
    per_file = np.array([len(head.body) // width for head in heads], np.int64)
    values = {}
    try:
        for name, start, end in zip(COLUMNS, [0, *ends[:-1]], ends):
            field = np.ascontiguousarray(rows[:, start:end]).ravel()
            text = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(int(end - start)), len(rows), [None, pa.py_buffer(field)]
            ).cast(pa.string())
            values[name] = pc.cast(pc.utf8_trim_whitespace(text), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a field that is not a number: the line reader names it
        return None
    frame = pl.from_arrow(pa.table(values))
    assert isinstance(frame, pl.DataFrame)
    return _assemble(paths, digests, [head.comments for head in heads], frame, per_file), [[] for _ in heads]


def _read_csv_rows(
    paths: list[Path], contents: list[bytes], digests: list[str], heads: list[_Head]
) -> tuple[pl.DataFrame, list[list[str]]] | None:
    """The fast reader: the frame and each file's warnings, or None when it cannot
    vouch for every row."""
    counts: list[int] = []
    warnings: list[list[str]] = []
    for path, data, head in zip(paths, contents, heads):
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        counts.append(max(lines - head.lines, 0))
        found = []
        if head.start >= len(data):
            what = "has a header but no data rows" if head.comments else "is empty"
            found.append(f"{path}: {what}; kept as a slice with no points")
        warnings.append(found)
    per_file = np.array(counts, dtype=np.int64)
    rows = [d[h.start :].rstrip(b"\n") for d, h in zip(contents, heads)]
    joined = rows[0] if len(rows) == 1 else b"\n".join(r for r in rows if r)
    del rows
    try:
        values = (
            pl.read_csv(joined, separator=" ", has_header=False, schema=_SCHEMA, quote_char=None, comment_prefix="#")
            if per_file.sum()
            else pl.DataFrame(schema=_SCHEMA)
        )
    except (pl.exceptions.PolarsError, ValueError):
        return None
    if values.height != int(per_file.sum()) or values.null_count().sum_horizontal()[0]:
        return None
    return _assemble(paths, digests, [head.comments for head in heads], values, per_file), warnings


ORSO_MAGIC = b"# # ORSO reflectivity data file"
# The units a Q column may carry, and the factor to 1/angstrom.
_Q_UNITS = {"1/angstrom": 1.0, "1/a": 1.0, "1/nm": 0.1}


def is_orso(path: Path, data: bytes) -> bool:
    """An ORSO ``.ort`` file: by its first line (whatever its name), or by its suffix."""
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    return data.startswith(ORSO_MAGIC, start) or path.suffix == ".ort"


def _read_orso(paths: list[Path], contents: list[bytes], digests: list[str]) -> tuple[pl.DataFrame, list[list[str]]]:
    """ORSO ``.ort`` files, read by ``orsopy`` (the ORSO project's own library).

    The columns are taken by what the header declares: ``Qz`` (unit ``1/angstrom``;
    ``1/nm`` is converted), ``R``, the ``error_of: R`` column as dR and the
    ``error_of: Qz`` column as dQ; more columns are named in a warning. The whole
    header (its YAML as JSON) is kept in ``header_json`` under ``orso``, with
    ``dQ_is``: ``sigma`` (ORSO's default) or ``FWHM`` (``value_is: FWHM``), so a
    stored dQ never mixes the two silently. One slice is one dataset: a file with
    several (``# data_set:`` blocks, e.g. two spin states) is refused, naming them.

    Raises:
        ReducedFileError: naming the file and what it lacks.
    """
    import io

    from orsopy.fileio import load_orso

    warnings: list[list[str]] = [[] for _ in paths]
    arrays, headers, per_file = [], [], []
    for path, data, found in zip(paths, contents, warnings):
        if not data.lstrip(b"\xef\xbb\xbf").startswith(ORSO_MAGIC):
            raise ReducedFileError(
                f"{path}:1: an .ort file without the ORSO first line ({ORSO_MAGIC.decode()} | ...)", where=path
            )
        try:
            datasets = load_orso(io.StringIO(_decode(data, path, found)))
        except Exception as exc:  # orsopy raises many kinds (YAML, schema, numpy): one line naming the file
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ReducedFileError(f"{path}: not a readable ORSO file ({message})", where=path) from exc
        if len(datasets) != 1:
            names = ", ".join(str(d.info.data_set) for d in datasets)
            raise ReducedFileError(
                f"{path}: {len(datasets)} ORSO datasets ({names}); a slice file holds one: "
                "split it into one file per dataset",
                where=path,
            )
        dataset = datasets[0]
        picked, dq_is, factor, extra = _orso_columns(dataset.info.columns, path)
        values = np.asarray(dataset.data, dtype=np.float64).reshape(-1, len(dataset.info.columns))[:, picked]
        if factor != 1.0:
            values = values.copy()
            values[:, [0, 3]] *= factor
            found.append(f"{path}: Q and dQ in 1/nm, converted to 1/angstrom")
        if extra:
            found.append(f"{path}: {len(picked) + len(extra)} ORSO columns; {', '.join(extra)} left out")
        arrays.append(values)
        per_file.append(len(values))
        headers.append(json.dumps({"format": "ORSO", "dQ_is": dq_is, "orso": dataset.info.to_dict()}, default=str))
    flat = np.concatenate(arrays) if arrays else np.zeros((0, 4))
    frame = pl.DataFrame({c: np.ascontiguousarray(flat[:, i]) for i, c in enumerate(COLUMNS)})
    assembled = _assemble(paths, digests, [[] for _ in paths], frame, np.array(per_file, np.int64))
    return assembled.with_columns(pl.Series("header_json", headers, pl.String)), warnings


def _orso_columns(columns: list, path: Path) -> tuple[list[int], str, float, list[str]]:  # type: ignore[type-arg]
    """Positions of Q, R, dR, dQ among the declared ORSO columns, dQ's convention,
    the factor that makes Q 1/angstrom, and the names of the other columns."""
    names = [getattr(c, "name", None) for c in columns]
    errors = {getattr(c, "error_of", None): i for i, c in enumerate(columns) if getattr(c, "error_of", None)}
    if names[:2] != ["Qz", "R"] or "R" not in errors or "Qz" not in errors:
        declared = ", ".join(str(n or f"error_of {getattr(c, 'error_of', '?')}") for n, c in zip(names, columns))
        raise ReducedFileError(
            f"{path}: ORSO columns must start Qz, R and declare the errors of R and Qz; declared: {declared}",
            where=path,
        )
    unit = str(getattr(columns[0], "unit", "") or "").lower().replace(" ", "")
    if unit not in _Q_UNITS:
        raise ReducedFileError(f"{path}: Qz unit {unit or 'missing'!r}; 1/angstrom or 1/nm", where=path)
    dq = columns[errors["Qz"]]
    dq_is = "FWHM" if str(getattr(dq, "value_is", "") or "").upper() == "FWHM" else "sigma"
    picked = [0, 1, errors["R"], errors["Qz"]]
    extra = [
        str(names[i] or f"error_of {getattr(columns[i], 'error_of', '?')}")
        for i in range(len(columns))
        if i not in picked
    ]
    return picked, dq_is, _Q_UNITS[unit], extra
