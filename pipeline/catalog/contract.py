"""Check manifests against the contract before anything is written.

Every rule is a DuckDB query under ``sql/contract/`` that returns the offending
rows (dbt semantics: zero rows means the rule holds). Rules in ``schema/`` run
once per manifest pair (column types, metadata values, parameter variation);
rules in ``rows/`` run once over all pairs together, joined with the HDF5 probe.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from manifest_broker import queries
from manifest_broker.cache import default_cache_dir
from manifest_broker.catalog.database import CatalogError, existing_keys
from manifest_broker.catalog.manifests import (
    ARTIFACT_COLUMNS,
    HAMILTONIAN_COLUMNS,
    LOCATOR_PREFIXES,
    ROW_COLUMN,
    ManifestError,
    ManifestPair,
    Stamp,
    ensure_stamp,
    manifest_chunks,
    metadata_columns,
    open_manifest,
    read_manifest,
    widened_schema,
)
from manifest_broker.catalog.probe import ProbeResult, probe_locators
from manifest_broker.errors import BrokerError
from manifest_broker.progress import Progress

if TYPE_CHECKING:
    from distributed import Client

FINDING_SCHEMA = pa.schema(
    [
        ("rule", pa.string()),
        ("severity", pa.string()),
        ("manifest", pa.string()),
        ("row", pa.int64()),
        ("column", pa.string()),
        ("value", pa.string()),
        ("message", pa.string()),
    ]
)
_HAM_CORE = pa.schema(
    [
        ("manifest", pa.string()),
        ("dataset_name", pa.string()),
        ("row", pa.int64()),
        ("metadata_bytes", pa.int64()),
        ("huid", pa.string()),
        ("key", pa.string()),
    ]
)
_ART_CORE = pa.schema(
    [
        ("manifest", pa.string()),
        ("dataset_name", pa.string()),
        ("row", pa.int64()),
        ("metadata_bytes", pa.int64()),
        ("huid", pa.string()),
        ("type", pa.string()),
        ("file", pa.string()),
        ("dataset", pa.string()),
        ("index", pa.int64()),
    ]
)


class ContractFailed(BrokerError, RuntimeError):
    """The manifests break the contract; the findings say where."""


class Documents(NamedTuple):
    """The metadata document of every row of one dataset's manifests, as JSON text:
    tables of (``_row``, ``doc``), in manifest order. The Hamiltonians' documents
    hold their metadata columns only (the planner adds huid and the locators)."""

    hamiltonians: pa.Table
    artifacts: pa.Table


@dataclass(frozen=True)
class CheckedPair:
    """One dataset's manifests as the check read them: their schemas (float16
    widened), row counts and stamps. Later stages read the rows again, chunk by
    chunk or whole, and refuse a file whose stamp changed."""

    pair: ManifestPair
    hamiltonian_schema: pa.Schema
    artifact_schema: pa.Schema
    hamiltonian_rows: int
    artifact_rows: int
    hamiltonian_stamp: Stamp
    artifact_stamp: Stamp

    def hamiltonian_chunks(self, rows: int | None = None) -> Iterator[pa.Table]:
        """The Hamiltonian manifest, ``rows`` at a time (whole for ``None``)."""
        return _chunks(self.pair.hamiltonians, self.hamiltonian_stamp, rows)

    def artifact_chunks(self, rows: int | None = None) -> Iterator[pa.Table]:
        """The artifact manifest, ``rows`` at a time (whole for ``None``)."""
        return _chunks(self.pair.artifacts, self.artifact_stamp, rows)

    def ensure_unchanged(self) -> None:
        """Refuse manifests that changed since the check (for a stage that reads them
        other than through :meth:`hamiltonian_chunks` and :meth:`artifact_chunks`).

        Raises:
            ManifestError: naming the first file whose stamp changed.
        """
        ensure_stamp(self.pair.hamiltonians, self.hamiltonian_stamp)
        ensure_stamp(self.pair.artifacts, self.artifact_stamp)


def _chunks(path: Path, stamp: Stamp, rows: int | None) -> Iterator[pa.Table]:
    parquet, _ = open_manifest(path)
    return manifest_chunks(parquet, path, stamp, rows)


_V = TypeVar("_V")


class _Read(Mapping[str, _V]):
    """A mapping by dataset whose values are read when first asked for (and kept):
    a run that plans chunk by chunk never holds a whole manifest."""

    def __init__(self, keys: list[str], read: Callable[[str], _V]) -> None:
        self._keys = keys
        self._read = read
        self._held: dict[str, _V] = {}

    def __getitem__(self, key: str) -> _V:
        if key not in self._keys:
            raise KeyError(key)
        if key not in self._held:
            self._held[key] = self._read(key)
        return self._held[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(frozen=True)
class CheckedManifests:
    """What planning and verifying need from a passing check: the manifests and
    their metadata documents by dataset (:attr:`ManifestPair.ident`), and the probe of every file and
    dataset they point at."""

    hamiltonians: Mapping[str, pa.Table]
    artifacts: Mapping[str, pa.Table]
    documents: Mapping[str, Documents]
    probes: pa.Table
    datasets: Mapping[str, CheckedPair] = field(default_factory=dict)
    """The datasets as the check read them (for a plan made chunk by chunk)."""


@dataclass
class ContractReport:
    """What a check found, plus what later stages reuse: each dataset's manifests
    (:attr:`datasets`; the rows are read again when asked for) and the probes."""

    findings: pa.Table
    datasets: dict[str, CheckedPair] = field(default_factory=dict)  # by ManifestPair.ident
    probes: pa.Table | None = None
    probe: ProbeResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._tables: tuple[_Read[pa.Table], _Read[pa.Table], _Read[Documents]] | None = None

    def _read(self) -> tuple[_Read[pa.Table], _Read[pa.Table], _Read[Documents]]:
        if self._tables is None or list(self._tables[0]) != list(self.datasets):
            keys = list(self.datasets)
            sets = self.datasets
            hams: _Read[pa.Table] = _Read(
                keys, lambda k: read_manifest(sets[k].pair.hamiltonians, sets[k].hamiltonian_stamp)
            )
            arts: _Read[pa.Table] = _Read(keys, lambda k: read_manifest(sets[k].pair.artifacts, sets[k].artifact_stamp))
            docs: _Read[Documents] = _Read(keys, lambda k: documents_of(hams[k], arts[k]))
            self._tables = (hams, arts, docs)
        return self._tables

    @property
    def hamiltonians(self) -> Mapping[str, pa.Table]:
        """Each dataset's Hamiltonian manifest, read whole when first asked for."""
        return self._read()[0]

    @property
    def artifacts(self) -> Mapping[str, pa.Table]:
        """Each dataset's artifact manifest, read whole when first asked for."""
        return self._read()[1]

    @property
    def documents(self) -> Mapping[str, Documents]:
        """Each dataset's metadata documents, made when first asked for."""
        return self._read()[2]

    @property
    def hamiltonian_rows(self) -> int:
        """Hamiltonians in every checked dataset."""
        return sum(d.hamiltonian_rows for d in self.datasets.values())

    @property
    def artifact_rows(self) -> int:
        """Artifacts in every checked dataset."""
        return sum(d.artifact_rows for d in self.datasets.values())

    @property
    def errors(self) -> int:
        return int(pc.sum(pc.equal(self.findings["severity"], "error")).as_py() or 0)

    @property
    def warnings(self) -> int:
        return self.findings.num_rows - self.errors

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def failure(self, consequence: str = "") -> ContractFailed:
        """The error that stops a stage after a failed check; it carries the findings
        (shown as a table, or in the ``--json`` error document)."""
        return ContractFailed(
            f"the manifests break the contract ({self.errors} error(s)){consequence}",
            details={"findings": self.findings, "errors": self.errors, "warnings": self.warnings},
        )

    def checked(self) -> CheckedManifests:
        """The checked manifests and probes, for the stages after the check.

        Raises:
            ContractFailed: when the check found an error.
        """
        if not self.ok or self.probes is None:
            raise self.failure()
        hams, arts, docs = self._read()
        return CheckedManifests(hams, arts, docs, self.probes, dict(self.datasets))


