"""Plan the catalog nodes of a checked manifest set, as Arrow tables.

DuckDB builds every node's metadata JSON and data source parameters column-wise;
the array structure of each distinct (shape, chunks, data_type, batched) group is
laid out once as Tiled's HDF5 adapter does, with Tiled's own structure classes
(:mod:`manifest_broker.catalog.structure`), so structure documents and ids are
exactly the ones Tiled itself would write.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from manifest_broker import queries
from manifest_broker.boundary import Identity
from manifest_broker.catalog.contract import CheckedManifests, CheckedPair, documents_of
from manifest_broker.catalog.manifests import LOCATOR_PREFIXES, ROW_COLUMN, open_manifest
from manifest_broker.catalog.structure import structure_row
from manifest_broker.errors import BrokerError

HDF5_MIMETYPE = "application/x-hdf5"
# What identifies an asset's file, as the probe saw it: the writer compares it
# again just before its commit.
FILE_IDENTITY = ["size", "mtime_ns", "ctime_ns", "device", "inode"]


@dataclass
class NodePlan:
    """Everything the writer inserts, before any catalog id is known."""

    hamiltonians: pa.Table  # key, huid, metadata
    arrays: pa.Table  # parent_key, key, metadata, parameters, path, size, structure_id
    structures: pa.Table  # id, structure
    assets: pa.Table  # path, data_uri, then FILE_IDENTITY

    @property
    def nodes(self) -> int:
        return self.hamiltonians.num_rows + self.arrays.num_rows


class ArraySources:
    """Each planned array's data source as Tiled takes it through its client: the
    provider's HDF5 file registered where it is (externally managed), with the
    structure and parameters of the plan. Used by every path that registers
    through a server."""

    def __init__(self, plan: NodePlan) -> None:
        from tiled.structures.array import ArrayStructure

        self._structures = {
            sid: ArrayStructure.from_json(json.loads(doc))
            for sid, doc in zip(plan.structures["id"].to_pylist(), plan.structures["structure"].to_pylist())
        }
        self._assets = {
            row["path"]: (row["data_uri"], Identity(*(row[c] for c in FILE_IDENTITY)))
            for row in plan.assets.select(["path", "data_uri", *FILE_IDENTITY]).to_pylist()
        }

    def identity(self, path: str) -> Identity:
        """The file ``path`` as the check saw it."""
        return self._assets[path][1]

    def data_source(self, row: dict[str, Any]) -> Any:
        """The ``DataSource`` of one row of ``plan.arrays``."""
        from tiled.structures.core import StructureFamily
        from tiled.structures.data_source import Asset, DataSource, Management

        data_uri, identity = self._assets[row["path"]]
        return DataSource(
            structure_family=StructureFamily.array,
            structure=self._structures[row["structure_id"]],
            mimetype=HDF5_MIMETYPE,
            parameters=json.loads(row["parameters"]),
            management=Management.external,
            assets=[Asset(data_uri=data_uri, is_directory=False, parameter="data_uri", size=identity.size)],
        )


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


def _structures(arrays: pl.DataFrame) -> tuple[pl.DataFrame, pa.Table]:
    """Structure id and document per (shape, chunks, data_type, batched) group,
    laid out as Tiled's HDF5 adapter does (:mod:`manifest_broker.catalog.structure`)."""
    group = ["shape", "chunks", "data_type", "indexed"]
    representatives = arrays.group_by(group, maintain_order=True).first()
    rows = [
        structure_row(r["shape"], r["chunks"], r["data_type"], r["indexed"])
        for r in representatives.select(group).iter_rows(named=True)
    ]
    ids = [sid for sid, _ in rows]
    mapping = representatives.select(group).with_columns(pl.Series("structure_id", ids, pl.String))
    table = (
        pa.table({"id": ids, "structure": [doc for _, doc in rows]}).group_by("id").aggregate([("structure", "min")])
    )
    return mapping, table.rename_columns(["id", "structure"])


