"""Plan the catalog nodes of a checked manifest set, as Arrow tables.

DuckDB builds every node's metadata JSON and data source parameters column-wise;
tiled's own HDF5 adapter computes the array structure of each distinct
(shape, dtype, chunks, batched) group once, so structure documents and ids are
exactly the ones Tiled itself would write.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import orjson
import polars as pl
import pyarrow as pa

from manifest_broker import queries
from manifest_broker.catalog.contract import CheckedManifests
from manifest_broker.catalog.manifests import ARTIFACT_COLUMNS, HAMILTONIAN_COLUMNS, ROW_COLUMN, metadata_columns
from manifest_broker.catalog.probe import tiled_cache_file
from manifest_broker.errors import BrokerError

HDF5_MIMETYPE = "application/x-hdf5"
# Bump when the cached structure entries change meaning.
STRUCTURE_CACHE_VERSION = 1


class PlanError(BrokerError, RuntimeError):
    """The manifests passed the contract but cannot be planned (e.g. a structure mismatch)."""


@dataclass
class NodePlan:
    """Everything the writer inserts, before any catalog id is known."""

    hamiltonians: pa.Table  # key, huid, metadata
    arrays: pa.Table  # parent_key, key, metadata, parameters, path, size, structure_id
    structures: pa.Table  # id, structure
    assets: pa.Table  # path, data_uri, size

    @property
    def nodes(self) -> int:
        return self.hamiltonians.num_rows + self.arrays.num_rows


def _metadata_json(con: duckdb.DuckDBPyConnection, table: pa.Table, columns: list[str]) -> pa.Table:
    if not columns:
        return pa.table({ROW_COLUMN: table[ROW_COLUMN], "metadata": pa.array(["{}"] * table.num_rows, pa.string())})
    con.register("meta_source", table.select([ROW_COLUMN, *columns]))
    result = con.execute(queries.load("plan/metadata_json")).to_arrow_table()
    con.unregister("meta_source")
    return result


LOCATOR_PREFIXES = ("path_", "dataset_", "index_")


def only_new_locators(current: dict, planned: dict) -> bool:
    """True when the planned metadata of a Hamiltonian only adds Mode A locators to
    its current metadata (new artifacts of an existing Hamiltonian)."""
    if any(k not in planned or planned[k] != v for k, v in current.items()):
        return False
    return all(k.startswith(LOCATOR_PREFIXES) for k in planned.keys() - current.keys())


def tiled_json(documents: list[str], under: list[str | None] | None = None) -> list[str]:
    """JSON texts exactly as Tiled's server stores them.

    Tiled's client sends ``{**attributes, **metadata}`` (``Container.register()``: the
    HDF5 attributes first, the caller's metadata on top, so the manifest wins on a
    clash) and the server writes what it parsed with orjson (``safe_json_dump``).
    Re-serialising DuckDB's text through orjson makes ours byte-identical (DuckDB
    writes ``1e+20`` as ``100000000000000000000.0``, for one).

    Args:
        documents: JSON objects as text (the manifest's metadata).
        under: Per document, JSON object text laid underneath it, or ``None``.
    """
    if under is None:
        return [orjson.dumps(orjson.loads(d)).decode() for d in documents]
    return [
        orjson.dumps(orjson.loads(d) if u is None else {**orjson.loads(u), **orjson.loads(d)}).decode()
        for d, u in zip(documents, under)
    ]


def array_structure(path: str, dataset: str, index: int | None) -> dict:
    """The array structure document Tiled's HDF5 adapter reports for one locator."""
    from tiled.adapters.hdf5 import HDF5ArrayAdapter
    from tiled.utils import ensure_uri

    kwargs = {"dataset": dataset}
    if index is not None:
        kwargs["slice"] = str(index)
    adapter = HDF5ArrayAdapter.from_uris(ensure_uri(path), **kwargs)
    return dataclasses.asdict(adapter.structure())


def _read_structure_cache(path: Path | None) -> dict[str, list[str]]:
    if path is None:
        return {}
    try:
        cached = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):  # missing or damaged: computed again, nothing worse
        return {}
    return cached if isinstance(cached, dict) else {}


def _write_structure_cache(path: Path, cache: dict[str, list[str]]) -> None:
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(orjson.dumps(cache))
        os.replace(partial, path)
    except OSError:  # full or read-only: the next run computes the structures again
        partial.unlink(missing_ok=True)


def _structure(row: dict) -> list[str]:
    """[id, document] of one (shape, dtype, chunks, batched) group, by Tiled's own code."""
    from tiled.catalog.utils import compute_structure_id
    from tiled.utils import safe_json_dump

    structure = array_structure(row["path"], row["dataset"], row["index"])
    expected = list(row["shape"][1:] if row["indexed"] else row["shape"])
    if list(structure["shape"]) != expected:
        raise PlanError(
            f"{row['path']}:{row['dataset']} has shape {structure['shape']}, expected {expected}", where=row["path"]
        )
    return [compute_structure_id(structure), safe_json_dump(structure).decode()]


