"""Read the two Parquet manifests of a dataset (the guide's Step 2 contract)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HAMILTONIAN_COLUMNS: tuple[str, ...] = ("huid", "key")
ARTIFACT_COLUMNS: tuple[str, ...] = ("huid", "type", "file", "dataset", "index")
ROW_COLUMN = "_row"


class ManifestError(ValueError):
    """A manifest file that cannot be read at all (not Parquet, missing...); ``rule``
    names the contract rule it is reported under."""

    def __init__(self, message: str, rule: str = "manifest_unreadable") -> None:
        super().__init__(message)
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


def pairs_from_paths(paths: list[Path]) -> list[ManifestPair]:
    """Group ``HAM ART [HAM ART ...]`` command-line paths into pairs.

    Raises:
        ManifestError: for an odd number of paths.
    """
    if not paths or len(paths) % 2:
        raise ManifestError(
            f"manifests come in pairs (HAMILTONIANS ARTIFACTS ...); got {len(paths)} path(s)"
        )
    return [ManifestPair(Path(h), Path(a)) for h, a in zip(paths[::2], paths[1::2])]


def read_manifest(path: Path) -> pa.Table:
    """Read one manifest with a ``_row`` column (0-based row number in the file).

    Raises:
        ManifestError: when the file is missing or is not readable Parquet.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    try:
        names = pq.ParquetFile(path).schema_arrow.names
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ManifestError(f"{path}: column name(s) {', '.join(map(repr, repeated))} appear more than once; "
                                "each column must have its own name", "column_duplicate")  # fmt: skip
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        if "too deeply nested" in reason:
            raise ManifestError(f"{path}: nested metadata deeper than Parquet readers accept ({reason})",
                                "metadata_too_deep") from exc  # fmt: skip
        raise ManifestError(f"{path}: not a readable Parquet manifest ({reason})") from exc
    if ROW_COLUMN in table.column_names:
        raise ManifestError(f"{path}: column name {ROW_COLUMN!r} is reserved")
    return table.append_column(ROW_COLUMN, pa.array(range(table.num_rows), pa.int64()))


def metadata_columns(table: pa.Table, standard: tuple[str, ...]) -> list[str]:
    """Columns that become Tiled metadata: everything but the standard ones and ``_row``."""
    return [c for c in table.column_names if c not in standard and c != ROW_COLUMN]
