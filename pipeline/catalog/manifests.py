"""Read the two Parquet manifests of a dataset (the guide's Step 2 contract)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from manifest_broker.errors import BrokerError

HAMILTONIAN_COLUMNS: tuple[str, ...] = ("huid", "key")
ARTIFACT_COLUMNS: tuple[str, ...] = ("huid", "type", "file", "dataset", "index")
ROW_COLUMN = "_row"
# Metadata keys the broker writes on each Hamiltonian to say where its artifacts are
# (path_<type>, dataset_<type>, index_<type>): its locator namespace, which no
# manifest column may enter (sql/contract/schema/locator_namespace.sql).
LOCATOR_PREFIXES: tuple[str, ...] = ("path_", "dataset_", "index_")


class ManifestError(BrokerError, ValueError):
    """A manifest file that cannot be read at all (not Parquet, missing...); ``rule``
    names the contract rule it is reported under."""

    def __init__(self, message: str, rule: str = "manifest_unreadable", *, where: object = None) -> None:
        super().__init__(message, where=where)
        self.rule = rule


@dataclass(frozen=True)
class ManifestPair:
    """The Hamiltonian and artifact manifests of one dataset."""

    hamiltonians: Path
    artifacts: Path

    @property
    def name(self) -> str:
        """Dataset name: the Hamiltonian manifest's stem without ``_hamiltonians``."""
        stem = self.hamiltonians.stem
        return stem[: -len("_hamiltonians")] if stem.endswith("_hamiltonians") else stem

    @property
    def ident(self) -> str:
        """What tells datasets apart: the Hamiltonian manifest's absolute path. Two
        pairs of one name in different folders (``a/x_*``, ``b/x_*``) are two
        datasets; a name alone would keep only the last of them."""
        return os.path.abspath(self.hamiltonians)


def pairs_from_paths(paths: list[Path]) -> list[ManifestPair]:
    """Group ``HAM ART [HAM ART ...]`` command-line paths into pairs.

    Paths named as the generators name them (``<name>_hamiltonians.parquet`` and
    ``<name>_artifacts.parquet``) are paired by name in any order, so that a shell
    glob (``manifests/*.parquet`` lists ``_artifacts`` first) works; other paths
    are paired in the order given.

    Raises:
        ManifestError: for an odd number of paths, or named manifests without
            their partner.
    """
    if not paths or len(paths) % 2:
        raise ManifestError(f"manifests come in pairs (HAMILTONIANS ARTIFACTS ...); got {len(paths)} path(s)")
    roles = [_role(Path(p)) for p in paths]
    if any(role is None for role in roles):
        return [ManifestPair(Path(h), Path(a)) for h, a in zip(paths[::2], paths[1::2])]
    named: dict[tuple[Path, str], dict[str, Path]] = {}
    for path, role in zip(paths, roles):
        assert role is not None
        kinds = named.setdefault((Path(path).parent, role[0]), {})
        if role[1] in kinds:
            raise ManifestError(f"{path}: {role[1]} manifest of {role[0]!r} given twice", where=path)
        kinds[role[1]] = Path(path)
    lonely = [next(iter(k.values())) for k in named.values() if len(k) != 2]
    if lonely:
        raise ManifestError(
            f"{lonely[0]}: its partner manifest is not among the paths given (HAMILTONIANS ARTIFACTS ...)",
            where=lonely[0],
        )
    return [ManifestPair(k["hamiltonians"], k["artifacts"]) for k in named.values()]


def _role(path: Path) -> tuple[str, str] | None:
    """(dataset name, "hamiltonians" or "artifacts") from a generator-style file name."""
    for kind in ("hamiltonians", "artifacts"):
        if path.stem.endswith(f"_{kind}") and len(path.stem) > len(kind) + 1:
            return path.stem[: -len(kind) - 1], kind
    return None


def read_manifest(path: Path, stamp: Stamp | None = None) -> pa.Table:
    """Read one manifest with a ``_row`` column (0-based row number in the file).

    Args:
        stamp: The file as it was checked: a file that changed since is refused.

    Raises:
        ManifestError: when the file is missing, is not readable Parquet, or is not
            the file ``stamp`` describes.
    """
    parquet, current = open_manifest(path)
    tables = list(manifest_chunks(parquet, Path(path), stamp or current, rows=None))
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


class Stamp(NamedTuple):
    """What identifies a manifest file as it was checked: a stage that reads it
    again (the plan, chunk by chunk) refuses a file that changed since."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    """Changed by every write, and not settable: a rewrite that restores the
    modification time still changes it."""

    @classmethod
    def of(cls, path: Path) -> Stamp:
        st = os.stat(path)
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


# Bytes buffered per column while a manifest is read. Unbuffered (Arrow's default,
# with pre-buffering), the reader holds every column chunk of a row group: writers
# make row groups of 2^20 rows, so a 3.3 x 10^6-row manifest held 149 MiB of Arrow
# memory to give chunks of 100,000 rows; streamed, 30 MiB, as fast (measured).
# Small, because up to READ_COLUMNS columns are read at once (64 MiB at most).
READ_BUFFER = 1 << 14


def open_manifest(path: Path) -> tuple[pq.ParquetFile, Stamp]:
    """One manifest opened for reading (its schema and row count known), with its stamp.

    Raises:
        ManifestError: when the file is missing, is not readable Parquet or repeats
            a column name.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found", where=path)
    try:
        stamp = Stamp.of(path)
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER)
        names = parquet.schema_arrow.names
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(path, exc) from exc
    repeated = sorted(n for n, count in Counter(names).items() if count > 1)
    if repeated:
        raise ManifestError(
            f"{path}: column name(s) {', '.join(map(repr, repeated))} appear more than once; "
            "each column must have its own name",
            "column_duplicate",
            where=path,
        )
    if ROW_COLUMN in names:
        raise ManifestError(f"{path}: column name {ROW_COLUMN!r} is reserved", where=path)
    return parquet, stamp


