"""The guide's Step 1, automated: what is in a data directory before any manifest exists."""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

from manifest_broker.boundary import ProviderFileError, dataset_problem, open_hdf5
from manifest_broker.provider.nexus import Entry, entries, read_entry

HDF5_SUFFIXES = {".h5", ".hdf5", ".hdf", ".he5", ".nxs", ".nx5"}


@dataclass
class DatasetInfo:
    path: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...] | None
    attrs: dict[str, str]
    flags: list[str] = field(default_factory=list)


@dataclass
class FileInfo:
    path: str
    size: int
    groups: list[str]
    datasets: list[DatasetInfo]
    attrs: dict[str, str]
    error: str | None = None
    nexus: list[Entry] = field(default_factory=list)  # its NXentry groups, when it is a NeXus file
    external_links: list[str] = field(default_factory=list)  # never followed: their targets are other files

    @property
    def signature(self) -> tuple[Any, ...]:
        return tuple(sorted((d.path, d.dtype, len(d.shape)) for d in self.datasets))


@dataclass
class ExploreReport:
    root: str
    n_files: int
    total_bytes: int
    by_suffix: dict[str, int]
    examples: list[str]
    sample: list[FileInfo]
    structures: list[tuple[int, list[str]]]  # (files sharing it, dataset paths)
    flags: list[str]
    pattern: str
    reason: str
    generator: str


def _describe(path: Path, root: Path) -> FileInfo:
    """One sampled file, opened through the confined reader; a dataset whose bytes
    live in another file is flagged and never read."""
    import h5py
    import numpy as np

    rel = str(path.relative_to(root))
    groups: list[str] = []
    datasets: list[DatasetInfo] = []
    try:
        with open_hdf5(path, root, what="file") as handle:

            def visit(name: str, obj: object) -> None:
                if isinstance(obj, h5py.Group):
                    groups.append("/" + name)
                    return
                if not isinstance(obj, h5py.Dataset):
                    return
                info = DatasetInfo(
                    "/" + name,
                    tuple(obj.shape or ()),
                    obj.dtype.str,
                    obj.chunks,
                    {k: repr(v)[:60] for k, v in obj.attrs.items()},
                )
                vlen = h5py.check_vlen_dtype(obj.dtype)
                if problem := dataset_problem(obj):
                    info.flags.append(f"{problem[0].replace('_', ' ')}: its bytes live in another file, not read")
                elif obj.shape is None:
                    info.flags.append("null dataspace (no shape, no data)")
                elif h5py.check_string_dtype(obj.dtype) is not None:
                    if obj.ndim:  # a scalar string is a field, an array of them is not a numeric artifact
                        info.flags.append("strings")
                elif vlen is not None or obj.dtype.kind == "O":
                    info.flags.append("variable-length (ragged)")
                elif obj.size == 0:
                    info.flags.append("empty")
                elif obj.dtype.kind == "f" and obj.size <= 5_000_000:
                    values = obj[()]
                    if np.isnan(values).all():
                        info.flags.append("all NaN")
                    elif np.isnan(values).any():
                        info.flags.append("contains NaN")
                datasets.append(info)

            handle.visititems(visit)  # hard links only: never into another file
            links: list[str] = []

            def outside(name: str, link: object) -> None:
                if isinstance(link, h5py.ExternalLink):
                    links.append(f"/{name} -> {link.path} in {link.filename}")

            handle.visititems_links(outside)
            attrs = {k: repr(v)[:60] for k, v in handle.attrs.items()}
            nexus = [read_entry(handle, p) for p in entries(handle)]
            size = os.fstat(handle.id.get_vfd_handle()).st_size
    except ProviderFileError as exc:
        return FileInfo(rel, 0, [], [], {}, error=f"cannot open ({exc})")
    except OSError as exc:
        return FileInfo(rel, 0, [], [], {}, error=f"cannot read ({exc})")
    return FileInfo(rel, size, groups, datasets, attrs, nexus=nexus, external_links=links)


def _batched(info: FileInfo) -> list[Any]:
    """Multi-dimensional datasets whose first axis other datasets share: Hamiltonians
    batched along axis 0 (the spectra, and the per-Hamiltonian arrays of length N)."""
    lengths = Counter(d.shape[0] for d in info.datasets if len(d.shape) >= 1 and d.shape[0] > 1)
    return [d for d in info.datasets if len(d.shape) >= 2 and lengths[d.shape[0]] >= 2]


