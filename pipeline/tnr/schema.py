"""The Iceberg schemas of ``<ns>.reflectivity`` and ``<ns>.runs``, declared once.

Tables are created from these declarations (with their partition spec, in one
``create_table``), never from a run's values: an optional input that a run lacks
becomes a typed null, not an Arrow ``null`` column Iceberg cannot store. A
packager version that adds a field appends it here; tables made by an older
version gain it through ``update_schema().union_by_name`` (additive only).
Fields are never removed, renamed or re-typed: old snapshots must stay readable.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from manifest_broker.errors import BrokerError

# (name, Iceberg type name, required, doc). Types: long, int, double, string,
# timestamptz, list<double>, list<string>.
Field = tuple[str, str, bool, str]

REFLECTIVITY: list[Field] = [
    ("run_number", "long", True, "Neutron run number (from the reduction sidecar, or --run-number)"),
    ("package_id", "string", True, "Identifies one packaging: a run's rows in reflectivity and runs share it"),
    ("slice_index", "int", True, "Position of the slice in the reducer's interval order"),
    ("filename", "string", True, "Name of the reduced file"),
    ("filepath", "string", False, "Absolute path of the reduced file when packaged"),
    ("sha256", "string", True, "SHA-256 of the reduced file's bytes"),
    ("n_points", "int", True, "Rows in the reduced file (0 for an empty or header-only slice)"),
    ("Q", "list<double>", True, "Momentum transfer Q [1/Angstrom]"),
    ("R", "list<double>", True, "Reflectivity (NaN and negative values kept)"),
    ("dR", "list<double>", True, "Reflectivity uncertainty"),
    ("dQ", "list<double>", True, "Q resolution (FWHM) [1/Angstrom]"),
    ("n_nan", "int", True, "NaN values of R"),
    ("n_negative_R", "int", True, "Negative values of R"),
    ("Q_min", "double", False, "Smallest Q"),
    ("Q_max", "double", False, "Largest Q"),
    ("R_min", "double", False, "Smallest finite R"),
    ("R_max", "double", False, "Largest finite R"),
    (
        "interval_label",
        "string",
        False,
        "The interval's name as the reducer used it: label, else filename, else interval_<i>",
    ),
    (
        "interval_type",
        "string",
        False,
        "hold or eis (eis for every interval of a per-frequency split file, as the reducer records it)",
    ),
    (
        "interval_start",
        "timestamptz",
        False,
        "Interval start in UTC: the split file's local time + tz_offset_hours (the reducer's convention)",
    ),
    ("interval_end", "timestamptz", False, "Interval end in UTC (local + tz_offset_hours)"),
    ("duration_seconds", "double", False, "Interval duration [s]"),
    ("hold_index", "long", False, "Global hold counter (hold intervals)"),
    ("eis_filename", "string", False, "EIS data file of the interval"),
    ("n_frequencies", "long", False, "EIS frequencies measured in the interval"),
    ("avg_ewe_v", "double", False, "Average working electrode potential [V]"),
    ("first_time_s", "double", False, "First EIS time stamp in the file [s]"),
    ("last_time_s", "double", False, "Last EIS time stamp in the file [s]"),
    ("step_number", "long", False, "Step of a multi-step EIS file"),
    ("potential_V", "double", False, "Step potential [V]"),
    ("potential_vs", "string", False, "Reference of the step potential (Eoc or Ref)"),
    ("frequency_hz", "double", False, "Frequency of a per-frequency interval [Hz]"),
    ("measurement_index", "long", False, "Measurement index of a per-frequency interval"),
    ("ewe_v", "double", False, "Working electrode potential of a per-frequency interval [V]"),
    ("z_ohm", "double", False, "|Z| of a per-frequency interval [Ohm]"),
    ("im_z_ohm", "double", False, "Im(Z) of a per-frequency interval [Ohm]"),
    ("phase_deg", "double", False, "Phase of a per-frequency interval [deg]"),
    ("split_index", "int", False, "Position of the interval in the split file"),
    ("header_json", "string", False, "Every '#' header field of the reduced file, as JSON (null for headerless files)"),
    ("reduction_version", "string", False, "Reduction software version (file header)"),
    ("run_title", "string", False, "Run title (file header)"),
    ("run_start_time", "string", False, "Run start time (file header, as written)"),
    ("theta_offset", "string", False, "Theta offset (file header, as written)"),
    ("q_summing", "string", False, "Q summing flag (file header, as written)"),
    ("meta_json", "string", False, "The header's '# Meta:' JSON"),
    ("angles_json", "string", False, "The header's per-angle table (DataRun, NormRun, TwoTheta, ...) as JSON"),
]

RUNS: list[Field] = [
    ("run_number", "long", True, "Neutron run number"),
    ("package_id", "string", True, "Identifies one packaging: a run's rows in reflectivity and runs share it"),
    ("total_duration", "double", False, "Run duration from the sidecar [s] (null without a sidecar)"),
    ("n_intervals", "long", False, "Intervals in the run"),
    ("n_reduced_files", "long", False, "Reduced files packaged"),
    ("source_directory", "string", False, "EIS data directory (split file)"),
    ("eis_pattern", "string", False, "EIS file pattern (split file)"),
    ("resolution", "string", False, "Split resolution: per-file or per-frequency"),
    ("reduction_template_xml", "string", False, "The reduction template as text (decoded by its XML declaration)"),
    ("template_sha256", "string", False, "SHA-256 of the template file's bytes"),
    ("template_encoding", "string", False, "Encoding the template was decoded with"),
    ("packaged_timestamp", "timestamptz", True, "When this run was packaged (UTC)"),
    ("packager_version", "string", True, "manifest-broker version"),
    ("intervals_json", "string", False, "All intervals of the split file, as JSON"),
    ("split_metadata_json", "string", False, "The whole split file, as JSON"),
    ("reduction_metadata_json", "string", False, "The whole reduction sidecar, as JSON (null when absent)"),
    ("reduction_options_json", "string", False, "reduction_options.json, as JSON (null when absent)"),
    (
        "tz_offset_hours",
        "double",
        False,
        "Hours added to the split file's local times to get UTC (the reducer's convention: 5.0 for US Eastern standard time); null when unknown (the times were taken as UTC)",
    ),
    ("split_file", "string", False, "Split file name"),
    ("template_file", "string", False, "Template file name"),
    ("split_path", "string", False, "The split file actually read (absolute, symlinks resolved)"),
    ("template_path", "string", False, "The template actually read (absolute, symlinks resolved)"),
    ("reduced_dir", "string", False, "The reduced folder actually read (absolute, symlinks resolved)"),
    (
        "inputs_fingerprint",
        "string",
        False,
        "Digest of the names, sizes and times of the files read: `tnr watch` re-packages a run only when it changes",
    ),
    ("event_file", "string", False, "Event (NeXus) file reduced (reduction options)"),
    ("scan_index", "long", False, "Scan index (reduction options)"),
    ("theta_offset", "double", False, "Theta offset (reduction options)"),
    ("instrument_name", "string", False, "Instrument (template)"),
    ("reduction_version", "string", False, "Reduction version (template)"),
    ("mantid_version", "string", False, "Mantid version (template)"),
    ("n_angles", "long", False, "RefLData blocks (angles) in the template"),
    ("n_nan_R", "long", False, "NaN values of R over the run"),
    ("n_negative_R", "long", False, "Negative values of R over the run"),
    ("data_sets", "list<string>", False, "data_sets per angle (template)"),
    ("norm_dataset", "list<string>", False, "Normalisation run per angle (template)"),
    ("scaling_factor_file", "list<string>", False, "Scaling factor file per angle (template)"),
    ("incident_angle", "list<double>", False, "Incident angle per angle (template; null where not a number)"),
    ("q_step", "list<double>", False, "q_step per angle (template)"),
    ("q_min", "list<double>", False, "q_min per angle (template)"),
    ("angle_offset", "list<double>", False, "angle_offset per angle (template)"),
    ("warnings_json", "string", False, "What the packager warned about for this run, as JSON"),
]

TABLES: dict[str, list[Field]] = {"reflectivity": REFLECTIVITY, "runs": RUNS}
PARTITION_SOURCE = "run_number"


def _arrow_type(name: str) -> pa.DataType:
    return {
        "long": pa.int64(),
        "int": pa.int32(),
        "double": pa.float64(),
        "string": pa.string(),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "list<double>": pa.list_(pa.float64()),
        "list<string>": pa.list_(pa.string()),
    }[name]


def arrow_schema(fields: list[Field]) -> pa.Schema:
    """The declaration as an Arrow schema (what a run's data is built against)."""
    return pa.schema([pa.field(n, _arrow_type(t), nullable=not required) for n, t, required, _ in fields])


def polars_schema(fields: list[Field]) -> dict[str, Any]:
    """The declaration as polars dtypes (to build rows without pyarrow's Python conversion)."""
    import polars as pl

    kinds = {
        "long": pl.Int64,
        "int": pl.Int32,
        "double": pl.Float64,
        "string": pl.String,
        "timestamptz": pl.Datetime("us", "UTC"),
        "list<double>": pl.List(pl.Float64),
        "list<string>": pl.List(pl.String),
    }
    return {name: kinds[kind] for name, kind, _, _ in fields}


def iceberg_schema(fields: list[Field]) -> Any:
    """The declaration as a pyiceberg ``Schema`` with docs and required flags.

    Field ids are assigned in declaration order (list elements after all columns);
    ``create_table`` re-assigns them, which is why data is always matched by name.
    """
    from pyiceberg.schema import Schema
    from pyiceberg.types import DoubleType, IntegerType, ListType, LongType, NestedField, StringType, TimestamptzType

    primitive = {
        "long": LongType,
        "int": IntegerType,
        "double": DoubleType,
        "string": StringType,
        "timestamptz": TimestamptzType,
    }
    next_element = len(fields) + 1
    columns = []
    for field_id, (name, kind, required, doc) in enumerate(fields, start=1):
        if kind.startswith("list<"):
            element = primitive[kind[5:-1]]()
            iceberg_type: Any = ListType(element_id=next_element, element_type=element, element_required=False)
            next_element += 1
        else:
            iceberg_type = primitive[kind]()
        columns.append(NestedField(field_id=field_id, name=name, field_type=iceberg_type, required=required, doc=doc))
    return Schema(*columns)


def partition_spec(schema: Any) -> Any:
    """Identity partitions on run_number: a run's files are its own, so replacing a
    run rewrites nothing of the others (and needs no pyiceberg-core)."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import IdentityTransform

    source = schema.find_field(PARTITION_SOURCE).field_id
    return PartitionSpec(
        PartitionField(source_id=source, field_id=1000, transform=IdentityTransform(), name=PARTITION_SOURCE)
    )


class SchemaMismatch(BrokerError, ValueError):
    """A value that does not fit its declared column."""


def conform(data: pa.Table, target: pa.Schema) -> pa.Table:
    """``data`` with exactly ``target``'s columns, in its order and types.

    Columns the data lacks become typed nulls; columns the target lacks are an
    error (a field used but not declared).

    Raises:
        SchemaMismatch: naming the column that does not cast, is missing while
            required, or is not declared.
    """
    undeclared = sorted(set(data.column_names) - set(target.names))
    if undeclared:
        raise SchemaMismatch(f"columns {', '.join(undeclared)} are not declared in pipeline/tnr/schema.py")
    columns = []
    for field in target:
        if field.name in data.column_names:
            try:
                column = data[field.name].cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaMismatch(f"column {field.name}: {exc}") from exc
        else:
            column = pa.nulls(data.num_rows, field.type)
        if not field.nullable and column.null_count:
            raise SchemaMismatch(f"column {field.name} is required but has {column.null_count} null value(s)")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=target)