def _unreadable(path: Path, exc: BaseException) -> ManifestError:
    reason = (str(exc).splitlines() or [type(exc).__name__])[0]
    if "too deeply nested" in reason:
        return ManifestError(
            f"{path}: nested metadata deeper than Parquet readers accept ({reason})", "metadata_too_deep", where=path
        )
    return ManifestError(f"{path}: not a readable Parquet manifest ({reason})", where=path)


def ensure_stamp(path: Path, stamp: Stamp) -> None:
    """Refuse ``path`` unless it is still the file ``stamp`` describes.

    Raises:
        ManifestError: when it changed (or is gone) since it was checked.
    """
    if not path.is_file() or Stamp.of(path) != stamp:
        raise ManifestError(f"{path}: the manifest changed since it was checked; check it again", where=path)


def manifest_chunks(parquet: pq.ParquetFile, path: Path, stamp: Stamp, rows: int | None) -> Iterator[pa.Table]:
    """The manifest's rows, ``rows`` at a time (all at once for ``None`` and for
    manifests wider than :data:`READ_COLUMNS` columns), each with its ``_row``
    column, float16 widened; the last chunk may be shorter.

    Raises:
        ManifestError: when the file stops being readable, or is not the file
            ``stamp`` describes (it changed since it was checked).
    """
    names = parquet.schema_arrow.names
    start = 0
    try:
        ensure_stamp(path, stamp)
        if rows is None or len(names) > READ_COLUMNS:
            batches: Iterator[pa.Table] = iter([_read_columns(parquet, names)])
        else:
            batches = _rechunked(parquet, rows)
        for table in batches:
            table = table.cast(widened_schema(table.schema)) if _needs_widening(table.schema) else table
            yield table.append_column(ROW_COLUMN, pa.array(range(start, start + table.num_rows), pa.int64()))
            start += table.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(path, exc) from exc
    if start != parquet.metadata.num_rows or Stamp.of(path) != stamp:
        raise ManifestError(f"{path}: the manifest changed while it was read; check it again", where=path)


def _rechunked(parquet: pq.ParquetFile, rows: int) -> Iterator[pa.Table]:
    """Tables of exactly ``rows`` rows (the last one shorter), whatever the row groups."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in parquet.iter_batches(batch_size=rows, use_threads=True):
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows).combine_chunks()
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held or parquet.metadata.num_rows == 0:
        yield pa.Table.from_batches(pending).combine_chunks() if pending else parquet.schema_arrow.empty_table()


# Columns read per call: Arrow's Parquet reader holds buffers for every column it
# reads at once (about 10 kB each: a gibibyte for 100,000 metadata columns).
READ_COLUMNS = 4096


def _read_columns(parquet: pq.ParquetFile, names: list[str]) -> pa.Table:
    if len(names) <= READ_COLUMNS:
        return parquet.read()
    parts = [parquet.read(columns=names[i : i + READ_COLUMNS]) for i in range(0, len(names), READ_COLUMNS)]
    return pa.Table.from_arrays([c for part in parts for c in part.columns], schema=parquet.schema_arrow)


def _needs_widening(schema: pa.Schema) -> bool:
    text = str(schema)
    return "halffloat" in text or "string_view" in text or "binary_view" in text


def widened_schema(schema: pa.Schema) -> pa.Schema:
    """The schema with every float16 (also nested) widened to float64, and every
    string or binary view made a plain string or binary.

    DuckDB reads no Arrow float16, and JSON has one number type: float64 holds each
    float16 value exactly, and prints it as Python (and so Tiled's client) does.
    Arrow's take and filter have no kernel for views (an outside tester's find: a
    string_view artifact column passed the check and broke the plan).
    """

    def widen(kind: pa.DataType) -> pa.DataType:
        if pa.types.is_float16(kind):
            return pa.float64()
        if pa.types.is_string_view(kind):
            return pa.string()
        if pa.types.is_binary_view(kind):
            return pa.binary()
        if pa.types.is_struct(kind):
            return pa.struct([f.with_type(widen(f.type)) for f in kind])
        if pa.types.is_large_list(kind):
            return pa.large_list(kind.value_field.with_type(widen(kind.value_type)))
        if pa.types.is_fixed_size_list(kind):
            return pa.list_(kind.value_field.with_type(widen(kind.value_type)), kind.list_size)
        if pa.types.is_list(kind):
            return pa.list_(kind.value_field.with_type(widen(kind.value_type)))
        if pa.types.is_map(kind):
            return pa.map_(
                kind.key_field.with_type(widen(kind.key_type)), kind.item_field.with_type(widen(kind.item_type))
            )
        return kind

    return pa.schema([f.with_type(widen(f.type)) for f in schema], metadata=schema.metadata)


def metadata_columns(table: pa.Table | pa.Schema, standard: tuple[str, ...]) -> list[str]:
    """Columns that become Tiled metadata: everything but the standard ones and ``_row``."""
    names = table.column_names if isinstance(table, pa.Table) else table.names
    return [c for c in names if c not in standard and c != ROW_COLUMN]