def plan_nodes(checked: CheckedManifests) -> NodePlan:
    """Plan the nodes of every dataset of checked manifests.

    Args:
        checked: ``ContractReport.checked()`` (the probe table gives each array's
            file identity and structure).

    Returns:
        A :class:`NodePlan`.
    """
    from tiled.utils import ensure_uri

    con = queries.connect()
    con.register("probes", checked.probes)
    hams, arrays = [], []
    for name, ham in checked.hamiltonians.items():
        art = checked.artifacts[name]
        if "index" not in art.column_names:
            art = art.append_column("index", pa.nulls(art.num_rows, pa.int64()))
        documents = checked.documents[name]
        ham_meta = pa.table(
            {
                ROW_COLUMN: ham[ROW_COLUMN],
                "key": ham["key"],
                "huid": ham["huid"],
                "metadata": documents.hamiltonians["doc"],
            }
        )
        art_meta = pa.table(
            {c: art[c] for c in (ROW_COLUMN, "huid", "type", "file", "dataset", "index")}
        ).append_column("metadata", documents.artifacts["doc"])
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
        ham_table.schema.get_field_index("metadata"),
        "metadata",
        pa.array(tiled_json(ham_table["metadata"].to_pylist()), pa.string()),
    )
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
            pa.table(
                {
                    c: pa.array([], pa.string() if c in ("path", "data_uri") else pa.int64())
                    for c in ("path", "data_uri", *FILE_IDENTITY)
                }
            ),
        )
    arr = arr.with_columns(
        pl.Series("metadata", tiled_json(arr["metadata"].to_list(), arr["attrs"].to_list()), pl.String)
    )
    mapping, structures = _structures(arr)
    arr = arr.join(mapping, on=["shape", "chunks", "data_type", "indexed"], how="left", nulls_equal=True)
    assets = arr.select("path", *FILE_IDENTITY).unique("path", maintain_order=True)
    assets = assets.with_columns(pl.Series("data_uri", [ensure_uri(p) for p in assets["path"]], pl.String))
    return NodePlan(
        hamiltonians=ham_table,
        arrays=arr.select("parent_key", "key", "metadata", "parameters", "path", "structure_id").to_arrow(),
        structures=structures,
        assets=assets.select("path", "data_uri", *FILE_IDENTITY).to_arrow(),
    )


# Hamiltonians planned at once when an ingest is planned chunk by chunk: the plan
# of 25,000 (75,000 nodes with two artifacts each) takes about 100 MiB, and the
# write was measured as fast as with chunks of 200,000 (10^6 nodes into SQLite).
PLAN_CHUNK = 25_000


def plan_chunks(checked: CheckedManifests, hamiltonians: int = PLAN_CHUNK) -> Iterator[NodePlan]:
    """The plan of ``checked``, ``hamiltonians`` Hamiltonians at a time, each with
    its artifacts, made as the caller asks for it (``write_plan`` writes each chunk
    before the next one is made, in one transaction).

    Memory follows a chunk, not the dataset: the Hamiltonian manifest is read again
    chunk by chunk, and the artifact manifest is first sorted, chunk by chunk, into
    one Arrow file per plan chunk in DuckDB's spill folder (its artifacts in
    manifest order), whatever order the manifest keeps them in.

    Args:
        checked: A passing check's manifests (every artifact has its Hamiltonian).
        hamiltonians: Hamiltonians per chunk.

    Yields:
        One :class:`NodePlan` per chunk, datasets in order, rows in manifest order.
    """
    for name, dataset in checked.datasets.items():
        with tempfile.TemporaryDirectory(dir=queries.spill_directory()) as folder:
            buckets = _artifacts_by_chunk(dataset, hamiltonians, Path(folder))
            for number, ham in enumerate(dataset.hamiltonian_chunks(hamiltonians)):
                with pa.memory_map(str(buckets[number])) as source:
                    art = pa.ipc.open_file(source).read_all()
                plan = plan_nodes(
                    CheckedManifests({name: ham}, {name: art}, {name: documents_of(ham, art)}, checked.probes)
                )
                if plan.hamiltonians.num_rows != ham.num_rows or plan.arrays.num_rows != art.num_rows:
                    dataset.ensure_unchanged()
                    first = number * hamiltonians
                    raise BrokerError(
                        f"{dataset.pair.artifacts}: the plan of Hamiltonian rows {first}-{first + ham.num_rows - 1} "
                        f"has {plan.arrays.num_rows} of their {art.num_rows} artifacts; the write is abandoned",
                        where=dataset.pair.artifacts,
                    )
                del art
                yield plan


