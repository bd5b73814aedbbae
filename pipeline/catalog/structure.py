"""Tiled's array structure of one HDF5 locator, from what the probe saw.

Tiled's own ``register()`` computes a structure with ``HDF5ArrayAdapter.from_uris``:
it opens the file, builds a dask array over it and calls
``ArrayStructure.from_array``. Importing that adapter costs about 2 s (dask,
FastAPI, the catalog's ORM), paid on every cold run. The probe has already
opened every file and recorded its shape, its HDF5 chunks and Tiled's
``data_type`` document of its dtype; this module lays those out the way the
adapter does and builds the document with Tiled's own ``ArrayStructure`` class.
``tests/catalog/test_structure.py`` compares the result with the adapter's over
generated shapes, chunkings, dtypes and rows, and the parity test with what Tiled's
server stores.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

import orjson


def split_chunks(total: int, chunk: int) -> tuple[int, ...]:
    """Repeated chunks of ``chunk`` with the remainder last (``tiled.adapters.utils.split_chunks``)."""
    full, remainder = divmod(total, chunk)
    return (chunk,) * full + ((remainder,) if remainder else ())


def array_layout(shape: Sequence[int], chunks: Sequence[int] | None, row: bool) -> tuple[list[int], list[list[int]]]:
    """Shape and chunks Tiled serves for a dataset, or for one row of it.

    Mirrors ``HDF5ArrayAdapter.lazy_load_hdf5_array`` for one file: a scalar or a
    dataset with a zero-length axis is read whole and stacked (a leading axis of
    one); any other is split along its HDF5 chunks (the whole shape when it is
    contiguous), the first axis in chunks of at least one. A row (the locator's
    ``index``) drops the first axis and keeps the other chunks.

    Args:
        shape: The dataset's shape.
        chunks: Its HDF5 chunk shape, ``None`` when contiguous.
        row: Whether the locator selects one entry along the first axis.
    """
    if not shape or 0 in shape:
        out_shape = [1, *shape]
        out_chunks = [[1], *[[size] for size in shape]]
    else:
        grid = list(chunks) if chunks else list(shape)
        out_shape = list(shape)
        out_chunks = [list(split_chunks(shape[0], max(grid[0], 1)))]
        out_chunks += [list(split_chunks(size, step)) for size, step in zip(shape[1:], grid[1:])]
    if row:
        return out_shape[1:], out_chunks[1:]
    return out_shape, out_chunks


def structure_id(document: dict[str, Any]) -> str:
    """Tiled's structure id: the MD5 hex digest of the RFC 8785 canonical JSON of the
    document (``tiled.catalog.utils.compute_structure_id``, whose package costs seconds
    to import; the two agree, tested)."""
    import canonicaljson

    return hashlib.md5(canonicaljson.encode_canonical_json(document)).hexdigest()


def array_structure(shape: Sequence[int], chunks: Sequence[int] | None, data_type: str, row: bool) -> dict[str, Any]:
    """The structure document Tiled's HDF5 adapter reports for one locator.

    Args:
        shape, chunks, row: As for :func:`array_layout`.
        data_type: Tiled's data_type document as JSON (the probe's ``data_type``).
    """
    from tiled.structures.array import ArrayStructure

    served_shape, served_chunks = array_layout(shape, chunks, row)
    structure = ArrayStructure.from_json(
        {"data_type": orjson.loads(data_type), "chunks": served_chunks, "shape": served_shape, "dims": None}
    )
    return dataclasses.asdict(structure)


def structure_row(shape: Sequence[int], chunks: Sequence[int] | None, data_type: str, row: bool) -> tuple[str, str]:
    """(id, document as the JSON text Tiled's server stores) of one locator's structure."""
    from tiled.utils import safe_json_dump

    document = array_structure(shape, chunks, data_type, row)
    return structure_id(document), bytes(safe_json_dump(document)).decode()