def documents_of(hamiltonians: pa.Table, artifacts: pa.Table) -> Documents:
    """The metadata documents of one dataset's manifests (or of a chunk of them)."""
    with contextlib.closing(queries.connect()) as con:
        return Documents(
            metadata_documents(con, hamiltonians, metadata_columns(hamiltonians, HAMILTONIAN_COLUMNS)),
            metadata_documents(con, artifacts, metadata_columns(artifacts, ARTIFACT_COLUMNS)),
        )


# Largest metadata document per node, as JSON: a listing page of Tiled carries the
# metadata of every node on it (100 per page by default).
METADATA_BYTES = 1 << 20
# Largest array a node may serve (its logical size), unless the user raises it: a
# sparse or compressed HDF5 file can declare far more than it stores, and Tiled's
# server would read all of it into memory for one client.
MAX_ARRAY_BYTES = 16 << 30


def _finding(rule: str, manifest: str, message: str, severity: str = "error") -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "rule": rule,
                "severity": severity,
                "manifest": manifest,
                "row": None,
                "column": None,
                "value": None,
                "message": message,
            }
        ],
        schema=FINDING_SCHEMA,
    )


# Bound parameters of the row rules that take any.
ROW_RULE_PARAMETERS: dict[str, dict[str, object]] = {"contract/rows/metadata_too_large": {"limit": METADATA_BYTES}}


