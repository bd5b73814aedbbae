"""DuckDB over one pair of manifests, for `broker sql` and the verifier."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from manifest_broker import queries
from manifest_broker.catalog.manifests import (
    ARTIFACT_COLUMNS,
    HAMILTONIAN_COLUMNS,
    ROW_COLUMN,
    ManifestError,
    read_manifest,
)


def manifest_connection(hamiltonians: Path, artifacts: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with tables ``hamiltonians`` and ``artifacts`` and view ``locators``.

    Raises:
        ManifestError: when a manifest cannot be read.
    """
    ham = read_manifest(hamiltonians).drop_columns([ROW_COLUMN])
    art = read_manifest(artifacts).drop_columns([ROW_COLUMN])
    for path, table, kind, needed in (
        (hamiltonians, ham, "Hamiltonian", HAMILTONIAN_COLUMNS),
        (artifacts, art, "artifact", ARTIFACT_COLUMNS[:4]),
    ):
        missing = [c for c in needed if c not in table.column_names]
        if missing:
            other = HAMILTONIAN_COLUMNS if kind == "artifact" else ARTIFACT_COLUMNS[:4]
            swapped = all(c in table.column_names for c in other)
            raise ManifestError(
                f"{path}: not a{'n' if kind == 'artifact' else ''} {kind} manifest (no column "
                f"{', '.join(missing)})"
                + (
                    "; the two manifests look swapped (--ham is the Hamiltonians, --art the artifacts)"
                    if swapped
                    else ""
                ),
                "required_columns",
                where=path,
            )
    if "index" not in art.column_names:
        art = art.append_column("index", pa.nulls(art.num_rows, pa.int64()))
    con = queries.connect()
    con.register("hamiltonians", ham)
    con.register("artifacts", art)
    con.execute(queries.load("views/locators"))
    return con


def flat(con: duckdb.DuckDBPyConnection, result: pa.Table) -> pa.Table:
    """``result`` with every nested column (struct, list, map) as its JSON text, for
    outputs of flat values only (a table, CSV)."""
    for i, column in enumerate(result.columns):
        if pa.types.is_nested(column.type):
            con.register("nested_column", pa.table({"value": column}))
            text = con.execute(queries.load("views/nested_as_json")).to_arrow_table()["value"]
            con.unregister("nested_column")
            result = result.set_column(i, result.field(i).with_type(pa.string()), text)
    return result


def python_values(con: duckdb.DuckDBPyConnection, result: pa.Table) -> list[dict]:
    """The rows as Python values for JSON: a nested column as Python lists and dicts,
    or as its JSON text when it cannot be one (a struct whose fields share a name,
    as ``list_zip`` makes)."""
    columns = {}
    for name, column in zip(result.column_names, result.columns):
        try:
            columns[name] = column.to_pylist()
        except (ValueError, pa.ArrowException):
            columns[name] = flat(con, pa.table({"value": column}))["value"].to_pylist()
    return [dict(zip(columns, row)) for row in zip(*columns.values())] if columns else []
