"""Pattern C (one file per Hamiltonian, several datasets), like the guide's NiPS3 Multimodal.

Files ``multimodal/mm_<id:05d>.h5`` holding ``/powder`` (64, 64) float32,
``/hisym`` (100, 64) float32, ``/Ma`` and ``/Mb`` (200,) float64, and the
parameters as scalar datasets under ``/params``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pyarrow as pa

from manifest_broker.generators.manifest_files import run_parallel, write_manifests

DATA_DIR = "data"
NAME = "multimodal"
PARAMETERS = ["J1a", "J1b", "J2a", "J2b", "J3a", "J3b", "Ax", "Az"]
ARTIFACTS = {"powder": "/powder", "hisym": "/hisym", "Ma": "/Ma", "Mb": "/Mb"}


def _write(data_dir: str, seed: int, ids: list[int]) -> None:
    import h5py

    folder = Path(data_dir) / NAME
    q, e = np.meshgrid(np.linspace(0, 4, 64), np.linspace(0, 1, 64))
    field = np.linspace(0, 1, 200)
    for mm_id in ids:
        rng = np.random.default_rng([seed, mm_id])
        p = dict(zip(PARAMETERS, rng.uniform(-1, 1, len(PARAMETERS)).round(4)))
        with h5py.File(folder / f"mm_{mm_id:05d}.h5", "w") as f:
            for name, value in p.items():
                f.create_dataset(f"params/{name}", data=float(value))
            band = abs(p["J1a"]) * np.abs(np.sin(q)) + abs(p["J2a"])
            f.create_dataset("powder", data=np.exp(-((e * 3 - band) ** 2) * 4).astype("float32"))
            f.create_dataset("hisym", data=rng.random((100, 64)).astype("float32"))
            f.create_dataset("Ma", data=np.tanh(field * (1 + abs(p["Ax"])) * 3))
            f.create_dataset("Mb", data=np.tanh(field * (1 + abs(p["Az"])) * 2))


def synthesize(data_dir: str | Path, n_hamiltonians: int, seed: int = 0) -> None:
    """Write one file per Hamiltonian under ``data_dir/multimodal``."""
    (Path(data_dir) / NAME).mkdir(parents=True, exist_ok=True)
    run_parallel(functools.partial(_write, str(data_dir), seed), range(1, n_hamiltonians + 1))


def generate(
    output_dir: str | Path, n_hamiltonians: int | None = None, *, data_dir: str | Path = DATA_DIR
) -> tuple[pa.Table, pa.Table]:
    """Manifests from the files' ``/params`` scalars, four artifacts per Hamiltonian.

    Returns:
        (hamiltonians, artifacts) as pyarrow Tables.
    """
    from manifest_broker.boundary import dataset_at, open_hdf5

    files = sorted((Path(data_dir) / NAME).glob("mm_*.h5"))[:n_hamiltonians]
    rows: dict[str, list] = {"huid": [], "key": [], **{p: [] for p in PARAMETERS}}
    for path in files:
        huid = path.stem
        with open_hdf5(path.relative_to(data_dir), data_dir) as f:
            for p in PARAMETERS:
                rows[p].append(float(dataset_at(f, f"params/{p}")[()]))
        rows["huid"].append(huid)
        rows["key"].append(f"H_{huid}")
    hamiltonians = pa.table(rows)
    rel = [str(p.relative_to(data_dir)) for p in files]
    artifacts = pa.table(
        {
            "huid": [h for h in rows["huid"] for _ in ARTIFACTS],
            "type": [t for _ in files for t in ARTIFACTS],
            "file": [r for r in rel for _ in ARTIFACTS],
            "dataset": [d for _ in files for d in ARTIFACTS.values()],
        }
    )
    write_manifests(output_dir, NAME, hamiltonians, artifacts)
    return hamiltonians, artifacts