def _run(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, object] | None = None) -> pa.Table:
    """One rule's findings (:func:`_roomy`)."""
    statement = queries.load(name)
    result = _roomy(con, lambda: con.execute(statement, params or {}).to_arrow_table())
    return result.rename_columns(FINDING_SCHEMA.names).cast(FINDING_SCHEMA)


_T = TypeVar("_T")


def _roomy(con: duckdb.DuckDBPyConnection, fetch: Callable[[], _T]) -> _T:
    """``fetch()`` (a statement of the check run on ``con``); when it runs out of the
    stage's memory limit (its operators spill, but only so far: a group of 1.5 x
    10^6 rows, the distinct documents of 300 metadata columns), once more with the
    host's limit, then the stage's limit is set back. A limit the user set
    ($BROKER_DUCKDB_MEMORY) is kept: then the error stands."""
    try:
        return fetch()
    except duckdb.OutOfMemoryException:
        if queries.given_memory_limit():
            raise
        con.execute(queries.load("session/memory_limit"), {"limit": queries.default_memory_limit()})
        try:
            return fetch()
        finally:
            con.execute(queries.load("session/memory_limit"), {"limit": queries.STAGE_MEMORY_LIMIT})


# Metadata columns turned into JSON per DuckDB call: its vectors keep 2,048 slots
# per struct field whatever the row count (16 kB a field), so 100,000 columns at
# once would take gigabytes.
DOCUMENT_COLUMNS = 1024


def metadata_documents(con: duckdb.DuckDBPyConnection, table: pa.Table, columns: list[str]) -> pa.Table:
    """(``_row``, ``doc``): each row's ``columns`` as one JSON object, in column order.

    The columns go to DuckDB as Arrow struct columns of at most
    :data:`DOCUMENT_COLUMNS` fields, so that binding and memory stay linear in their
    number (``struct_pack(*COLUMNS(*))`` over 100,000 columns takes minutes); the
    objects of consecutive groups are then joined row by row.
    """
    rows = table[ROW_COLUMN]
    if not columns:
        return pa.table({ROW_COLUMN: rows, "doc": pa.array(["{}"] * table.num_rows, pa.string())})
    parts = []
    for start in range(0, len(columns), DOCUMENT_COLUMNS):
        group = table.select(columns[start : start + DOCUMENT_COLUMNS]).to_struct_array()
        con.register("metadata_source", pa.table({ROW_COLUMN: rows, "doc": group}))
        parts.append(con.execute(queries.load("contract/metadata_documents")).to_arrow_table()["doc"])
        con.unregister("metadata_source")
    if len(parts) == 1:
        return pa.table({ROW_COLUMN: rows, "doc": parts[0]})
    bodies = [pc.utf8_slice_codeunits(part, 1, -1) for part in parts]  # without the braces
    joined = pc.binary_join_element_wise("{", pc.binary_join_element_wise(*bodies, ","), "}", "")
    return pa.table({ROW_COLUMN: rows, "doc": joined})


def _core(table: pa.Table, documents: pa.Table, schema: pa.Schema, manifest: str, dataset_name: str) -> pa.Table:
    n = table.num_rows
    columns = {
        "manifest": pa.repeat(manifest, n).cast(pa.string()) if n else pa.array([], pa.string()),
        "dataset_name": pa.repeat(dataset_name, n).cast(pa.string()) if n else pa.array([], pa.string()),
        "row": table[ROW_COLUMN],
        "metadata_bytes": pc.binary_length(documents["doc"].cast(pa.binary())),
    }
    for name in schema.names[4:]:
        columns[name] = table[name] if name in table.column_names else pa.nulls(n, schema.field(name).type)
    return pa.table(columns).cast(schema)


# Manifest rows read and checked at once. The rows the cross-row rules need (the
# standard columns and the size of each row's metadata document) go to DuckDB tables
# in a database file, compressed and spilled past DuckDB's memory limit: the
# check's memory follows a chunk, not the dataset.
CHECK_CHUNK = 100_000


