"""DuckDB over one pair of manifests, for `broker sql` and the verifier."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from manifest_broker import queries
from manifest_broker.catalog.manifests import ROW_COLUMN, read_manifest


def manifest_connection(hamiltonians: Path, artifacts: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with tables ``hamiltonians`` and ``artifacts`` and view ``locators``.

    Raises:
        ManifestError: when a manifest cannot be read.
    """
    ham = read_manifest(hamiltonians).drop_columns([ROW_COLUMN])
    art = read_manifest(artifacts).drop_columns([ROW_COLUMN])
    if "index" not in art.column_names:
        art = art.append_column("index", pa.nulls(art.num_rows, pa.int64()))
    con = queries.connect()
    con.register("hamiltonians", ham)
    con.register("artifacts", art)
    con.execute(queries.load("views/locators"))
    return con
