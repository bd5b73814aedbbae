"""The reference packager's method, as its own process with only the imports it has.

The spec's `iceberg-packager` reads every reduced file with ``numpy.loadtxt``, builds
pandas rows and writes two plain Parquet files (no Iceberg). This script does the
same work on the same inputs so that `python -m benchmarks tnr` can time it whole
process to whole process beside `broker tnr package`. It is a peer to measure
against, not a tool: it has the reference's faults (labels split at the first '_'
are not how it matches here; we match by the cleaned label so that it does the
same amount of work).

Usage: python benchmarks/reference_packager.py SPLIT REDUCED_DIR TEMPLATE -o OUT.parquet
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from datetime import UTC, datetime

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("split_file")
    parser.add_argument("reduced_dir")
    parser.add_argument("template_file")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()

    with open(args.split_file) as handle:
        split = json.load(handle)
    by_label = {iv["label"].replace(",", "_").replace(" ", "_"): iv for iv in split["intervals"]}
    sidecars = glob.glob(os.path.join(args.reduced_dir, "*_eis_reduction.json"))
    reduction = json.load(open(sidecars[0])) if sidecars else {}
    run_number = int(reduction.get("run_number", 0))
    with open(args.template_file) as handle:
        template = handle.read()

    rows = []
    for path in sorted(glob.glob(os.path.join(args.reduced_dir, "r*_*.txt"))):
        name = os.path.basename(path)
        if name.endswith("_eis_reduction.json"):
            continue
        data = np.loadtxt(path, ndmin=2)
        label = name[len(f"r{run_number}_") : -len(".txt")]
        iv = by_label.get(label, {})
        rows.append(
            {
                "run_number": run_number,
                "filename": name,
                "filepath": os.path.abspath(path),
                "n_points": len(data),
                "Q": data[:, 0].tolist(),
                "R": data[:, 1].tolist(),
                "dR": data[:, 2].tolist(),
                "dQ": data[:, 3].tolist(),
                "Q_min": float(data[:, 0].min()),
                "Q_max": float(data[:, 0].max()),
                "R_min": float(np.nanmin(data[:, 1])),
                "R_max": float(np.nanmax(data[:, 1])),
                "interval_label": iv.get("label"),
                "interval_type": iv.get("interval_type"),
                "interval_start": iv.get("start"),
                "interval_end": iv.get("end"),
                "duration_seconds": iv.get("duration_seconds"),
                "hold_index": iv.get("hold_index"),
            }
        )
    pd.DataFrame(rows).to_parquet(args.output)
    metadata = {
        "run_number": run_number,
        "total_duration": reduction.get("duration"),
        "n_intervals": len(split["intervals"]),
        "n_reduced_files": len(rows),
        "source_directory": split.get("source_directory"),
        "eis_pattern": split.get("pattern"),
        "resolution": split.get("resolution"),
        "reduction_template_xml": template,
        "packaged_timestamp": datetime.now(UTC).isoformat(),
        "packager_version": "reference",
        "intervals_json": json.dumps(split["intervals"]),
        "split_metadata_json": json.dumps(split),
        "reduction_metadata_json": json.dumps(reduction),
    }
    base, ext = os.path.splitext(args.output)
    pd.DataFrame([metadata]).to_parquet(f"{base}_metadata{ext}")


if __name__ == "__main__":
    main()
