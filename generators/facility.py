"""Pattern B at facility scale: millions of Hamiltonians batched along axis 0 of a
few large files, each row small, so that a 10^7-node catalog fits this machine's
disk and the benchmark measures the broker, not the synthesis.

Files ``facility/part_<k>.h5``, each with up to :data:`ROWS_PER_FILE` rows::

    /spectra      (rows, 8)  float32   a small RIXS-like row
    /xas          (rows, 4)  float64   a small XAS-like row
    /params/<p>   (rows,)    float64   F2_dd, F4_dd, tenDq, zeta_d, Gam_c (EDRIXS names)

Two artifacts per Hamiltonian (three nodes each), addressed by ``index``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifest_broker.generators.manifest_files import write_manifests

DATA_DIR = "data"
NAME = "facility"
PARAMETERS = ["F2_dd", "F4_dd", "tenDq", "zeta_d", "Gam_c"]
ROWS_PER_FILE = 1_000_000
BLOCK = 250_000  # rows generated and written at once: bounds memory at any N
_RANGES = {"F2_dd": (8, 12), "F4_dd": (5, 8), "tenDq": (0.5, 2.5), "zeta_d": (0.05, 0.1), "Gam_c": (0.1, 0.6)}


def _files(n: int) -> list[tuple[str, int, int]]:
    """(file, first row, rows) of each part."""
    return [
        (f"facility/part_{k:03d}.h5", start, min(ROWS_PER_FILE, n - start))
        for k, start in enumerate(range(0, n, ROWS_PER_FILE))
    ]


def synthesize(data_dir: str | Path, n_hamiltonians: int, seed: int = 0) -> None:
    """Write the batched files for ``n_hamiltonians`` Hamiltonians, block by block."""
    import h5py

    rng = np.random.default_rng(seed)
    (Path(data_dir) / "facility").mkdir(parents=True, exist_ok=True)
    for file, _first, rows in _files(n_hamiltonians):
        with h5py.File(Path(data_dir) / file, "w") as f:
            spectra = f.create_dataset("spectra", (rows, 8), dtype="float32", chunks=(min(rows, 16384), 8))
            xas = f.create_dataset("xas", (rows, 4), dtype="float64", chunks=(min(rows, 16384), 4))
            params = {p: f.create_dataset(f"params/{p}", (rows,), dtype="float64") for p in PARAMETERS}
            for start in range(0, rows, BLOCK):
                stop = min(start + BLOCK, rows)
                for p, (low, high) in _RANGES.items():
                    params[p][start:stop] = rng.uniform(low, high, stop - start).round(5)
                spectra[start:stop] = rng.random((stop - start, 8), dtype="float32")
                xas[start:stop] = rng.random((stop - start, 4))
            f.attrs["generator"] = "manifest-broker synth facility"


def generate(
    output_dir: str | Path, n_hamiltonians: int | None = None, *, data_dir: str | Path = DATA_DIR
) -> tuple[pa.Table, pa.Table]:
    """Manifests from the parameter arrays inside the batched files.

    Returns:
        (hamiltonians, artifacts) as pyarrow Tables; two artifacts per Hamiltonian.
    """
    from manifest_broker.boundary import dataset_at, open_hdf5

    parts = sorted((Path(data_dir) / "facility").glob("part_*.h5"))
    params: dict[str, list[np.ndarray]] = {p: [] for p in PARAMETERS}
    files, index = [], []
    total = 0
    for path in parts:
        with open_hdf5(path.relative_to(data_dir), data_dir) as f:
            rows = dataset_at(f, "spectra").shape[0]
            if n_hamiltonians is not None:
                rows = min(rows, n_hamiltonians - total)
            if rows <= 0:
                break
            for p in PARAMETERS:
                params[p].append(dataset_at(f, f"params/{p}")[:rows])
        files.append(pa.repeat(pa.scalar(f"facility/{path.name}"), rows))
        index.append(np.arange(rows, dtype="int64"))
        total += rows
    numbers = pa.array(np.arange(total)).cast(pa.string())
    huids = pc.binary_join_element_wise("facility_", pc.utf8_lpad(numbers, 8, "0"), "")
    hamiltonians = pa.table(
        {
            "huid": huids,
            "key": pc.binary_join_element_wise("H_", huids, ""),
            **{p: np.concatenate(v) if v else np.array([]) for p, v in params.items()},
        }
    )
    file_column = pa.concat_arrays([a for a in files]) if files else pa.array([], pa.string())
    index_column = np.concatenate(index) if index else np.array([], "int64")
    artifacts = pa.table(
        {
            "huid": pa.concat_arrays([huids, huids]),
            "type": pa.concat_arrays([pa.repeat(pa.scalar("rixs"), total), pa.repeat(pa.scalar("xas"), total)]),
            "file": pa.concat_arrays([file_column, file_column]),
            "dataset": pa.concat_arrays([pa.repeat(pa.scalar("/spectra"), total), pa.repeat(pa.scalar("/xas"), total)]),
            "index": np.concatenate([index_column, index_column]),
        }
    )
    write_manifests(output_dir, NAME, hamiltonians, artifacts)
    return hamiltonians, artifacts