def _pattern(files: list[Path], sample: list[FileInfo]) -> tuple[str, str]:
    ok = [f for f in sample if not f.error]
    if not ok:
        return "unknown", "no readable HDF5 file in the sample"
    nexus = [f for f in ok if any(e.signal for e in f.nexus)]
    if nexus:
        first = next(e for e in nexus[0].nexus if e.signal)
        axes = f" over {', '.join(a.rsplit('/', 1)[-1] for a in first.axes)}" if first.axes else ""
        return (
            "NeXus",
            f"{len(nexus)} of {len(ok)} sampled file(s) are NeXus: NXentry {first.path} plots "
            f"{first.path}/{first.signal}{axes} (its NXdata signal); one Hamiltonian per NXentry",
        )
    n_datasets = Counter(len([d for d in f.datasets if not d.path.startswith("/params")]) for f in ok)
    # Pattern B: a few files, each with a multi-dimensional dataset whose first
    # axis is shared by other datasets (the spectra and their per-Hamiltonian
    # arrays, all of length N).
    for f in ok:
        batched = _batched(f)
        if len(files) <= 3 and batched:
            n = batched[0].shape[0]
            return (
                "B",
                f"{f.path}: {batched[0].path} and other datasets share a first axis of {n}: Hamiltonians batched along axis 0",
            )
    if set(n_datasets) == {1}:
        return "A", "every sampled file holds one dataset: one file per artifact"
    if min(n_datasets) > 1:
        return "C", "every sampled file holds several datasets: one file per Hamiltonian"
    return "mixed", "files differ in how many datasets they hold; each manifest row can use its own locator"


# The generators explore prints. Every string that comes from the provider's files
# (folder, file, dataset and group names) reaches the script as a constant written
# with repr() at its top, never inside a template's code, so no name can become
# code. The scripts read the files through the broker's confined reader, as every
# read of a provider's file does (inside DATA_DIR, regular files, links inside the
# file only, no bytes from other files).
_TEMPLATES = {
    "A": """    for path in sorted(Path(DATA_DIR).rglob("*.h5"))[:n_hamiltonians]:
        huid = path.parent.name          # adapt: the Hamiltonian id in the path
        art_type = path.stem             # adapt: the artifact name in the file name
        art_rows.append({"huid": huid, "type": art_type,
                         "file": str(path.relative_to(DATA_DIR)), "dataset": DATASET})
    for huid in sorted({r["huid"] for r in art_rows}):
        ham_rows.append({"huid": huid, "key": f"H_{huid}"})  # add parameters from your table""",
    "B": """    with open_hdf5(FILE, DATA_DIR) as f:
        n = dataset_at(f, DATASET).shape[0] if n_hamiltonians is None else n_hamiltonians
        for i in range(n):
            huid = f"{STEM}_{i:06d}"
            ham_rows.append({"huid": huid, "key": f"H_{huid}"})  # add dataset_at(f, "/params/...")[i]
            art_rows.append({"huid": huid, "type": TYPE, "file": FILE, "dataset": DATASET, "index": i})""",
    "C": """    for path in sorted(Path(DATA_DIR).glob("*.h5"))[:n_hamiltonians]:
        huid = path.stem
        with open_hdf5(path.relative_to(DATA_DIR), DATA_DIR) as f:
            params = {}  # e.g. {p: float(dataset_at(f, f"params/{p}")[()]) for p in PARAM_NAMES}
        ham_rows.append({"huid": huid, "key": f"H_{huid}", **params})
        for art_type, dataset in ARTIFACTS.items():
            art_rows.append({"huid": huid, "type": art_type,
                             "file": str(path.relative_to(DATA_DIR)), "dataset": dataset})""",
}