def _standard_columns(schema: pa.Schema, standard: tuple[str, ...]) -> pa.Table:
    """A table of no rows with the ``_row`` and standard columns of ``schema``."""
    fields = [pa.field(ROW_COLUMN, pa.int64()), *(f for f in schema if f.name in standard)]
    return pa.schema(fields).empty_table()


class _Store:
    """The check's database file: the rows of every dataset the row rules read."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        con.from_arrow(_HAM_CORE.empty_table()).create("hamiltonians")
        con.from_arrow(_ART_CORE.empty_table()).create("artifacts")

    def append(self, table: str, rows: pa.Table) -> None:
        self.con.from_arrow(rows).insert_into(table)

    def forget(self, dataset: str) -> None:
        """Take out a dataset whose manifest stopped being readable half way."""
        for name in ("contract/forget_hamiltonians", "contract/forget_artifacts"):
            self.con.execute(queries.load(name), {"dataset_name": dataset})


def _check_pair(store: _Store, pair: ManifestPair, findings: list[pa.Table], chunk_rows: int) -> CheckedPair | None:
    """Read one pair chunk by chunk: the schema rules, the metadata rules, and its
    rows into the store for the row rules. Returns the pair as read, or ``None``
    when a file is unreadable or lacks a standard column (its rows are then left
    out of the row rules)."""
    con = store.con
    try:
        ham_file, ham_stamp = open_manifest(pair.hamiltonians)
        art_file, art_stamp = open_manifest(pair.artifacts)
    except ManifestError as exc:
        findings.append(_finding(exc.rule, exc.where or str(pair.hamiltonians), str(exc)))
        return None
    ham_schema = widened_schema(ham_file.schema_arrow)
    art_schema = widened_schema(art_file.schema_arrow)
    ham_rows, art_rows = ham_file.metadata.num_rows, art_file.metadata.num_rows
    ham_path, art_path = str(pair.hamiltonians), str(pair.artifacts)
    # Only the standard columns, and only their types: the rules look at nothing else.
    con.register("ham_full", _standard_columns(ham_schema, HAMILTONIAN_COLUMNS))
    con.register("art_full", _standard_columns(art_schema, ARTIFACT_COLUMNS))
    pair_params: dict[str, object] = {"ham_manifest": ham_path, "art_manifest": art_path}
    schema_errors = _run(con, "contract/schema/required_columns", pair_params)
    findings.append(schema_errors)
    # An empty manifest is an error, but the rows of its partner are still checked.
    findings.append(
        _run(con, "contract/schema/manifest_empty", {**pair_params, "ham_rows": ham_rows, "art_rows": art_rows})
    )
    con.unregister("ham_full")
    con.unregister("art_full")
    usable = not schema_errors.num_rows
    files = (
        (ham_file, pair.hamiltonians, ham_stamp, ham_schema, HAMILTONIAN_COLUMNS, _HAM_CORE, "hamiltonians"),
        (art_file, pair.artifacts, art_stamp, art_schema, ARTIFACT_COLUMNS, _ART_CORE, "artifacts"),
    )
    try:
        for parquet, path, stamp, schema, standard, core_schema, table in files:
            # A cursor of its own (sharing the store's memory limit), closed at the
            # end, gives back what DuckDB held for wide manifests.
            with contextlib.closing(con.cursor()) as meta_con:
                meta_con.execute(queries.load("session/duckdb"))
                rules = _MetadataRules(meta_con, schema, standard, str(path), findings)
                for chunk in manifest_chunks(parquet, path, stamp, chunk_rows):
                    documents = rules.chunk(chunk)
                    if usable:
                        store.append(table, _core(chunk, documents, core_schema, str(path), pair.ident))
                rules.finish()
    except ManifestError as exc:
        findings.append(_finding(exc.rule, exc.where or str(pair.hamiltonians), str(exc)))
        store.forget(pair.ident)
        return None
    if not usable:
        return None
    return CheckedPair(pair, ham_schema, art_schema, ham_rows, art_rows, ham_stamp, art_stamp)


class _MetadataRules:
    """Rules on the columns that become metadata: types, finite numbers, integer
    range, and (Hamiltonians) parameters that tell rows apart, run chunk by chunk.
    The size rule runs with the row rules, on the whole document a node will store."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        schema: pa.Schema,
        standard: tuple[str, ...],
        manifest: str,
        findings: list[pa.Table],
    ) -> None:
        self.con, self.manifest, self.findings = con, manifest, findings
        self.hamiltonians = standard == HAMILTONIAN_COLUMNS
        self.meta = metadata_columns(schema, standard)
        self.rows = 0
        self.distinct: set[str] = set()  # up to two metadata documents
        con.register(
            "metadata_columns",
            pa.table(
                {
                    "column_name": pa.array(self.meta, pa.string()),
                    "data_type": pa.array([str(schema.field(c).type) for c in self.meta], pa.string()),
                }
            ),
        )
        findings.append(_run(con, "contract/schema/metadata_types", {"manifest": manifest}))
        if self.hamiltonians:
            params: dict[str, object] = {"manifest": manifest, "prefixes": list(LOCATOR_PREFIXES)}
            findings.append(_run(con, "contract/schema/locator_namespace", params))
        con.unregister("metadata_columns")

    def chunk(self, table: pa.Table) -> pa.Table:
        """The value rules over one chunk of rows; returns their metadata documents
        (:func:`metadata_documents`)."""
        con = self.con
        self.rows += table.num_rows
        documents = metadata_documents(con, table, self.meta)
        if self.meta:
            con.register("metadata_rows", documents)
            cells = queries.load("contract/schema/metadata_cells")
            con.register("metadata_cells", _roomy(con, lambda: con.execute(cells).to_arrow_table()))
            for rule in ("metadata_not_finite", "metadata_integer_range"):
                self.findings.append(_run(con, f"contract/schema/{rule}", {"manifest": self.manifest}))
            con.unregister("metadata_cells")
            if self.hamiltonians and len(self.distinct) < 2:
                distinct = queries.load("contract/schema/distinct_documents")
                found = _roomy(con, lambda: con.execute(distinct).fetchall())
                self.distinct.update(doc for (doc,) in found)
            con.unregister("metadata_rows")
        return documents

    def finish(self) -> None:
        """The rule over every row: some parameter varies (Hamiltonians)."""
        if not self.hamiltonians:
            return
        if self.meta:
            params: dict[str, object] = {
                "manifest": self.manifest,
                "rows": self.rows,
                "distinct": min(2, len(self.distinct)),
            }
            self.findings.append(_run(self.con, "contract/schema/parameter_variation", params))
        elif self.rows > 1:
            self.findings.append(
                _finding(
                    "no_parameter_variation",
                    self.manifest,
                    "the Hamiltonian manifest has no parameter columns: "
                    "metadata search has nothing to tell Hamiltonians apart",
                    "warning",
                )
            )


