"""Pattern B (many Hamiltonians batched along axis 0 of one file), like the guide's EDRIXS.

One file ``edrixs/edrixs_spectra.h5`` holding::

    /spectra      (N, 151, 40) float32   RIXS maps, chunked one Hamiltonian per chunk
    /xas          (N, 40)      float64   XAS spectra
    /eloss        (151,)       float64   shared energy-loss axis (not an artifact)
    /params/<p>   (N,)         float64   F2_dd, F4_dd, tenDq, zeta_d, Gam_c

Artifacts address one row with ``index``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from manifest_broker.generators.manifest_files import write_manifests

DATA_DIR = "data"
NAME = "edrixs"
FILE = "edrixs/edrixs_spectra.h5"
PARAMETERS = ["F2_dd", "F4_dd", "tenDq", "zeta_d", "Gam_c"]
BLOCK = 1000  # Hamiltonians written per block: bounds memory at any N


def synthesize(data_dir: str | Path, n_hamiltonians: int, seed: int = 0) -> None:
    """Write the batched file for ``n_hamiltonians`` Hamiltonians."""
    import h5py

    rng = np.random.default_rng(seed)
    path = Path(data_dir) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    n = n_hamiltonians
    params = {
        "F2_dd": rng.uniform(8, 12, n).round(4),
        "F4_dd": rng.uniform(5, 8, n).round(4),
        "tenDq": rng.uniform(0.5, 2.5, n).round(4),
        "zeta_d": rng.uniform(0.05, 0.1, n).round(5),
        "Gam_c": rng.uniform(0.1, 0.6, n).round(4),
    }
    eloss = np.linspace(-0.5, 7.0, 151)
    angles = np.linspace(0, 1, 40)
    with h5py.File(path, "w") as f:
        spectra = f.create_dataset(
            "spectra",
            (n, 151, 40),
            dtype="float32",
            chunks=(1, 151, 40),
            compression="gzip",
            compression_opts=1,
            shuffle=True,
        )
        xas = f.create_dataset("xas", (n, 40), dtype="float64")
        f.create_dataset("eloss", data=eloss)
        for name, values in params.items():
            f.create_dataset(f"params/{name}", data=values)
        for start in range(0, n, BLOCK):
            stop = min(start + BLOCK, n)
            ten_dq = params["tenDq"][start:stop, None, None]
            width = params["Gam_c"][start:stop, None, None]
            peak = np.exp(-((eloss[None, :, None] - ten_dq * (1 + angles[None, None, :])) ** 2) / width)
            spectra[start:stop] = peak.astype("float32").round(4)
            xas[start:stop] = np.exp(-((angles[None, :] - params["zeta_d"][start:stop, None] * 5) ** 2) / 0.05)
        f.attrs["generator"] = "manifest-broker synth edrixs"


def generate(
    output_dir: str | Path, n_hamiltonians: int | None = None, *, data_dir: str | Path = DATA_DIR
) -> tuple[pa.Table, pa.Table]:
    """Manifests from the parameter arrays inside the batched file.

    Returns:
        (hamiltonians, artifacts) as pyarrow Tables; two artifacts per Hamiltonian.
    """
    from manifest_broker.boundary import dataset_at, open_hdf5

    with open_hdf5(FILE, data_dir) as f:
        total = dataset_at(f, "spectra").shape[0]
        n = total if n_hamiltonians is None else min(n_hamiltonians, total)
        params = {p: dataset_at(f, f"params/{p}")[:n] for p in PARAMETERS}
    huids = [f"edrixs_{i:06d}" for i in range(n)]
    hamiltonians = pa.table({"huid": huids, "key": [f"H_{h}" for h in huids], **params})
    index = np.arange(n, dtype="int64")
    artifacts = pa.table(
        {
            "huid": huids + huids,
            "type": ["rixs"] * n + ["xas"] * n,
            "file": [FILE] * (2 * n),
            "dataset": ["/spectra"] * n + ["/xas"] * n,
            "index": np.concatenate([index, index]),
        }
    )
    write_manifests(output_dir, NAME, hamiltonians, artifacts)
    return hamiltonians, artifacts
