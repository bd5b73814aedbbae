"""NeXus files read as the guide's contract sees them: which group is the entry,
which dataset is the NXdata signal (and its axes and errors), and which scalar
fields describe the measurement.

NeXus marks its groups with an ``NX_class`` attribute. Two conventions name the
plotted signal and coexist in files written today: the current one (the NXdata
group's ``signal`` and ``axes`` attributes, NIAC 2014) and the older one that
Mantid's processed files still write (``signal=1`` on the dataset itself, its axes
as ``axes="axis2,axis1"``). Both are read. Parameters are the scalar fields of
every group below the entry but its NXdata (NXsample, NXinstrument and what is
below it, the entry's own fields...), and the mean of each NXlog's ``value`` (a sample log is a time
series); a field's ``units`` attribute is kept as ``<column>_units``.

Every object is reached through links inside the file only
(:mod:`manifest_broker.boundary`): an external link is never followed, and a field
whose bytes live in another file (external raw storage, a virtual dataset) is
listed in ``Entry.refused`` instead of becoming a parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from manifest_broker.boundary import dataset_problem, hard_object, members, readable_dataset

# NeXus bookkeeping attributes, not the provider's metadata.
_STRUCTURAL_ATTRIBUTES = {
    "NX_class",
    "signal",
    "axes",
    "target",
    "default",
    "auxiliary_signals",
    "interpretation",
    "long_name",
    "axis",
    "primary",
}


def text(value: Any) -> str:
    """An HDF5 string attribute or value as ``str`` (h5py gives ``bytes`` for
    fixed-length strings, ``str`` for variable-length ones, arrays of either)."""
    if hasattr(value, "tolist") and not isinstance(value, bytes):
        value = value.tolist()
    if isinstance(value, list):
        return ",".join(text(v) for v in value)
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def nx_class(obj: Any) -> str | None:
    value = obj.attrs.get("NX_class")
    return None if value is None else text(value)


def _names(value: Any) -> list[str]:
    """Axis names from an ``axes`` attribute: a list of strings, or one string split
    at ``:`` or ``,`` (the older convention); ``.`` means no axis for that dimension."""
    if value is None:
        return []
    if hasattr(value, "tolist") and not isinstance(value, bytes):
        value = value.tolist()
    items = value if isinstance(value, list) else re.split(r"[:,]", text(value))
    return [text(v).strip() for v in items if text(v).strip() not in ("", ".")]


@dataclass
class Parameter:
    column: str  # the manifest column
    path: str  # below the entry, e.g. "sample/temperature"
    units: str | None = None
    reduce: str | None = None  # "mean" for an NXlog's value
    kind: str = "float"  # float, integer, string, bool


@dataclass
class Entry:
    """One NXentry: its signal, the arrays that go with it, and its parameters."""

    path: str  # "/entry"
    data: str | None = None  # the NXdata group below the entry, e.g. "data"
    signal: str | None = None  # dataset below the entry, e.g. "data/S"
    axes: list[str] = field(default_factory=list)
    errors: str | None = None
    parameters: list[Parameter] = field(default_factory=list)
    other_arrays: list[str] = field(default_factory=list)  # arrays left out of the manifest
    refused: list[str] = field(default_factory=list)  # fields whose bytes live in another file, with why

    @property
    def artifacts(self) -> dict[str, str]:
        """Artifact type -> dataset below the entry: the signal first, then its errors and axes."""
        out: dict[str, str] = {}
        for path in [self.signal, self.errors, *self.axes]:
            if path and path not in out.values():
                out[_column(path.rsplit("/", 1)[-1])] = path
        return out


def _column(name: str) -> str:
    """A manifest column or artifact type from an HDF5 path: ``/`` becomes ``_``,
    anything but letters, digits and ``_`` too."""
    return re.sub(r"[^0-9A-Za-z_]", "_", name.strip("/")).strip("_") or "field"


def _kind(dtype: Any) -> str | None:
    if dtype.kind == "f":
        return "float"
    if dtype.kind in "iu":
        return "integer"
    if dtype.kind == "b":
        return "bool"
    if dtype.kind in "SUO" or dtype.kind == "T":
        return "string"
    return None


def _member(group: Any, name: str) -> Any:
    """The member ``name`` of ``group`` reached inside the file, or None."""
    return dict(members(group)).get(name) if name in group else None


def _signal(group: Any) -> str | None:
    import h5py

    name = group.attrs.get("signal")
    if name is not None and isinstance(_member(group, text(name)), h5py.Dataset):
        return text(name)
    for key, child in members(group):  # the older convention: signal=1 on the dataset
        if isinstance(child, h5py.Dataset) and text(child.attrs.get("signal", "")) == "1":
            return key
    return None


def _data_group(entry: Any) -> str | None:
    """The entry's NXdata: the one its ``default`` attribute names, else the first."""
    default = entry.attrs.get("default")
    if default is not None and (chosen := _member(entry, text(default))) is not None and nx_class(chosen) == "NXdata":
        return text(default)
    for key, child in members(entry):
        if nx_class(child) == "NXdata":
            return key
    return None