def _structures(arrays: pl.DataFrame, cache_dir: Path | None) -> tuple[pl.DataFrame, pa.Table]:
    """Structure id and document per group. Tiled's adapter module costs about 2 s
    to import, so documents it computed are kept in ``cache_dir`` by group and Tiled
    version: a dataset whose groups were seen before plans without importing it."""
    group = ["shape", "dtype", "chunks", "indexed"]
    representatives = arrays.group_by(group, maintain_order=True).first()
    cache_file = tiled_cache_file(cache_dir, f"structures-v{STRUCTURE_CACHE_VERSION}", ".json") if cache_dir else None
    cache = _read_structure_cache(cache_file)
    ids, docs, computed = [], [], False
    for row in representatives.iter_rows(named=True):
        signature = orjson.dumps([row[c] for c in group]).decode()
        entry = cache.get(signature)
        if not (isinstance(entry, list) and len(entry) == 2):
            entry = cache[signature] = _structure(row)
            computed = True
        ids.append(entry[0])
        docs.append(entry[1])
    if cache_file and computed:
        _write_structure_cache(cache_file, cache)
    mapping = representatives.select(group).with_columns(pl.Series("structure_id", ids, pl.String))
    table = pa.table({"id": ids, "structure": docs}).group_by("id").aggregate([("structure", "min")])
    return mapping, table.rename_columns(["id", "structure"])


def plan_nodes(checked: CheckedManifests, *, cache_dir: Path | None = None) -> NodePlan:
    """Plan the nodes of every dataset of checked manifests.

    Args:
        checked: ``ContractReport.checked()`` (the probe table is reused for structures).
        cache_dir: Where structure documents computed by Tiled are kept (see
            :func:`_structures`); ``None`` computes every one.

    Returns:
        A :class:`NodePlan`.

    Raises:
        PlanError: when a structure cannot be computed.
    """
    from tiled.utils import ensure_uri

    con = duckdb.connect()
    con.register("probes", checked.probes)
    hams, arrays = [], []
    for name, ham in checked.hamiltonians.items():
        art = checked.artifacts[name]
        if "index" not in art.column_names:
            art = art.append_column("index", pa.nulls(art.num_rows, pa.int64()))
        ham_meta = _metadata_json(con, ham, ["huid", *metadata_columns(ham, HAMILTONIAN_COLUMNS)])
        ham_meta = ham_meta.append_column("key", ham["key"]).append_column("huid", ham["huid"])
        art_meta = _metadata_json(con, art, metadata_columns(art, ARTIFACT_COLUMNS))
        art_meta = pa.table(
            {c: art[c] for c in (ROW_COLUMN, "huid", "type", "file", "dataset", "index")}
        ).append_column("metadata", art_meta["metadata"])
        con.register("ham_meta", ham_meta)
        con.register("art_meta", art_meta)
        con.register("ham_keys", ham.select(["huid", "key"]))
        con.register("locators", con.execute(queries.load("plan/locators")).to_arrow_table())
        hams.append(con.execute(queries.load("plan/hamiltonian_nodes")).to_arrow_table())
        arrays.append(con.execute(queries.load("plan/array_nodes")).to_arrow_table())
        for view in ("ham_meta", "art_meta", "ham_keys", "locators"):
            con.unregister(view)
    con.close()
    ham_table = pa.concat_tables(hams) if hams else pa.table({"key": [], "huid": [], "metadata": []})
    ham_table = ham_table.set_column(
        ham_table.schema.get_field_index("metadata"), "metadata",
        pa.array(tiled_json(ham_table["metadata"].to_pylist()), pa.string()),
    )  # fmt: skip
    arr = pl.DataFrame(pa.concat_tables(arrays)) if arrays else None
    if arr is None or arr.height == 0:
        empty = pa.table(
            {
                c: pa.array([], pa.string())
                for c in ("parent_key", "key", "metadata", "parameters", "path", "structure_id")
            }
        )
        return NodePlan(
            ham_table,
            empty,
            pa.table({"id": [], "structure": []}),
            pa.table({"path": [], "data_uri": [], "size": [], "mtime_ns": []}),
        )
    arr = arr.with_columns(
        pl.Series("metadata", tiled_json(arr["metadata"].to_list(), arr["attrs"].to_list()), pl.String)
    )
    mapping, structures = _structures(arr, cache_dir)
    arr = arr.join(mapping, on=["shape", "dtype", "chunks", "indexed"], how="left", nulls_equal=True)
    assets = arr.select("path", "size", "mtime_ns").unique("path", maintain_order=True)
    assets = assets.with_columns(pl.Series("data_uri", [ensure_uri(p) for p in assets["path"]], pl.String))
    return NodePlan(
        hamiltonians=ham_table,
        arrays=arr.select("parent_key", "key", "metadata", "parameters", "path", "structure_id").to_arrow(),
        structures=structures,
        assets=assets.select("path", "data_uri", "size", "mtime_ns").to_arrow(),
    )
