"""`broker verify`: the guide's Step 7, automated, through a running Tiled server."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from manifest_broker import queries
from manifest_broker.boundary import ProviderFileError, dataset_at, open_hdf5
from manifest_broker.catalog.contract import MAX_ARRAY_BYTES, ContractReport
from manifest_broker.catalog.plan import HDF5_MIMETYPE, NodePlan
from manifest_broker.catalog.upload import UPLOAD_MARK, as_tiled_serves
from manifest_broker.errors import BrokerError
from manifest_broker.progress import Progress

if TYPE_CHECKING:
    from manifest_broker.catalog.client import Server
    from manifest_broker.catalog.manifests import ManifestPair


class VerifyError(BrokerError, RuntimeError):
    """The catalog path to verify is not served."""


@dataclass
class VerifyReport:
    """What ``broker verify`` found: its ``--json`` answer (with ``ok`` added)."""

    hamiltonians: int = 0
    """Planned Hamiltonians served with their metadata."""
    artifacts: int = 0
    """Planned arrays served (shape and dtype compared)."""
    arrays_compared: int = 0
    """Sampled arrays read through the server and compared element by element with h5py."""
    assets_checked: int = 0
    """Served file assets re-probed inside the data directory."""
    uploaded: int = 0
    """Arrays whose data are in the server's own storage (``--upload``)."""
    queries: list[dict[str, Any]] = field(default_factory=list)
    """Metadata searches run, with the count the manifest gives and the count served."""
    problems: list[str] = field(default_factory=list)
    """Every mismatch, one line each; empty when everything holds."""

    @property
    def ok(self) -> bool:
        """Nothing is wrong."""
        return not self.problems


def _numeric_parameter(hamiltonians: Mapping[str, pa.Table]) -> tuple[str, str, Any] | None:
    """(dataset, column, median) of the first numeric metadata column found."""
    con = queries.connect()
    for name, ham in hamiltonians.items():
        for field_ in ham.schema:
            if field_.name in ("huid", "key", "_row") or not (str(field_.type).startswith(("double", "float", "int"))):
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
    from tiled.utils import path_from_uri

    from manifest_broker.catalog.probe import probe_locators

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


def verify(
    client: Any,
    hamiltonians: Mapping[str, pa.Table],
    plan: NodePlan,
    *,
    base_dir: Path,
    parent: str = "",
    sample: int = 10,
    seed: int = 0,
    progress: Progress | None = None,
) -> VerifyReport:
    """Compare what the server serves with the manifests.

    Every Hamiltonian present with all its metadata; every artifact present with
    its shape and dtype; ``sample`` random arrays read through the server equal
    the h5py read through the Mode A locator in metadata; a metadata query
    returns the count DuckDB computes over the manifest; every served asset still
    resolves inside ``base_dir`` and reads nothing outside it.

    Args:
        client: A ``tiled.client`` node made with ``include_data_sources=True``.
        hamiltonians: The checked Hamiltonian manifests, by dataset name
            (``ContractReport.hamiltonians``).
        plan: The nodes planned from those manifests.
        progress: Told ``(stage, done, total)`` per Hamiltonian and per array read.

    Raises:
        VerifyError: when ``parent`` is not served.
    """
    out = VerifyReport()
    node = _parent_node(client, parent)
    expected_meta = dict(zip(plan.hamiltonians["key"].to_pylist(), plan.hamiltonians["metadata"].to_pylist()))
    served = {key: child for key, child in node.items() if key in expected_meta}
    assets, present = _check_served_nodes(served, expected_meta, plan, out, progress)
    if assets:
        out.assets_checked = len(assets)
        out.problems.extend(confinement_problems(assets, base_dir))
    _compare_sampled_arrays(served, present, sample, seed, out, progress, base_dir)
    _check_search(node, hamiltonians, set(expected_meta), out)
    return out


def _parent_node(client: Any, parent: str) -> Any:
    node = client
    walked = []
    for segment in [s for s in parent.split("/") if s]:
        walked.append(segment)
        try:
            node = node[segment]
        except KeyError as exc:
            raise VerifyError(f"--parent {parent}: the server has no node {'/'.join(walked)}", where=parent) from exc
    return node


def _check_served_nodes(
    served: dict[str, Any], expected_meta: dict[str, str], plan: NodePlan, out: VerifyReport, progress: Progress | None
) -> tuple[list[tuple[str, str, str]], list[tuple[Any, str, str]]]:
    """Every Hamiltonian with its metadata, every artifact with its structure.

    Returns:
        (node path, data_uri, dataset) of every served asset, and (array client,
        Hamiltonian key, artifact key) of every planned array the server has (a
        registration cut short leaves some out: they are reported, not read).
    """
    from tiled.structures.array import ArrayStructure

    structures = {
        sid: json.loads(doc)
        for sid, doc in zip(plan.structures["id"].to_pylist(), plan.structures["structure"].to_pylist())
    }
    children: dict[str, dict[str, str]] = {}
    for row in plan.arrays.select(["parent_key", "key", "structure_id"]).to_pylist():
        children.setdefault(row["parent_key"], {})[row["key"]] = row["structure_id"]
    assets: list[tuple[str, str, str]] = []
    present: list[tuple[Any, str, str]] = []
    for done, (key, metadata) in enumerate(expected_meta.items(), 1):
        if progress:
            progress("checking Hamiltonians", done, len(expected_meta))
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
            if UPLOAD_MARK in (arrays[art_key].metadata or {}):
                out.problems.append(f"{key}/{art_key}: its upload was cut short: re-run register --upload")
                continue
            out.artifacts += 1
            present.append((arrays[art_key], key, art_key))
            for source in arrays[art_key].data_sources() or []:
                if source.mimetype != HDF5_MIMETYPE:  # uploaded into the server's own storage
                    out.uploaded += 1
                    continue
                for asset in source.assets:
                    assets.append((f"{key}/{art_key}", asset.data_uri, source.parameters.get("dataset", "")))
            structure = arrays[art_key].structure()
            want_structure = structures[sid]
            dtype = structure.data_type.to_numpy_dtype()
            want = ArrayStructure.from_json(want_structure).data_type.to_numpy_dtype()
            if list(structure.shape) != list(want_structure["shape"]) or not same_dtype(dtype, want):
                out.problems.append(
                    f"{key}/{art_key}: served shape {structure.shape} dtype {dtype} differ from the file"
                )
    return assets, present


