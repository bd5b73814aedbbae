"""NeXus: one reduced S(Q,E) file per measurement, as a direct-geometry spectrometer
(SEQUOIA at the SNS) leaves them after reduction with Mantid.

Each ``sqe_<run>.nxs`` holds one NXentry ``/mantid_workspace_1`` written the way
Mantid's processed NeXus files are: an NXdata ``workspace`` whose ``values`` (|Q| x
energy transfer, float64, gzip-chunked) carry the older convention (``signal=1``,
``axes="axis2,axis1"``) with ``errors`` beside them, ``axis2`` the |Q| bin centres
(``MomentumTransfer``) and ``axis1`` the energy bin edges (``DeltaE``, one longer);
an NXsample (name, chemical formula, temperature in K, field in T); an NXinstrument
with an NXsource and the Fermi chopper's frequency; and sample logs (NXlog) of the
temperature and incident energy.

:func:`generate` reads any NeXus files this way (current or older convention): one
Hamiltonian per NXentry, the NXdata signal, its errors and axes as artifacts, the
scalar fields as parameters with ``<column>_units``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pyarrow as pa

from manifest_broker.generators.manifest_files import run_parallel, write_manifests

DATA_DIR = "data"
NAME = "nexus"
SUFFIXES = (".nxs", ".nx5", ".nxs.h5", ".h5", ".hdf5")
N_Q, N_E = 60, 80


def _write(data_dir: str, seed: int, runs: list[int]) -> None:
    import h5py

    q = np.linspace(0.1, 6.0, N_Q)
    for index in runs:
        rng = np.random.default_rng([seed, index])
        run = 100_000 + index
        ei = float(rng.choice([30.0, 60.0, 100.0]))
        edges = np.linspace(-0.2 * ei, 0.9 * ei, N_E + 1)
        centres = 0.5 * (edges[1:] + edges[:-1])
        temperature = float(rng.uniform(5, 300))
        gap = rng.uniform(1, 8)
        values = np.exp(-((centres[None, :] - gap - 0.3 * q[:, None] ** 2) ** 2) / 2.0) * np.exp(-q[:, None] / 4)
        values = values + rng.normal(0, 0.01, values.shape)
        errors = np.sqrt(np.abs(values)) * 0.05
        with h5py.File(Path(data_dir) / f"sqe_{run}.nxs", "w") as f:
            f.attrs["NX_class"] = "NXroot"
            f.attrs["file_name"] = f"sqe_{run}.nxs"
            entry = f.create_group("mantid_workspace_1")
            entry.attrs["NX_class"] = "NXentry"
            entry["title"] = f"S(Q,E) run {run}"
            entry["workspace_name"] = f"SEQ_{run}_sqe"
            entry["run_number"] = np.int64(run)
            data = entry.create_group("workspace")
            data.attrs["NX_class"] = "NXdata"
            signal = data.create_dataset("values", data=values, chunks=(N_Q, 16), compression="gzip")
            signal.attrs["signal"] = np.int32(1)
            signal.attrs["axes"] = "axis2,axis1"
            signal.attrs["units"] = "Counts"
            data.create_dataset("errors", data=errors, chunks=(N_Q, 16), compression="gzip")
            data.create_dataset("axis1", data=edges).attrs["units"] = "DeltaE"
            data.create_dataset("axis2", data=q).attrs["units"] = "MomentumTransfer"
            sample = entry.create_group("sample")
            sample.attrs["NX_class"] = "NXsample"
            sample["name"] = "CoNb2O6"
            sample["chemical_formula"] = "Co Nb2 O6"
            sample.create_dataset("temperature", data=round(temperature, 3)).attrs["units"] = "K"
            sample.create_dataset("magnetic_field", data=round(float(rng.uniform(0, 5)), 3)).attrs["units"] = "T"
            instrument = entry.create_group("instrument")
            instrument.attrs["NX_class"] = "NXinstrument"
            instrument["name"] = "SEQUOIA"
            source = instrument.create_group("source")
            source.attrs["NX_class"] = "NXsource"
            source["probe"] = "neutron"
            source["type"] = "Spallation Neutron Source"
            chopper = instrument.create_group("fermi_chopper")
            chopper.attrs["NX_class"] = "NXfermi_chopper"
            chopper.create_dataset("rotation_speed", data=float(rng.choice([120.0, 240.0, 420.0]))).attrs["units"] = (
                "Hz"
            )
            logs = entry.create_group("logs")
            logs.attrs["NX_class"] = "NXcollection"
            for log, level, units in (("SampleTemp", temperature, "K"), ("Ei", ei, "meV")):
                group = logs.create_group(log)
                group.attrs["NX_class"] = "NXlog"
                group.create_dataset("value", data=level + rng.normal(0, 0.01 * level, 50)).attrs["units"] = units
                group.create_dataset("time", data=np.arange(50, dtype="float64")).attrs["units"] = "second"


def synthesize(data_dir: str | Path, n_hamiltonians: int, seed: int = 0) -> None:
    """Write ``n_hamiltonians`` reduced S(Q,E) NeXus files at the top of ``data_dir``."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    run_parallel(functools.partial(_write, str(data_dir), seed), range(1, n_hamiltonians + 1))


