"""The guide's worked example (Pattern C): SpinWave simulations.

Files ``sw_<id:05d>.h5`` at the top of the data directory (the guide's example
globs ``DATA_DIR/*.h5``) holding ``/params/{J1,J2,K,D}`` scalars,
``/dispersion`` (64, 64) float32 (512x512 in the guide; smaller here) and
``/dos`` (200,) float64.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pyarrow as pa

from manifest_broker.generators.manifest_files import run_parallel, write_manifests

DATA_DIR = "data"
NAME = "spinwave"
PARAM_NAMES = ["J1", "J2", "K", "D"]
ARTIFACT_MAP = {"dispersion": "/dispersion", "dos": "/dos"}


def _write(data_dir: str, seed: int, ids: list[int]) -> None:
    import h5py

    kx, ky = np.meshgrid(np.linspace(-np.pi, np.pi, 64), np.linspace(-np.pi, np.pi, 64))
    for sw_id in ids:
        rng = np.random.default_rng([seed, sw_id])
        j1, j2, k, d = rng.uniform(0.1, 2.0), rng.uniform(0.0, 0.5), rng.uniform(0, 0.05), rng.uniform(0, 0.2)
        with h5py.File(Path(data_dir) / f"sw_{sw_id:05d}.h5", "w") as f:
            for name, value in zip(PARAM_NAMES, (j1, j2, k, d)):
                f.create_dataset(f"params/{name}", data=round(float(value), 5))
            omega = np.sqrt((j1 * (2 - np.cos(kx) - np.cos(ky)) + k) ** 2 + d)
            f.create_dataset("dispersion", data=omega.astype("float32"))
            dos = np.histogram(omega, bins=200, range=(0, 10))[0] / omega.size
            f.create_dataset("dos", data=dos.astype("float64"))


def synthesize(data_dir: str | Path, n_hamiltonians: int, seed: int = 0) -> None:
    """Write one file per Hamiltonian at the top of ``data_dir``."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    run_parallel(functools.partial(_write, str(data_dir), seed), range(1, n_hamiltonians + 1))


def generate(
    output_dir: str | Path, n_hamiltonians: int | None = None, *, data_dir: str | Path = DATA_DIR
) -> tuple[pa.Table, pa.Table]:
    """The guide's SpinWave generator, returning pyarrow Tables.

    Returns:
        (hamiltonians, artifacts): one row per file, two artifacts each.
    """
    from manifest_broker.boundary import dataset_at, open_hdf5

    files = sorted(Path(data_dir).glob("sw_*.h5"))[:n_hamiltonians]
    ham: dict[str, list] = {"huid": [], "key": [], **{p: [] for p in PARAM_NAMES}}
    art: dict[str, list] = {"huid": [], "type": [], "file": [], "dataset": []}
    for path in files:
        huid = path.stem
        with open_hdf5(path.relative_to(data_dir), data_dir) as f:
            for p in PARAM_NAMES:
                ham[p].append(float(dataset_at(f, f"params/{p}")[()]))
        ham["huid"].append(huid)
        ham["key"].append(f"H_{huid}")
        for art_type, dataset in ARTIFACT_MAP.items():
            art["huid"].append(huid)
            art["type"].append(art_type)
            art["file"].append(path.name)
            art["dataset"].append(dataset)
    hamiltonians, artifacts = pa.table(ham), pa.table(art)
    write_manifests(output_dir, NAME, hamiltonians, artifacts)
    return hamiltonians, artifacts