_NEXUS_TEMPLATE = Template('''"""Generate manifests for the NeXus files in DATA_DIR: adapt the marked lines."""
from pathlib import Path

import numpy as np
import pandas as pd

from manifest_broker.boundary import ProviderFileError, dataset_at, members, open_hdf5

NAME = $name
DATA_DIR = $root
SUFFIX = $suffix
# Artifact type -> dataset below each NXentry: the NXdata signal, its errors, its axes.
ARTIFACTS = $artifacts
# Parameter column -> (field below the NXentry, reduction): the scalar fields of
# NXsample and of the chosen groups; an NXlog's value is a time series, kept as its
# mean. Delete what the provider does not want searchable.
PARAMETERS = $parameters
# Its pandas dtype, so a column some files lack stays integer (null where missing).
TYPES = $types
KEPT_ATTRIBUTES = ["units"]  # each becomes a column <column>_<attribute>


def _text(value):
    return value.decode() if isinstance(value, (bytes, np.bytes_)) else str(value)


def _cell(dataset, reduce):
    data = dataset[()]
    if reduce == "mean":
        return float(np.mean(data))
    if isinstance(data, np.ndarray):
        data = data.reshape(-1)[0]
    if isinstance(data, (bytes, np.bytes_)):
        return data.decode()
    return data.item() if hasattr(data, "item") else data


def generate(output_dir, n_hamiltonians=None):
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    ham_rows, art_rows = [], []
    for path in sorted(Path(DATA_DIR).rglob("*" + SUFFIX)):
        if n_hamiltonians is not None and len(ham_rows) >= n_hamiltonians:
            break
        with open_hdf5(path.relative_to(DATA_DIR), DATA_DIR) as f:
            entries = [k for k, g in members(f) if _text(g.attrs.get("NX_class", "")) == "NXentry"]
            for entry in entries:
                huid = path.stem if len(entries) == 1 else f"{path.stem}_{entry}"  # adapt: the measurement's id
                row = {"huid": huid, "key": f"H_{huid}"}
                for column, (field, reduce) in PARAMETERS.items():
                    try:
                        dataset = dataset_at(f, f"{entry}/{field}")
                    except ProviderFileError as exc:
                        if exc.rule == "missing":  # this file lacks the field: null in its row
                            continue
                        raise
                    row[column] = _cell(dataset, reduce)
                    for attribute in KEPT_ATTRIBUTES:
                        if attribute in dataset.attrs:
                            row[f"{column}_{attribute}"] = _text(dataset.attrs[attribute])
                ham_rows.append(row)
                for art_type, dataset in ARTIFACTS.items():
                    try:  # only the arrays this file has
                        dataset_at(f, f"{entry}/{dataset}")
                    except ProviderFileError as exc:
                        if exc.rule == "missing":
                            continue
                        raise
                    art_rows.append({"huid": huid, "type": art_type, "file": str(path.relative_to(DATA_DIR)),
                                     "dataset": f"/{entry}/{dataset}"})
    ham_df, art_df = pd.DataFrame(ham_rows[:n_hamiltonians]), pd.DataFrame(art_rows)
    ham_df = ham_df.astype({c: t for c, t in TYPES.items() if c in ham_df.columns})
    art_df = art_df[art_df["huid"].isin(ham_df["huid"])] if len(art_df) else art_df
    ham_df.to_parquet(output_dir / f"{NAME}_hamiltonians.parquet", index=False)
    art_df.to_parquet(output_dir / f"{NAME}_artifacts.parquet", index=False)
    return ham_df, art_df
''')

# pandas dtypes that keep a column's type when some rows lack a value.
_PANDAS_TYPES = {"integer": "Int64", "float": "float64", "bool": "boolean", "string": "string"}


def _dict_literal(mapping: dict[str, Any]) -> str:
    if not mapping:
        return "{}"
    return "{\n" + "".join(f"    {k!r}: {v!r},\n" for k, v in mapping.items()) + "}"


def _nexus_generator(root: Path, sample: list[FileInfo]) -> str:
    """The NeXus generator: the artifacts and parameters of the sampled entries
    (their union, so a field only some files have is still read where present)."""
    artifacts: dict[str, str] = {}
    parameters: dict[str, tuple[str, str | None]] = {}
    types: dict[str, str] = {}
    suffixes: Counter[str] = Counter()
    for info in sample:
        for entry in info.nexus:
            if not entry.signal:
                continue
            suffixes[Path(info.path).suffix] += 1
            for art_type, dataset in entry.artifacts.items():
                artifacts.setdefault(art_type, dataset)
            for parameter in entry.parameters:
                parameters.setdefault(parameter.column, (parameter.path, parameter.reduce))
                types.setdefault(parameter.column, _PANDAS_TYPES[parameter.kind])
                if parameter.units is not None:
                    types.setdefault(f"{parameter.column}_units", "string")
    return _NEXUS_TEMPLATE.substitute(
        name=repr(root.name),
        root=repr(str(root)),
        suffix=repr(suffixes.most_common(1)[0][0] if suffixes else ".nxs"),
        artifacts=_dict_literal(artifacts),
        parameters=_dict_literal(parameters),
        types=_dict_literal(types),
    )