def _artifacts_by_chunk(dataset: CheckedPair, hamiltonians: int, folder: Path) -> list[Path]:
    """One Arrow file per plan chunk with the artifacts of its Hamiltonians, in
    manifest order, written while the artifact manifest is read chunk by chunk."""
    chunks = max(1, -(-dataset.hamiltonian_rows // hamiltonians))
    paths = [folder / f"{number}.arrow" for number in range(chunks)]
    writers: list[pa.ipc.RecordBatchFileWriter] = []
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with pq.ParquetFile(_owners(dataset, hamiltonians, folder / "owners.parquet"), pre_buffer=False) as owners:
        reader = owners.iter_batches(batch_size=hamiltonians)
        pending = pa.chunked_array([], pa.int64())
        try:
            for art in dataset.artifact_chunks(hamiltonians):
                if not writers:
                    writers = [pa.ipc.new_file(str(p), art.schema, options=options) for p in paths]
                while len(pending) < art.num_rows and (batch := next(reader, None)) is not None:
                    pending = pa.chunked_array([*pending.chunks, batch.column(0)], pa.int64())
                owner, pending = pending.slice(0, art.num_rows), pending.slice(art.num_rows)
                if len(owner) < art.num_rows or owner.null_count:  # the check found every one's Hamiltonian
                    dataset.ensure_unchanged()
                    raise BrokerError(
                        f"{dataset.pair.artifacts}: an artifact's Hamiltonian was not found while planning",
                        where=dataset.pair.artifacts,
                    )
                for number in pc.unique(owner).to_pylist():
                    writers[number].write_table(art.filter(pc.equal(owner, number)))
        finally:
            for writer in writers:
                writer.close()
    return paths


# DuckDB's limit for the owners' join (plan/artifact_owners): its table of huid
# hashes for 3.3 x 10^6 Hamiltonians, 1.8 s within 128 MB with two threads (96 MB
# ran out), where 256 MB let it hold 170 MiB more at the ingest's peak (measured
# with DuckDB reading the manifests; from copies of their huid columns, 2.5 s and
# 382 MiB for the process alone).
OWNERS_MEMORY_LIMIT = "128MB"


def _owners(dataset: CheckedPair, hamiltonians: int, path: Path) -> Path:
    """The plan chunk of every artifact's Hamiltonian, in artifact row order, as a
    Parquet file of one column at ``path`` (plan/artifact_owners).

    Joined by the huids' hash within :data:`OWNERS_MEMORY_LIMIT`; past it
    (measured: 3.3 x 10^7 Hamiltonians run out even of 256 MB) with the host's
    limit and one thread; by string in the one-in-millions case of two huids with
    one hash.

    Raises:
        ManifestError: when a manifest changed since the check (DuckDB reads them).
    """
    dataset.ensure_unchanged()
    params = {
        "hamiltonian_huids": str(_huids(dataset.pair.hamiltonians, path.with_name("hamiltonian_huids.parquet"))),
        "artifact_huids": str(_huids(dataset.pair.artifacts, path.with_name("artifact_huids.parquet"))),
        "chunk": hamiltonians,
        "owners": str(path),
    }
    with contextlib.closing(queries.connect(stage=True, limit=OWNERS_MEMORY_LIMIT)) as con:
        found = con.execute(queries.load("plan/huid_hashes_repeat"), {"hamiltonian_huids": params["hamiltonian_huids"]})
        shared_hash = bool(found.fetchone()[0])  # type: ignore[index]
        try:
            if not shared_hash:
                con.execute(queries.load("plan/artifact_owners"), params)
                return path
        except duckdb.OutOfMemoryException:
            pass
    with contextlib.closing(queries.connect(threads=1)) as con:
        con.execute(queries.load("plan/artifact_owners_by_huid" if shared_hash else "plan/artifact_owners"), params)
    return path


def _huids(path: Path, copy: Path) -> Path:
    """A copy of the manifest's ``huid`` column, chosen by its exact name, in its row
    order, as a Parquet file of that one column, for DuckDB: its own Parquet reader
    takes column names without regard to case, so a metadata column ``HUID`` before
    ``huid`` would stand for it (an outside tester's find: artifacts planned into the
    wrong chunk, lost). Read and written 25,000 rows at a time (at 10^7 nodes: 1.2 s
    for both manifests; a stream straight into DuckDB held 120 MiB more, measured)."""
    parquet, _ = open_manifest(path)
    schema = pa.schema([("huid", pa.string())])
    with pq.ParquetWriter(copy, schema, compression="none") as writer:
        for batch in parquet.iter_batches(batch_size=PLAN_CHUNK, columns=["huid"]):
            writer.write_batch(
                pa.record_batch([batch.column(0).cast(pa.string())], schema=schema), row_group_size=1 << 20
            )
    return copy