def read_entry(handle: Any, path: str) -> Entry:
    """Describe the NXentry at ``path`` of an open h5py file: every scalar field of
    every group below it (NXdata excepted) is a parameter, whatever its class
    (NXsample, NXinstrument, NXmonochromator, NXchopper, NXdetector, NXmonitor,
    NXcollection, a class of the provider's own...)."""
    import h5py

    entry = hard_object(handle, path)
    out = Entry(path)
    out.data = _data_group(entry)
    if out.data is not None:
        group = _member(entry, out.data)
        signal = _signal(group)
        if signal is not None:
            out.signal = f"{out.data}/{signal}"
            axes = _names(group.attrs.get("axes")) or _names(group[signal].attrs.get("axes"))
            out.axes = [f"{out.data}/{a}" for a in axes if isinstance(_member(group, a), h5py.Dataset)]
            for errors in (f"{signal}_errors", "errors"):
                if isinstance(_member(group, errors), h5py.Dataset):
                    out.errors = f"{out.data}/{errors}"
                    break
    taken = {out.signal, out.errors, *out.axes}
    columns: set[str] = set()

    def visit(name: str, obj: Any) -> None:
        if not isinstance(obj, h5py.Dataset) or name in taken:
            return
        owner = obj.parent
        owner_class = nx_class(owner)
        kind = _kind(obj.dtype)
        scalar = obj.shape == () or obj.size == 1
        if owner_class == "NXlog":
            if obj.name.rsplit("/", 1)[-1] != "value" or kind not in ("float", "integer") or obj.size == 0:
                return
            column, reduce, kind = _column(name.rsplit("/", 1)[0]), "mean", "float"
        elif scalar and kind is not None and not _inside_data(owner):
            column, reduce = _column(name), None
        else:
            if obj.size > 1:
                out.other_arrays.append(name)
            return
        if problem := dataset_problem(obj):  # never read: its bytes are another file's
            out.refused.append(f"{name}: {problem[1]}")
            return
        while column in columns:
            column += "_"
        columns.add(column)
        units = obj.attrs.get("units")
        out.parameters.append(Parameter(column, name, None if units is None else text(units), reduce, kind))

    entry.visititems(visit)  # H5Ovisit: hard links only, so never into another file

    def outside(name: str, link: Any) -> None:  # links H5Ovisit does not follow: named, never read
        if isinstance(link, h5py.ExternalLink):
            out.refused.append(
                f"{name}: an external link to {link.path} in {link.filename}, never followed (its "
                "bytes live in another file)"
            )

    entry.visititems_links(outside)
    return out


def _inside_data(group: Any) -> bool:
    return nx_class(group) == "NXdata"


def entries(handle: Any) -> list[str]:
    """Paths of the file's NXentry groups (at the top level, where NeXus puts them)."""
    return [f"/{key}" for key, child in members(handle) if nx_class(child) == "NXentry"]


def value(dataset: Any, reduce: str | None = None) -> Any:
    """A parameter's value as a manifest cell: a Python scalar, a string for text,
    the mean of an NXlog's ``value``.

    Raises:
        ProviderFileError: when the dataset's bytes live in another file.
    """
    import numpy as np

    data = readable_dataset(dataset)[()]
    if reduce == "mean":
        return float(np.mean(data))
    if isinstance(data, np.ndarray):
        data = data.reshape(-1)[0]
    if isinstance(data, bytes | np.bytes_):
        return data.decode("utf-8", "replace")
    return data.item() if hasattr(data, "item") else data
