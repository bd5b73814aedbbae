"""Pattern A (one small file per artifact), like the guide's VDP dataset.

Layout under the data directory::

    vdp/parameters.parquet                  provider table: vdp_id + 6 parameters
    vdp/<id // 1000:03d>/<id:06d>/<type>.h5  one array per file

Eleven artifact types per Hamiltonian: seven magnetization curves (axis x field,
``/curve`` (200,) float64), a ground state (``/gs`` (3, 64) float32) and three
INS spectra (``/ins`` (64, 96) float32, gzip-chunked: smooth maps compress).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from manifest_broker.generators.manifest_files import run_parallel, write_manifests

DATA_DIR = "data"
NAME = "vdp"
MH_CURVES = [("powder", 30.0), ("x", 7.0), ("y", 7.0), ("z", 7.0), ("x", 30.0), ("y", 30.0), ("z", 30.0)]
INS_ENERGIES = [12.0, 25.0, 70.0]
PARAMETERS = ["Ja_meV", "Jb_meV", "Jc_meV", "Dc_meV", "spin_s", "g_factor"]


def artifact_types() -> list[tuple[str, str, dict[str, object]]]:
    """(type, dataset, artifact metadata) for the eleven artifacts of one Hamiltonian."""
    types: list[tuple[str, str, dict[str, object]]] = [
        (f"mh_{axis}_{field:g}T", "/curve", {"axis": axis, "field_T": field}) for axis, field in MH_CURVES
    ]
    types.append(("gs", "/gs", {}))
    types += [(f"ins_{e:g}meV", "/ins", {"Ei_meV": e}) for e in INS_ENERGIES]
    return types


def _folder(vdp_id: int) -> str:
    return f"{NAME}/{vdp_id // 1000:03d}/{vdp_id:06d}"


def _write(data_dir: str, seed: int, ids: list[int]) -> None:
    import h5py

    params = pq.read_table(Path(data_dir) / NAME / "parameters.parquet").to_pydict()
    field_axis = np.linspace(0.0, 1.0, 200)
    q, w = np.meshgrid(np.linspace(0, 3, 96), np.linspace(0, 1, 64))
    for vdp_id in ids:
        rng = np.random.default_rng([seed, vdp_id])
        ja, jb = params["Ja_meV"][vdp_id - 1], params["Jb_meV"][vdp_id - 1]
        folder = Path(data_dir) / _folder(vdp_id)
        folder.mkdir(parents=True, exist_ok=True)
        for type_, dataset, meta in artifact_types():
            with h5py.File(folder / f"{type_}.h5", "w") as f:
                if dataset == "/curve":
                    scale = float(meta["field_T"]) / (1.0 + abs(ja))  # type: ignore[arg-type]
                    curve = np.tanh(field_axis * scale * 4) + rng.normal(0, 1e-3, 200)
                    f.create_dataset("curve", data=curve.astype("float64"))
                elif dataset == "/gs":
                    f.create_dataset("gs", data=rng.normal(0, 1, (3, 64)).astype("float32"))
                else:
                    energy = float(meta["Ei_meV"])  # type: ignore[arg-type]
                    band = ja * np.abs(np.sin(np.pi * q)) + jb
                    ins = np.exp(-((w * energy - band) ** 2) / 0.5).astype("float32")
                    f.create_dataset(
                        "ins", data=ins.round(3), chunks=(64, 96), compression="gzip", compression_opts=1, shuffle=True
                    )
                f.attrs["generator"] = "manifest-broker synth vdp"


def synthesize(data_dir: str | Path, n_hamiltonians: int, seed: int = 0) -> None:
    """Write the provider table and 11 files per Hamiltonian under ``data_dir/vdp``."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n_hamiltonians + 1)
    table = pa.table(
        {
            "vdp_id": pa.array(ids, pa.int64()),
            "Ja_meV": rng.uniform(-2, 2, n_hamiltonians).round(4),
            "Jb_meV": rng.uniform(-2, 2, n_hamiltonians).round(4),
            "Jc_meV": rng.uniform(-1, 1, n_hamiltonians).round(4),
            "Dc_meV": rng.uniform(-0.5, 0.5, n_hamiltonians).round(4),
            "spin_s": rng.choice([0.5, 1.0, 1.5], n_hamiltonians),
            "g_factor": rng.uniform(1.9, 2.2, n_hamiltonians).round(3),
        }
    )
    (Path(data_dir) / NAME).mkdir(parents=True, exist_ok=True)
    pq.write_table(table, Path(data_dir) / NAME / "parameters.parquet")
    run_parallel(functools.partial(_write, str(data_dir), seed), ids.tolist())


def generate(
    output_dir: str | Path, n_hamiltonians: int | None = None, *, data_dir: str | Path = DATA_DIR
) -> tuple[pa.Table, pa.Table]:
    """Manifests from the provider table (the guide's "existing manifest" case).

    Returns:
        (hamiltonians, artifacts) as pyarrow Tables.
    """
    params = pq.read_table(Path(data_dir) / NAME / "parameters.parquet").sort_by("vdp_id")
    if n_hamiltonians is not None:
        params = params.slice(0, n_hamiltonians)
    ids = params["vdp_id"].to_pylist()
    huids = [f"vdp_{i:06d}" for i in ids]
    hamiltonians = pa.table({"huid": huids, "key": [f"H_{h}" for h in huids], **{p: params[p] for p in PARAMETERS}})
    types = artifact_types()
    n_types = len(types)
    rows = {
        "huid": [h for h in huids for _ in range(n_types)],
        "type": [t for _ in ids for t, _, _ in types],
        "file": [f"{_folder(i)}/{t}.h5" for i in ids for t, _, _ in types],
        "dataset": [d for _ in ids for _, d, _ in types],
        "index": pa.nulls(len(ids) * n_types, pa.int64()),
        "axis": [m.get("axis") for _ in ids for _, _, m in types],
        "field_T": [m.get("field_T") for _ in ids for _, _, m in types],
        "Ei_meV": [m.get("Ei_meV") for _ in ids for _, _, m in types],
    }
    artifacts = pa.table(rows)
    write_manifests(output_dir, NAME, hamiltonians, artifacts)
    return hamiltonians, artifacts