def _generator(pattern: str, root: Path, sample: list[FileInfo]) -> str:
    if pattern == "NeXus":
        return _nexus_generator(root, sample)
    ok = [f for f in sample if not f.error and f.datasets]
    if pattern == "B":  # the generator reads the batched dataset, not whatever comes first
        ok = [f for f in ok if _batched(f)] or ok
    first = ok[0] if ok else None
    batched = _batched(first) if first and pattern == "B" else []
    dataset = batched[0].path if batched else first.datasets[0].path if first else "/data"
    constants = {
        "NAME": root.name,
        "DATA_DIR": str(root),
        "FILE": first.path if first else "data.h5",
        "DATASET": dataset,
        "STEM": Path(first.path).stem if first else "h",
        "TYPE": dataset.strip("/").replace("/", "_"),
        "ARTIFACTS": {
            d.path.strip("/").replace("/", "_"): d.path
            for d in (first.datasets if first else [])
            if not d.path.startswith("/params")
        },
    }
    header = "".join(f"{name} = {value!r}\n" for name, value in constants.items())
    body = _TEMPLATES[pattern if pattern in _TEMPLATES else "C"]
    return f'''"""Generate manifests for the data in DATA_DIR (pattern {pattern}): adapt the marked lines."""
from pathlib import Path

import pandas as pd

from manifest_broker.boundary import dataset_at, open_hdf5

{header}

def generate(output_dir, n_hamiltonians=None):
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    ham_rows, art_rows = [], []
{body}
    ham_df, art_df = pd.DataFrame(ham_rows), pd.DataFrame(art_rows)
    ham_df.to_parquet(output_dir / f"{{NAME}}_hamiltonians.parquet", index=False)
    art_df.to_parquet(output_dir / f"{{NAME}}_artifacts.parquet", index=False)
    return ham_df, art_df
'''


def explore(data_dir: Path, sample: int = 5, seed: int = 0) -> ExploreReport:
    """Count and describe the files under ``data_dir`` and open a random sample.

    Args:
        data_dir: The directory the data provider pointed at.
        sample: How many HDF5 files to open.
        seed: Seed for the sample, so two runs look at the same files.

    Returns:
        An :class:`ExploreReport`.
    """
    root = Path(data_dir).resolve()
    files: list[Path] = []
    suffixes: Counter[str] = Counter()
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            suffixes[path.suffix.lower() or "(none)"] += 1
            try:
                total += path.stat().st_size
            except OSError:
                continue
            if path.suffix.lower() in HDF5_SUFFIXES:
                files.append(path)
    files.sort()
    picked = sorted(random.Random(seed).sample(files, min(sample, len(files))))
    infos = [_describe(p, root) for p in picked]
    structures = Counter(f.signature for f in infos if not f.error)
    flags: list[str] = []
    if not files:
        flags.append("no HDF5 files found: the broker reads HDF5 only")
    other = {
        s: n
        for s, n in suffixes.items()
        if s not in HDF5_SUFFIXES and s not in {".parquet", ".csv", ".json", ".txt", ".md"}
    }
    if other:
        flags.append("non-HDF5 data files: " + ", ".join(f"{n} {s}" for s, n in sorted(other.items())))
    if len(structures) > 1:
        flags.append(f"the sampled files have {len(structures)} different structures")
    for f in infos:
        if f.error:
            flags.append(f"{f.path}: {f.error}")
        for d in f.datasets:
            flags += [f"{f.path}:{d.path}: {flag}" for flag in d.flags]
        for entry in f.nexus:
            if not entry.signal:
                flags.append(
                    f"{f.path}:{entry.path}: an NXentry without an NXdata signal (nothing to plot, so no "
                    "artifact is proposed for it)"
                )
            if entry.other_arrays:
                flags.append(
                    f"{f.path}:{entry.path}: {len(entry.other_arrays)} array(s) outside the NXdata left out "
                    f"of the generator (e.g. {entry.path}/{entry.other_arrays[0]}): add them to ARTIFACTS "
                    "to serve them"
                )
            flags += [f"{f.path}:{entry.path}/{why}" for why in entry.refused]
        # (the links below an entry are named above, with their entry)
        flags += [
            f"{f.path}: external link {link}, never followed (its bytes live in another file)"
            for link in f.external_links
            if not any(link.startswith(e.path + "/") for e in f.nexus)
        ]
        if len(f.nexus) > 1:
            flags.append(f"{f.path}: {len(f.nexus)} NXentry groups: one Hamiltonian each")
        if structures and f.signature and structures[f.signature] == 1 and len(structures) > 1:
            common = set().union(*(set(g.groups) for g in infos if g is not f))
            extra = sorted(set(f.groups) - common)
            if extra:
                flags.append(f"{f.path}: unexpected groups {', '.join(extra)}")
    pattern, reason = _pattern(files, infos)
    return ExploreReport(
        root=str(root),
        n_files=len(files),
        total_bytes=total,
        by_suffix=dict(suffixes),
        examples=[str(p.relative_to(root)) for p in files[:5]],
        sample=infos,
        structures=[(n, [d[0] for d in sig]) for sig, n in structures.most_common()],
        flags=flags,
        pattern=pattern,
        reason=reason,
        generator=_generator(pattern, root, infos),
    )