def _catalog_keys(
    catalog: str | None, catalog_keys: pa.Table | None, parent: str, findings: list[pa.Table]
) -> pa.Table:
    """The keys already under ``parent``: given, read from the catalog, or none."""
    if catalog:
        try:
            return existing_keys(catalog, parent)
        except CatalogError as exc:
            findings.append(_finding("catalog_unusable", str(catalog), str(exc)))
    if catalog_keys is not None:
        return catalog_keys
    return pa.table(
        {"key": pa.array([], pa.string()), "huid": pa.array([], pa.string()), "location": pa.array([], pa.string())}
    )


def _card_rules(
    con: duckdb.DuckDBPyConnection,
    card: dict[str, Any],
    report: ContractReport,
    pairs: list[ManifestPair],
    findings: list[pa.Table],
) -> None:
    """The dataset card's rules, over the card's tables and each Hamiltonian
    manifest's columns with their type families."""
    from manifest_broker.provider.card import arrow_family, rule_tables

    for name, table in rule_tables(card).items():
        con.register(name, table)
    rows = [
        {"manifest": str(pair.hamiltonians), "dataset_name": pair.ident, "name": f.name, "family": arrow_family(f.type)}
        for pair in pairs
        if pair.ident in report.datasets
        for f in [*report.datasets[pair.ident].hamiltonian_schema, pa.field(ROW_COLUMN, pa.int64())]
    ]
    schema = pa.schema([(n, pa.string()) for n in ("manifest", "dataset_name", "name", "family")])
    con.register("manifest_columns", pa.Table.from_pylist(rows, schema=schema))
    for name in queries.names("contract/card"):
        findings.append(_run(con, name))