def nexus_files(data_dir: str | Path) -> list[Path]:
    """The HDF5/NeXus files below ``data_dir``, sorted."""
    return sorted(p for p in Path(data_dir).rglob("*") if p.is_file() and p.name.lower().endswith(SUFFIXES))


def generate(
    output_dir: str | Path, n_hamiltonians: int | None = None, *, data_dir: str | Path = DATA_DIR
) -> tuple[pa.Table, pa.Table]:
    """One Hamiltonian per NXentry of every NeXus file under ``data_dir``.

    Returns:
        (hamiltonians, artifacts): parameters with their ``_units`` columns; the
        signal, its errors and its axes as artifacts. Files without an NXentry are
        skipped.
    """
    from manifest_broker.boundary import dataset_at, open_hdf5
    from manifest_broker.provider.nexus import entries, read_entry, value

    root = Path(data_dir)
    ham_rows: list[dict] = []
    art_rows: list[dict] = []
    for path in nexus_files(root):
        if n_hamiltonians is not None and len(ham_rows) >= n_hamiltonians:
            break
        rel = str(path.relative_to(root))
        with open_hdf5(path.relative_to(root), root) as f:
            paths = entries(f)
            for entry_path in paths:
                entry = read_entry(f, entry_path)
                if not entry.signal:
                    continue
                huid = path.name.split(".")[0] if len(paths) == 1 else f"{path.name.split('.')[0]}_{entry_path[1:]}"
                row: dict[str, object] = {"huid": huid, "key": f"H_{huid}"}
                for parameter in entry.parameters:
                    row[parameter.column] = value(dataset_at(f, f"{entry_path}/{parameter.path}"), parameter.reduce)
                    if parameter.units is not None:
                        row[f"{parameter.column}_units"] = parameter.units
                ham_rows.append(row)
                for art_type, dataset in entry.artifacts.items():
                    art_rows.append({"huid": huid, "type": art_type, "file": rel, "dataset": f"{entry_path}/{dataset}"})
    ham_rows = ham_rows[:n_hamiltonians] if n_hamiltonians else ham_rows
    # Files may differ in their fields: every column any entry has, null where one lacks it.
    columns = list(dict.fromkeys(name for row in ham_rows for name in row))
    hamiltonians = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in ham_rows])
    kept = set(hamiltonians.column("huid").to_pylist()) if hamiltonians.num_rows else set()
    artifacts = pa.Table.from_pylist(
        [r for r in art_rows if r["huid"] in kept],
        schema=pa.schema(
            [("huid", pa.string()), ("type", pa.string()), ("file", pa.string()), ("dataset", pa.string())]
        ),
    )
    write_manifests(output_dir, NAME, hamiltonians, artifacts)
    return hamiltonians, artifacts
