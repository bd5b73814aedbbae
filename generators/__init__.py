"""Manifest generators (the guide's Step 4) and synthetic data makers, one module per layout.

Each layout module exposes the guide's interface::

    generate(output_dir, n_hamiltonians=None, *, data_dir=...) -> (hamiltonians, artifacts)

returning pyarrow Tables and writing ``<layout>_hamiltonians.parquet`` and
``<layout>_artifacts.parquet``; and ``synthesize(data_dir, n_hamiltonians, seed)``,
which writes HDF5 files that look like the guide's real datasets.
"""

LAYOUTS: dict[str, str] = {
    "vdp": "A: one small file per artifact, nested folders, provider parameter table",
    "edrixs": "B: many Hamiltonians batched along axis 0 of one file",
    "multimodal": "C: one file per Hamiltonian, several datasets and /params scalars",
    "spinwave": "C: the guide's worked example (/params/{J1,J2,K,D}, /dispersion, /dos)",
    "facility": "B at facility scale: millions of small rows batched in a few large files (benchmarks)",
    "nexus": "NeXus: one reduced S(Q,E) file per measurement (NXentry, NXdata signal and axes, NXsample, NXlog)",
}