@contextlib.contextmanager
def _check_database() -> Iterator[duckdb.DuckDBPyConnection]:
    """The check's store: a DuckDB database file in the spill folder (the stage's
    memory limit), removed afterwards whatever happens."""
    database = os.path.join(queries.spill_directory(), f"check-{uuid.uuid4().hex}.duckdb")
    try:
        with contextlib.closing(queries.connect(database, stage=True)) as con:
            yield con
    finally:
        for leftover in (database, database + ".wal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)


def check_manifests(
    pairs: list[ManifestPair],
    base_dir: Path,
    *,
    catalog: str | None = None,
    catalog_keys: pa.Table | None = None,
    parent: str = "",
    cache_dir: Path | None = None,
    use_cache: bool = True,
    workers: int | None = None,
    progress: Progress | None = None,
    cluster: Client | None = None,
    card: dict[str, Any] | None = None,
    max_array_bytes: int = MAX_ARRAY_BYTES,
    deep: bool = False,
    chunk_rows: int = CHECK_CHUNK,
) -> ContractReport:
    """Run every contract rule over one or more manifest pairs.

    Args:
        pairs: The datasets to check together (keys must not collide across them).
        base_dir: Data directory the artifact ``file`` paths are relative to.
        catalog: Optional catalog URI; keys already under ``parent`` there collide.
        catalog_keys: Or the existing keys themselves (key, huid, location), e.g. as a
            running server lists them.
        parent: Catalog path the Hamiltonians would be registered under.
        cache_dir: Probe cache directory (default :func:`default_cache_dir`).
        use_cache: False to open every file again.
        workers: Processes for file probing (default: all cores).
        cluster: A Dask client whose workers probe the files instead.
        card: A dataset card (:func:`manifest_broker.provider.card.read`): the rules
            in ``sql/contract/card/`` hold the manifests to it.
        max_array_bytes: Largest logical size of a served array (``dataset_too_large``).
        deep: Read every value once (``dataset_unreadable_chunks``); by default the
            probe reads each file's structure (links, layout, shapes, dtypes,
            filters, attributes), not its values.
        chunk_rows: Manifest rows read and checked at once.

    Returns:
        A :class:`ContractReport`; nothing is written except the probe cache.
    """
    with _check_database() as con:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        for macro in queries.names("contract/macros"):
            con.execute(queries.load(macro))
        findings: list[pa.Table] = []
        report = ContractReport(findings=FINDING_SCHEMA.empty_table())
        store = _Store(con)
        for pair in pairs:
            checked = _check_pair(store, pair, findings, chunk_rows)
            # Pairs by their full path: equal names in different folders are two datasets.
            if checked is not None:
                report.datasets[pair.ident] = checked
        con.execute(queries.load("contract/store_written"))
        pa.default_memory_pool().release_unused()  # the chunks' buffers, before the rules
        timings["schema"] = time.perf_counter() - started

        con.register("catalog_keys", _catalog_keys(catalog, catalog_keys, parent, findings))

        if not Path(base_dir).is_dir():  # said once, above the file_missing of every row
            what = "is a file, not a directory" if Path(base_dir).exists() else "does not exist"
            findings.append(
                _finding("base_dir_missing", str(base_dir), f"{base_dir}: the data directory (--base-dir) {what}")
            )
        # Only locators whose path is acceptable as text reach the file system.
        lexically_valid = con.execute(queries.load("contract/probe_targets")).to_arrow_table()
        t0 = time.perf_counter()
        probe = probe_locators(
            lexically_valid,
            base_dir,
            cache_dir=(cache_dir or default_cache_dir()) if use_cache else None,
            workers=workers,
            progress=progress,
            cluster=cluster,
            deep=max_array_bytes if deep else None,
        )
        timings["probe"] = time.perf_counter() - t0
        con.register("probes", probe.table)
        if probe.cache_error:
            findings.append(
                _finding("probe_cache_unwritten", str(cache_dir or default_cache_dir()), probe.cache_error, "warning")
            )

        t0 = time.perf_counter()
        parameters: dict[str, dict[str, object]] = {
            **ROW_RULE_PARAMETERS,
            "contract/rows/dataset_too_large": {"limit": max_array_bytes},
        }
        for name in queries.names("contract/rows"):
            findings.append(_run(con, name, parameters.get(name)))
        if card is not None:
            _card_rules(con, card, report, pairs, findings)
        timings["rules"] = time.perf_counter() - t0

        table = pa.concat_tables(findings) if findings else FINDING_SCHEMA.empty_table()
        order = [("severity", "ascending"), ("rule", "ascending"), ("manifest", "ascending"), ("row", "ascending")]
        report.findings = table.sort_by(order)
        report.probes = probe.table
        report.probe = probe
        timings["total"] = time.perf_counter() - started
        report.seconds = timings
        return report