def _compare_sampled_arrays(
    served: dict[str, Any],
    present: list[tuple[Any, str, str]],
    sample: int,
    seed: int,
    out: VerifyReport,
    progress: Progress | None,
    base_dir: Path,
) -> None:
    """``sample`` random arrays read through the server (Mode B) equal the h5py read
    through the Mode A locator in the Hamiltonian's metadata, read through the
    confined reader inside ``base_dir`` (a locator elsewhere is a problem)."""
    from manifest_broker.catalog.readable import HINT, steady_read

    chosen = random.Random(seed).sample(present, min(sample, len(present)))
    for array, key, art_key in chosen:
        meta = dict(served[key].metadata)
        if f"path_{art_key}" not in meta:
            out.problems.append(f"{key}: no Mode A locator path_{art_key} in its metadata")
            continue
        if steady_read(array) >= 500:  # said at once: tiled.client would retry a 500 for most of a minute
            raise VerifyError(
                f"{key}/{art_key}: the server cannot read it (HTTP 500); " + HINT.format(base_dir=base_dir),
                where=base_dir,
            )
        mode_b = array.read()
        try:
            with open_hdf5(meta[f"path_{art_key}"], base_dir, what="Mode A locator's file") as handle:
                dataset = dataset_at(handle, meta[f"dataset_{art_key}"])
                index = meta.get(f"index_{art_key}")
                mode_a = np.asarray(dataset[index] if index is not None else dataset[()])
        except ProviderFileError as exc:
            out.problems.append(f"{key}/{art_key}: {exc}")
            continue
        mode_a = as_tiled_serves(mode_a, index is not None)
        if mode_a.dtype.names is not None and same_dtype(mode_b.dtype, mode_a.dtype):  # byte order aside
            mode_a = mode_a.astype(mode_b.dtype)
        if mode_a.dtype != mode_b.dtype or not np.array_equal(mode_a, mode_b, equal_nan=mode_a.dtype.kind in "fc"):
            out.problems.append(f"{key}/{art_key}: array served (Mode B) differs from the h5py read (Mode A)")
        out.arrays_compared += 1
        if progress:
            progress("comparing arrays", out.arrays_compared, len(chosen))


def same_dtype(served: np.dtype, want: np.dtype) -> bool:
    """The dtype served is the file's: the same kind and size, field by field for a
    compound dtype (byte order aside: an uploaded array comes back in native order)."""
    if served.names is not None or want.names is not None:
        return (
            served.names == want.names
            and served.itemsize == want.itemsize
            and all(same_dtype(served[n], want[n]) for n in served.names or ())
        )
    if served.subdtype is not None or want.subdtype is not None:
        return (
            served.shape == want.shape
            and served.subdtype is not None
            and want.subdtype is not None
            and same_dtype(served.subdtype[0], want.subdtype[0])
        )
    return served.kind == want.kind and served.itemsize == want.itemsize


def _check_search(node: Any, hamiltonians: Mapping[str, pa.Table], keys: set[str], out: VerifyReport) -> None:
    """A metadata search (first numeric parameter above its median) finds as many of
    this manifest's Hamiltonians as DuckDB counts in the manifest."""
    from tiled.queries import Key

    found = _numeric_parameter(hamiltonians)
    if not found:
        return
    name, column, threshold = found
    con = queries.connect()
    con.register("hamiltonians", hamiltonians[name].select([column]).rename_columns(["value"]))
    row = con.execute(queries.load("verify/count_above"), {"threshold": threshold}).fetchone()
    expected = int(row[0]) if row else 0
    # Only this manifest's Hamiltonians: other datasets may share the parent.
    served_count = sum(1 for key in node.search(Key(column) > threshold) if key in keys)
    out.queries.append({"query": f"Key({column!r}) > {threshold}", "expected": expected, "served": served_count})
    if served_count != expected:
        out.problems.append(
            f"search Key({column!r}) > {threshold} returned {served_count}, the manifest says {expected}"
        )


@dataclass
class VerifyRun:
    """What ``broker verify`` did: the check and plan of the manifests, the report."""

    report: ContractReport
    plan: NodePlan
    result: VerifyReport


def verify_manifests(
    pairs: list[ManifestPair],
    base_dir: Path,
    server: Server,
    *,
    parent: str = "",
    sample: int = 10,
    progress: Progress | None = None,
    max_array_bytes: int = MAX_ARRAY_BYTES,
) -> VerifyRun:
    """Check and plan the manifests as an ingest would, then compare the server with them.

    Raises:
        ContractFailed: when the manifests break the contract.
        VerifyError: when ``parent`` is not served.
    """
    from manifest_broker.catalog.ingest import checked_plan

    report, plan = checked_plan(
        pairs,
        base_dir,
        parent=parent,
        progress=progress,
        max_array_bytes=max_array_bytes,
        nothing="nothing was verified",
    )
    client = server.client(include_data_sources=True)
    result = verify(
        client, report.hamiltonians, plan, base_dir=base_dir, parent=parent, sample=sample, progress=progress
    )
    return VerifyRun(report, plan, result)
