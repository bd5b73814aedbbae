"""A message to the data provider, shaped like the guide's "How to give feedback":
what was found, which constraint it breaks, and a concrete request for each."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow as pa

# rule -> (constraint broken, what to ask the provider)
CONSTRAINTS: dict[str, tuple[str, str]] = {
    "column_missing": (
        "The manifests follow the broker's contract",
        "Add the missing standard column(s) to the manifest.",
    ),
    "column_type": (
        "The manifests follow the broker's contract",
        "Write `huid`, `key`, `type`, `file`, `dataset` as text and `index` as an integer (or leave it empty).",
    ),
    "manifest_empty": (
        "The manifests follow the broker's contract",
        "The manifest is empty: was the generator run on the right data directory?",
    ),
    "manifest_unreadable": ("The manifests follow the broker's contract", "Send the manifests as Parquet files."),
    "huid_missing": (
        "Each entity needs a unique ID",
        "Give every Hamiltonian and artifact a run ID, parameter hash or index we can use as `huid`.",
    ),
    "huid_duplicate": ("Each entity needs a unique ID", "Make `huid` unique: two Hamiltonians share an ID."),
    "key_invalid": (
        "Catalog keys must be usable names",
        "Use keys without '/', '?', '#', percent-escapes like %2F, control or invisible characters, or surrounding spaces, and not '.' or '..'.",
    ),
    "key_duplicate": ("Catalog keys must be unique", "Make each `key` unique within the dataset."),
    "key_collision": (
        "Catalog keys must be unique across datasets",
        "Prefix the keys with the dataset name so they cannot collide with another dataset.",
    ),
    "key_in_catalog": (
        "Catalog keys must be unique across datasets",
        "Choose keys that are not registered yet, or tell us this is an update of existing entries.",
    ),
    "artifact_orphan": (
        "Each entity needs a unique ID",
        "Every artifact's `huid` must match a Hamiltonian: add the missing Hamiltonians or fix the IDs.",
    ),
    "hamiltonian_without_artifacts": (
        "Each Hamiltonian should produce artifacts",
        "Confirm these Hamiltonians really have no output, or send the missing files.",
    ),
    "type_invalid": (
        "Artifact types must be unique per entity",
        "Name every artifact type by the key rules: no '/', '?', '#', percent-escapes, control or invisible characters, surrounding spaces, '.' or '..'.",
    ),
    "type_duplicate": (
        "Artifact types must be unique per entity",
        "Give each artifact of a Hamiltonian its own type name, e.g. `mag_x`, `mag_y` instead of `mag` twice.",
    ),
    "file_invalid": (
        "Files must be accessible from the server",
        "List file paths relative to the data directory, without absolute paths or '..'.",
    ),
    "file_missing": (
        "Files must be accessible from the server",
        "Place the missing files under the data directory, or fix their paths in the manifest.",
    ),
    "file_outside_base": (
        "Files must be accessible from the server",
        "Move the data (not a symlink to elsewhere) under the shared data directory.",
    ),
    "file_uri_unsafe": (
        "Files must be accessible from the server",
        "Rename files and folders so their paths hold no '#' or '?'.",
    ),
    "file_not_regular": ("Data must be in HDF5", "Point `file` at HDF5 files, not directories."),
    "file_empty": ("Data must be in HDF5", "Re-send the empty files: they hold no data."),
    "file_unreadable": (
        "Files must be accessible from the server",
        "Make the files readable by the broker's account (e.g. `chmod a+r`).",
    ),
    "file_not_hdf5": (
        "Data must be in HDF5",
        "Could you save the output as HDF5 files? A five-line h5py script does it.",
    ),
    "file_corrupt": (
        "Data must be in HDF5",
        "These HDF5 files are corrupt or truncated: please re-copy or regenerate them.",
    ),
    "dataset_invalid": ("The locator must be self-contained", "Fill in `dataset` with the HDF5 path of each array."),
    "dataset_missing": (
        "The locator must be self-contained",
        "Fix `dataset` to name an array that exists in the file.",
    ),
    "dataset_not_a_dataset": ("The locator must be self-contained", "Point `dataset` at an array, not a group."),
    "dataset_unreadable": (
        "Files must be accessible from the server",
        "These datasets cannot be opened: check for broken links or missing filters.",
    ),
    "dataset_external_link": (
        "Files must be accessible from the server, and only those",
        "These datasets are external links into other files: copy the data into this file, or list the other file (and its dataset) in the manifest as the artifact's `file`.",
    ),
    "dataset_external_storage": (
        "Files must be accessible from the server, and only those",
        "These datasets keep their bytes in external raw files: copy the data into the HDF5 file (e.g. `h5repack`, or rewrite it with h5py) so that the file is self-contained.",
    ),
    "dataset_virtual": (
        "Files must be accessible from the server, and only those",
        "These are virtual datasets assembled from other files: list the source files in the manifest instead (one artifact per source, with `index` if batched), or materialise the data into this file.",
    ),
    "dataset_opens_other_file": (
        "Files must be accessible from the server, and only those",
        "Reading these files makes HDF5 open other files: make each file self-contained.",
    ),
    "dataset_attrs_unusable": (
        "Metadata must be JSON that Tiled can serve",
        "Tiled copies each dataset's HDF5 attributes into its metadata: keep attributes to numbers, text and arrays of them (no references or compound values).",
    ),
    "metadata_too_large": (
        "Metadata must be JSON that Tiled can serve",
        "Keep each Hamiltonian's or artifact's metadata under 1 MiB: bulky values (spectra, long text) belong in the HDF5 file.",
    ),
    "metadata_too_deep": (
        "Metadata must be JSON that Tiled can serve",
        "Flatten the nested metadata columns: Parquet readers refuse schemas that deep.",
    ),
    "column_duplicate": (
        "The manifest is two Parquet tables with the guide's columns",
        "Give every column of the manifest its own name.",
    ),
    "metadata_integer_range": (
        "Metadata must be JSON that Tiled can serve",
        "Keep integers between -2^63 and 2^64-1, or store larger ones as text.",
    ),
    "dataset_ragged": (
        "Arrays should be rectangular",
        "Are all your spectra the same length? If not, could they be zero-padded to a common size?",
    ),
    "dataset_empty": ("Arrays should hold data", "Confirm these empty arrays are expected."),
    "index_out_of_range": (
        "The locator must be self-contained",
        "Each `index` must select a row of the batched dataset's first axis.",
    ),
    "index_inconsistent": (
        "The locator must be self-contained",
        "Give every row that reads a batched dataset its `index`.",
    ),
    "locator_duplicate": ("The locator must be self-contained", "Check that two artifacts really share one array."),
    "no_parameter_variation": (
        "There should be a parameter sweep structure",
        "How many parameter sets did you simulate? Please include the parameters that vary.",
    ),
    "metadata_binary": ("Metadata must be JSON", "Store these columns as text or numbers."),
    "metadata_not_finite": ("Metadata must be JSON", "Use an empty value (null) instead of NaN or Infinity."),
    "catalog_unusable": ("The catalog must be a Tiled catalog", "Point us at the right catalog."),
    "base_dir_missing": ("Files are found under the data directory", "Tell us where the data directory is."),
}
_EXAMPLES = 5


def feedback_message(findings: pa.Table, dataset: str = "your data") -> str:
    """Render findings as a message to the provider (Markdown).

    Args:
        findings: The contract report's findings table.
        dataset: How to name the data in the greeting.

    Returns:
        The message text; a short all-clear when there is nothing to report.
    """
    rows = findings.to_pylist()
    if not rows:
        return f"Hi,\n\nI checked {dataset} against the broker's contract and found nothing to fix.\n"
    by_constraint: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        constraint, _ = CONSTRAINTS.get(row["rule"], ("Other findings", "Please look at these rows."))
        by_constraint[constraint][row["rule"]].append(row)
    lines = [
        "Hi,",
        "",
        f"I explored {dataset} and found a few things we need to address before I can register it with the catalog:",
        "",
    ]
    for number, (constraint, rules) in enumerate(by_constraint.items(), start=1):
        lines.append(f"{number}. **{constraint}**")
        for rule, hits in rules.items():
            _, request = CONSTRAINTS.get(rule, ("", "Please look at these rows."))
            kind = "problem" if hits[0]["severity"] == "error" else "warning"
            lines.append(f"   - What I found ({rule}, {len(hits)} {kind}{'s' if len(hits) > 1 else ''}):")
            for hit in hits[:_EXAMPLES]:
                where = f"{hit['manifest']}" + (f", row {hit['row']}" if hit["row"] is not None else "")
                lines.append(f"     - {where}: {hit['message']}")
            if len(hits) > _EXAMPLES:
                lines.append(f"     - ... and {len(hits) - _EXAMPLES} more like these")
            lines.append(f"   - What I need: {request}")
        lines.append("")
    errors = sum(1 for r in rows if r["severity"] == "error")
    lines.append(
        "Once these are resolved, registration is a single bulk run."
        if errors
        else "None of these blocks registration; please confirm they are expected."
    )
    return "\n".join(lines) + "\n"
