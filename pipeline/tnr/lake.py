"""The Iceberg side: an embedded pyiceberg SqlCatalog (SQLite file + local warehouse)
holding ``<ns>.reflectivity`` (one row per reduced file) and ``<ns>.runs`` (one row
per run), partitioned by run_number, a doc on every field."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline import __version__
from pipeline.tnr.package import RunPackage

DEFAULT_NAMESPACE = "tnr"
DOCS: dict[str, str] = {
    "run_number": "Neutron run number (from the reduction sidecar)",
    "filename": "Name of the reduced file", "filepath": "Absolute path of the reduced file when packaged", "sha256": "SHA-256 of the reduced file's bytes",
    "header_json": "Every '#' header field of the reduced file, as JSON (null for headerless files)",
    "Q": "Momentum transfer Q [1/Angstrom]", "R": "Reflectivity (NaN and negative values kept)",
    "dR": "Reflectivity uncertainty", "dQ": "Q resolution (FWHM) [1/Angstrom]",
    "n_points": "Rows in the reduced file", "n_nan": "NaN values of R", "n_negative_R": "Negative values of R",
    "slice_index": "Position of the slice in the sidecar's interval order",
    "interval_label": "EIS interval label from the split file", "interval_type": "hold or eis",
    "interval_start": "Interval start, UTC (local time shifted by tz_offset_hours)",
    "interval_end": "Interval end, UTC", "eis_filename": "EIS data file of an eis interval",
    "duration_seconds": "Interval duration [s]", "hold_index": "Global hold counter (hold intervals)",
    "n_frequencies": "EIS frequencies measured in the interval", "avg_ewe_v": "Average working electrode potential [V]",
    "first_time_s": "First EIS time stamp in the file [s]", "last_time_s": "Last EIS time stamp in the file [s]",
    "step_number": "Step of a multi-step EIS file", "potential_V": "Step potential [V]",
    "potential_vs": "Reference of the step potential (Eoc or Ref)",
    "Q_min": "Smallest Q", "Q_max": "Largest Q", "R_min": "Smallest finite R", "R_max": "Largest finite R",
    "reduction_version": "Reduction software version", "run_title": "Run title from the file header",
    "run_start_time": "Run start time from the file header", "theta_offset": "Theta offset from the file header or options",
    "q_summing": "Q summing flag from the file header", "meta_json": "The header's '# Meta:' JSON",
    "angles_json": "The header's per-angle table (DataRun, NormRun, TwoTheta, ...) as JSON",
    "total_duration": "Run duration from the sidecar [s]", "n_intervals": "Intervals in the run",
    "n_reduced_files": "Reduced files packaged", "source_directory": "EIS data directory (split file)",
    "eis_pattern": "EIS file pattern (split file)", "resolution": "Split resolution: per-file or per-frequency",
    "reduction_template_xml": "The reduction template, byte for byte",
    "packaged_timestamp": "When this run was packaged (UTC)", "packager_version": "manifest-broker version",
    "intervals_json": "All intervals of the split file, as JSON", "split_metadata_json": "The whole split file, as JSON",
    "reduction_metadata_json": "The whole reduction sidecar, as JSON",
    "reduction_options_json": "reduction_options.json, as JSON (null when absent)",
    "tz_offset_hours": "Time-zone offset used to convert interval times to UTC [h]",
    "split_file": "Split file name", "template_file": "Template file name", "event_file": "Event (NeXus) file reduced",
    "scan_index": "Scan index (reduction options)", "instrument_name": "Instrument (template)",
    "mantid_version": "Mantid version (template)", "n_angles": "RefLData blocks (angles) in the template",
    "n_nan_R": "NaN values of R over the run", "data_sets": "data_sets per angle (template)",
    "norm_dataset": "Normalisation run per angle (template)", "scaling_factor_file": "Scaling factor file per angle",
    "incident_angle": "Incident angle per angle (template)", "q_step": "q_step per angle (template)",
    "q_min": "q_min per angle (template)", "angle_offset": "angle_offset per angle (template)",
}  # fmt: skip


def _run_filter(run_number: int) -> Any:
    from pyiceberg.expressions import EqualTo, Reference
    from pyiceberg.expressions.literals import literal

    return EqualTo(term=Reference("run_number"), value=literal(run_number))


def catalog(lake: Path) -> Any:
    """The embedded catalog: ``<lake>/catalog.db`` and the warehouse ``<lake>/warehouse``."""
    from pyiceberg.catalog.sql import SqlCatalog

    lake = Path(lake).resolve()
    (lake / "warehouse").mkdir(parents=True, exist_ok=True)
    return SqlCatalog("lake", uri=f"sqlite:///{lake / 'catalog.db'}", warehouse=f"file://{lake / 'warehouse'}")


def _documented(schema: pa.Schema) -> pa.Schema:
    fields = []
    for f in schema:
        f = f.with_type(_small(f.type))
        fields.append(f.with_metadata({b"doc": DOCS.get(f.name, f.name).encode()}))
    return pa.schema(fields)


def _small(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_list(t) or pa.types.is_list(t):
        return pa.list_(_small(t.value_type))
    return t


def _table(cat: Any, identifier: str, schema: pa.Schema) -> Any:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return cat.load_table(identifier)
    except NoSuchTableError:
        table = cat.create_table(identifier, schema=_documented(schema),
                                 properties={"manifest-broker.packager-version": __version__})  # fmt: skip
        with table.update_spec() as spec:
            spec.add_identity("run_number")
        return table


def write_run(lake: Path, package: RunPackage, namespace: str = DEFAULT_NAMESPACE) -> None:
    """Replace the run's rows in both tables: each table's delete + append is one commit,
    so a re-packaged run never duplicates. (pyiceberg commits one table at a time;
    the runs row is written last, so a run listed in ``runs`` is complete.)"""
    cat = catalog(lake)
    cat.create_namespace_if_not_exists(namespace)
    for name, data in (("reflectivity", package.reflectivity), ("runs", package.run)):
        table = _table(cat, f"{namespace}.{name}", data.schema)
        target = table.schema().as_arrow()
        data = data.select(target.names).cast(target)
        with warnings.catch_warnings():
            # A first packaging has nothing to delete; pyiceberg warns about that.
            warnings.filterwarnings("ignore", "Delete operation did not match any records")
            table.overwrite(data, overwrite_filter=_run_filter(package.run_number))
        if table.properties.get("manifest-broker.packager-version") != __version__:
            with table.transaction() as tx:
                tx.set_properties({"manifest-broker.packager-version": __version__})


def scan(lake: Path, table: str, namespace: str = DEFAULT_NAMESPACE, run: int | None = None) -> pa.Table:
    """Read a table (optionally one run) as Arrow through a pyiceberg scan."""
    from pyiceberg.expressions import AlwaysTrue

    t = catalog(lake).load_table(f"{namespace}.{table}")
    return t.scan(row_filter=_run_filter(run) if run is not None else AlwaysTrue()).to_arrow()
