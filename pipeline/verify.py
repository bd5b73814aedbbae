"""`broker verify`: the guide's Step 7, automated, through a running Tiled server."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from manifest_broker import queries
from manifest_broker.contract import ContractReport
from manifest_broker.plan import NodePlan


class VerifyError(RuntimeError):
    """The catalog path to verify is not served."""


@dataclass
class VerifyReport:
    hamiltonians: int = 0
    artifacts: int = 0
    arrays_compared: int = 0
    assets_checked: int = 0
    queries: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _numeric_parameter(report: ContractReport) -> tuple[str, str, Any] | None:
    """(dataset, column, median) of the first numeric metadata column found."""
    con = duckdb.connect()
    for name, ham in report.hamiltonians.items():
        for field_ in ham.schema:
            if field_.name in ("huid", "key", "_row") or not (
                str(field_.type).startswith(("double", "float", "int"))
            ):
                continue
            con.register("hamiltonians", ham.select([field_.name]).rename_columns(["value"]))
            median = con.execute(queries.load("verify/median")).fetchone()
            con.unregister("hamiltonians")
            if median and median[0] is not None:
                return name, field_.name, median[0]
    return None


def confinement_problems(served: list[tuple[str, str, str]], base_dir: Path) -> list[str]:
    """Re-probe what the server would read now: every asset inside the data directory
    (symlinks resolved today, not at ingest time) and no dataset that makes h5py
    open another file.

    Args:
        served: (node path, asset data_uri, dataset) of every served array.
        base_dir: The data directory the server's readable storage is meant to be.

    Returns:
        One message per array that would read outside the data directory.
    """
    import pyarrow as pa
    from tiled.utils import path_from_uri

    from manifest_broker.probe import probe_locators

    files = [str(path_from_uri(uri)) for _, uri, _ in served]
    locators = pa.table({"file": files, "dataset": [d for _, _, d in served]})
    probes = probe_locators(locators, base_dir, cache_dir=None).table.to_pylist()
    verdicts = {(p["file"], p["dataset"]): p for p in probes}
    problems = []
    for (node, _, dataset), file in zip(served, files):
        probe = verdicts[(file, dataset)]
        if probe["file_status"] != "ok":
            problems.append(f"{node}: served asset {file} {probe['file_message']}")
        elif probe["dataset_status"] != "ok":
            problems.append(f"{node}: served dataset {dataset} of {file}: {probe['dataset_message']}")
    return problems


def verify(client: Any, report: ContractReport, plan: NodePlan, *, base_dir: Path, parent: str = "",
           sample: int = 10, seed: int = 0) -> VerifyReport:  # fmt: skip
    """Compare what the server serves with the manifests.

    Every Hamiltonian present with all its metadata; every artifact present with
    its shape and dtype; ``sample`` random arrays read through the server equal
    the h5py read through the Mode A locator in metadata; a metadata query
    returns the count DuckDB computes over the manifest; every served asset still
    resolves inside ``base_dir`` and reads nothing outside it.

    Args:
        client: A ``tiled.client`` node made with ``include_data_sources=True``.
    """
    from tiled.queries import Key

    out = VerifyReport()
    node = client
    walked = []
    for segment in [s for s in parent.split("/") if s]:
        walked.append(segment)
        try:
            node = node[segment]
        except KeyError as exc:
            raise VerifyError(f"--parent {parent}: the server has no node {'/'.join(walked)}") from exc
    expected_meta = dict(zip(plan.hamiltonians["key"].to_pylist(), plan.hamiltonians["metadata"].to_pylist()))
    structures = {sid: json.loads(doc) for sid, doc in zip(plan.structures["id"].to_pylist(), plan.structures["structure"].to_pylist())}
    children: dict[str, dict[str, str]] = {}
    for row in plan.arrays.select(["parent_key", "key", "structure_id"]).to_pylist():
        children.setdefault(row["parent_key"], {})[row["key"]] = row["structure_id"]

    served = {}
    assets: list[tuple[str, str, str]] = []
    for key, child in node.items():
        if key in expected_meta:
            served[key] = child
    for key, metadata in expected_meta.items():
        if key not in served:
            out.problems.append(f"Hamiltonian {key} is not served")
            continue
        out.hamiltonians += 1
        got = dict(served[key].metadata)
        want = json.loads(metadata)
        missing = [k for k in want if k not in got]
        wrong = [k for k in want if k in got and got[k] != want[k]]
        if missing or wrong:
            out.problems.append(f"{key}: metadata keys missing {missing[:5]}, values differ for {wrong[:5]}")
        arrays = dict(served[key].items())
        for art_key, sid in children.get(key, {}).items():
            if art_key not in arrays:
                out.problems.append(f"{key}/{art_key} is not served")
                continue
            out.artifacts += 1
            for source in arrays[art_key].data_sources() or []:
                for asset in source.assets:
                    assets.append((f"{key}/{art_key}", asset.data_uri, source.parameters.get("dataset", "")))
            structure = arrays[art_key].structure()
            want_structure = structures[sid]
            dtype = structure.data_type.to_numpy_dtype()
            if list(structure.shape) != list(want_structure["shape"]) or dtype.itemsize != want_structure["data_type"]["itemsize"] \
                    or dtype.kind != want_structure["data_type"]["kind"]:  # fmt: skip
                out.problems.append(f"{key}/{art_key}: served shape {structure.shape} dtype {dtype} differ from the file")

    if assets:
        out.assets_checked = len(assets)
        out.problems.extend(confinement_problems(assets, base_dir))

    pairs = [(k, a) for k, arts in children.items() for a in arts if k in served]
    for key, art_key in random.Random(seed).sample(pairs, min(sample, len(pairs))):
        import h5py

        meta = dict(served[key].metadata)
        mode_b = served[key][art_key].read()
        with h5py.File(Path(meta[f"path_{art_key}"]), "r") as handle:
            dataset = handle[meta[f"dataset_{art_key}"]]
            index = meta.get(f"index_{art_key}")
            mode_a = dataset[index] if index is not None else dataset[()]
        if mode_a.dtype != mode_b.dtype or not np.array_equal(mode_a, mode_b, equal_nan=mode_a.dtype.kind == "f"):
            out.problems.append(f"{key}/{art_key}: array served (Mode B) differs from the h5py read (Mode A)")
        out.arrays_compared += 1

    found = _numeric_parameter(report)
    if found:
        name, column, threshold = found
        con = duckdb.connect()
        con.register("hamiltonians", report.hamiltonians[name].select([column]).rename_columns(["value"]))
        row = con.execute(queries.load("verify/count_above"), {"threshold": threshold}).fetchone()
        expected = int(row[0]) if row else 0
        # Only this manifest's Hamiltonians: other datasets may share the parent.
        served_count = sum(1 for key in node.search(Key(column) > threshold) if key in expected_meta)
        out.queries.append({"query": f"Key({column!r}) > {threshold}", "expected": expected, "served": served_count})
        if served_count != expected:
            out.problems.append(f"search Key({column!r}) > {threshold} returned {served_count}, the manifest says {expected}")
    return out
