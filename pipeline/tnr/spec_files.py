"""The reference packager's two plain Parquet files, with at least its columns and types."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from manifest_broker.tnr.package import RunPackage

DATA_SCHEMA = pa.schema(
    [
        ("run_number", pa.int64()),
        ("filename", pa.string()),
        ("filepath", pa.string()),
        ("n_points", pa.int64()),
        ("Q", pa.list_(pa.float64())),
        ("R", pa.list_(pa.float64())),
        ("dR", pa.list_(pa.float64())),
        ("dQ", pa.list_(pa.float64())),
        ("Q_min", pa.float64()),
        ("Q_max", pa.float64()),
        ("R_min", pa.float64()),
        ("R_max", pa.float64()),
        ("interval_label", pa.string()),
        ("interval_type", pa.string()),
        ("interval_start", pa.string()),
        ("interval_end", pa.string()),
        ("duration_seconds", pa.float64()),
        ("hold_index", pa.int64()),
        ("sha256", pa.string()),
    ]
)
METADATA_SCHEMA = pa.schema(
    [
        ("run_number", pa.int64()),
        ("total_duration", pa.float64()),
        ("n_intervals", pa.int64()),
        ("n_reduced_files", pa.int64()),
        ("source_directory", pa.string()),
        ("eis_pattern", pa.string()),
        ("resolution", pa.string()),
        ("reduction_template_xml", pa.string()),
        ("packaged_timestamp", pa.string()),
        ("packager_version", pa.string()),
        ("intervals_json", pa.string()),
        ("split_metadata_json", pa.string()),
        ("reduction_metadata_json", pa.string()),
        ("tz_offset_hours", pa.float64()),
    ]
)


def spec_paths(output: Path) -> tuple[Path, Path]:
    """(data file, metadata file): the metadata name always differs from the data name,
    whatever suffix the user chose (``out.pq`` -> ``out_metadata.pq``)."""
    output = Path(output)
    return output, output.with_name(f"{output.stem}_metadata{output.suffix}")


def _iso(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.strftime(column, format="%Y-%m-%dT%H:%M:%SZ")


def write_spec_files(package: RunPackage, output: Path) -> tuple[Path, Path]:
    """Write ``<name>.parquet`` and ``<name>_metadata.parquet`` (timestamps as ISO UTC strings)."""
    data_path, meta_path = spec_paths(output)
    r = package.reflectivity
    r = r.set_column(r.schema.get_field_index("interval_start"), "interval_start", _iso(r["interval_start"]))
    r = r.set_column(r.schema.get_field_index("interval_end"), "interval_end", _iso(r["interval_end"]))
    # No dictionary for the float lists (no repeats: pyarrow would try and fall back).
    strings = [f.name for f in DATA_SCHEMA if f.type == pa.string()]
    pq.write_table(
        r.select(DATA_SCHEMA.names).cast(DATA_SCHEMA),
        data_path,
        compression="zstd",
        compression_level=1,
        use_dictionary=strings,
    )
    m = package.run
    m = m.set_column(
        m.schema.get_field_index("packaged_timestamp"), "packaged_timestamp", _iso(m["packaged_timestamp"])
    )
    pq.write_table(m.select(METADATA_SCHEMA.names).cast(METADATA_SCHEMA), meta_path)
    return data_path, meta_path
