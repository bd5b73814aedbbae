"""Check manifests against the contract before anything is written.

Every rule is a DuckDB query under ``sql/contract/`` that returns the offending
rows (dbt semantics: zero rows means the rule holds). Rules in ``schema/`` run
once per manifest pair (column types, metadata values, parameter variation);
rules in ``rows/`` run once over all pairs together, joined with the HDF5 probe.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

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
    metadata_columns,
    read_manifest,
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
class CheckedManifests:
    """What planning and verifying need from a passing check: the manifests and
    their metadata documents by dataset (:attr:`ManifestPair.ident`), and the probe of every file and
    dataset they point at."""

    hamiltonians: dict[str, pa.Table]
    artifacts: dict[str, pa.Table]
    documents: dict[str, Documents]
    probes: pa.Table


@dataclass
class ContractReport:
    """What a check found, plus the tables later stages reuse."""

    findings: pa.Table
    hamiltonians: dict[str, pa.Table] = field(default_factory=dict)  # by ManifestPair.ident
    artifacts: dict[str, pa.Table] = field(default_factory=dict)
    documents: dict[str, Documents] = field(default_factory=dict)
    probes: pa.Table | None = None
    probe: ProbeResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)

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
        return CheckedManifests(self.hamiltonians, self.artifacts, self.documents, self.probes)


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
    result = con.execute(queries.load(name), params or {}).to_arrow_table()
    return result.rename_columns(FINDING_SCHEMA.names).cast(FINDING_SCHEMA)


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


def _schema_rules(
    con: duckdb.DuckDBPyConnection, pair: ManifestPair, findings: list[pa.Table]
) -> tuple[pa.Table, pa.Table, Documents] | None:
    """Read one pair and run the schema rules on it; returns the two tables and
    their metadata documents, or ``None`` when a file is unreadable or lacks a
    standard column."""
    try:
        ham = read_manifest(pair.hamiltonians)
        art = read_manifest(pair.artifacts)
    except ManifestError as exc:
        findings.append(_finding(exc.rule, exc.where or str(pair.hamiltonians), str(exc)))
        return None
    ham_path, art_path = str(pair.hamiltonians), str(pair.artifacts)
    # Only the standard columns: the rules look at nothing else, and a catalog view
    # of 100,000 metadata columns costs seconds.
    con.register("ham_full", ham.select([ROW_COLUMN, *(c for c in ham.column_names if c in HAMILTONIAN_COLUMNS)]))
    con.register("art_full", art.select([ROW_COLUMN, *(c for c in art.column_names if c in ARTIFACT_COLUMNS)]))
    pair_params: dict[str, object] = {"ham_manifest": ham_path, "art_manifest": art_path}
    schema_errors = _run(con, "contract/schema/required_columns", pair_params)
    findings.append(schema_errors)
    # An empty manifest is an error, but the rows of its partner are still checked.
    findings.append(_run(con, "contract/schema/manifest_empty", pair_params))
    con.unregister("ham_full")
    con.unregister("art_full")
    documents = Documents(
        _metadata_rules(ham, HAMILTONIAN_COLUMNS, ham_path, findings, hamiltonians=True),
        _metadata_rules(art, ARTIFACT_COLUMNS, art_path, findings, hamiltonians=False),
    )
    return None if schema_errors.num_rows else (ham, art, documents)


def _metadata_rules(
    table: pa.Table, standard: tuple[str, ...], manifest: str, findings: list[pa.Table], *, hamiltonians: bool
) -> pa.Table:
    """Rules on the columns that become metadata: types, finite numbers, integer
    range, and (Hamiltonians) parameters that tell rows apart. The size rule runs
    with the row rules, on the whole document a node will store. A connection of
    their own, closed at the end, gives back what DuckDB held for wide manifests.

    Returns:
        The rows' metadata documents (:func:`metadata_documents`).
    """
    with contextlib.closing(queries.connect()) as con:
        return _metadata_findings(
            con, table, metadata_columns(table, standard), manifest, findings, hamiltonians=hamiltonians
        )


def _metadata_findings(
    con: duckdb.DuckDBPyConnection,
    table: pa.Table,
    meta: list[str],
    manifest: str,
    findings: list[pa.Table],
    *,
    hamiltonians: bool,
) -> pa.Table:
    con.register(
        "metadata_columns",
        pa.table(
            {
                "column_name": pa.array(meta, pa.string()),
                "data_type": pa.array([str(table.schema.field(c).type) for c in meta], pa.string()),
            }
        ),
    )
    findings.append(_run(con, "contract/schema/metadata_types", {"manifest": manifest}))
    if hamiltonians:
        params: dict[str, object] = {"manifest": manifest, "prefixes": list(LOCATOR_PREFIXES)}
        findings.append(_run(con, "contract/schema/locator_namespace", params))
    con.unregister("metadata_columns")
    documents = metadata_documents(con, table, meta)
    if meta:
        con.register("metadata_rows", documents)
        con.register("metadata_cells", con.execute(queries.load("contract/schema/metadata_cells")).to_arrow_table())
        for rule in ("metadata_not_finite", "metadata_integer_range"):
            findings.append(_run(con, f"contract/schema/{rule}", {"manifest": manifest}))
        con.unregister("metadata_cells")
        if hamiltonians:
            findings.append(_run(con, "contract/schema/parameter_variation", {"manifest": manifest}))
        con.unregister("metadata_rows")
    elif hamiltonians and table.num_rows > 1:
        findings.append(
            _finding(
                "no_parameter_variation",
                manifest,
                "the Hamiltonian manifest has no parameter columns: "
                "metadata search has nothing to tell Hamiltonians apart",
                "warning",
            )
        )
    return documents


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
        if pair.ident in report.hamiltonians
        for f in report.hamiltonians[pair.ident].schema
    ]
    schema = pa.schema([(n, pa.string()) for n in ("manifest", "dataset_name", "name", "family")])
    con.register("manifest_columns", pa.Table.from_pylist(rows, schema=schema))
    for name in queries.names("contract/card"):
        findings.append(_run(con, name))


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

    Returns:
        A :class:`ContractReport`; nothing is written except the probe cache.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    con = queries.connect()
    for macro in queries.names("contract/macros"):
        con.execute(queries.load(macro))
    findings: list[pa.Table] = []
    report = ContractReport(findings=FINDING_SCHEMA.empty_table())
    ham_cores, art_cores = [], []
    for pair in pairs:
        read = _schema_rules(con, pair, findings)
        if read is None:
            continue  # row rules need the standard columns
        ham, art, documents = read
        # Pairs by their full path: equal names in different folders are two datasets.
        report.hamiltonians[pair.ident] = ham
        report.artifacts[pair.ident] = art
        report.documents[pair.ident] = documents
        ham_cores.append(_core(ham, documents.hamiltonians, _HAM_CORE, str(pair.hamiltonians), pair.ident))
        art_cores.append(_core(art, documents.artifacts, _ART_CORE, str(pair.artifacts), pair.ident))
    timings["schema"] = time.perf_counter() - started

    con.register("hamiltonians", pa.concat_tables(ham_cores) if ham_cores else _HAM_CORE.empty_table())
    con.register("artifacts", pa.concat_tables(art_cores) if art_cores else _ART_CORE.empty_table())
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
    con.close()

    table = pa.concat_tables(findings) if findings else FINDING_SCHEMA.empty_table()
    order = [("severity", "ascending"), ("rule", "ascending"), ("manifest", "ascending"), ("row", "ascending")]
    report.findings = table.sort_by(order)
    report.probes = probe.table
    report.probe = probe
    timings["total"] = time.perf_counter() - started
    report.seconds = timings
    return report
