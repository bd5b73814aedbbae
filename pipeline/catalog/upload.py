"""Arrays whose data go into the server's own storage (``--upload``), for a server
that cannot read the provider's files.

The leaf every upload path shares: the mark an unfinished upload carries, the block
size, the reader of one row of a batched dataset, :func:`upload_array`, the check
that a server keeps uploaded arrays at all, and :func:`as_tiled_serves` (how Tiled's
HDF5 adapter lays out what it serves, which an upload reproduces and ``verify``
compares with). ``register`` and ``verify`` import it; it imports neither.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from manifest_broker.boundary import Identity, ProviderFileError, hard_object, open_hdf5, printable, readable_dataset
from manifest_broker.catalog.client import failure_reason, response_status
from manifest_broker.errors import BrokerError

# Metadata key of an array whose upload (--upload) has not finished: set when the
# node is created, removed once its last block is written. A re-run deletes such an
# array and uploads it again, so every array ends up uploaded exactly once.
UPLOAD_MARK = "broker_upload"
# Largest block sent in one request when uploading (Tiled's client suggests at most
# 100 MB per request).
UPLOAD_BLOCK_BYTES = 64 * 2**20


class UploadError(BrokerError, RuntimeError):
    """The server cannot keep uploaded arrays; nothing was registered."""


def as_tiled_serves(array: np.ndarray, row: bool) -> np.ndarray:
    """An h5py read as Tiled's HDF5 adapter serves it: a whole scalar or a whole
    dataset with a zero-length axis comes stacked (dask), with a leading axis of one
    and numpy's canonical dtype (native byte order); the values are the same."""
    if not row and (array.ndim == 0 or 0 in array.shape):
        return array[np.newaxis].astype(np.result_type(array.dtype))
    return array


class _Row:
    """One row of a batched HDF5 dataset as an array-like dask can read block by block
    (``ds[index][block]`` without reading the whole row or the whole dataset)."""

    def __init__(self, dataset: Any, index: int) -> None:
        self._dataset, self._index = dataset, index
        self.shape, self.dtype, self.ndim = dataset.shape[1:], dataset.dtype, dataset.ndim - 1

    def __getitem__(self, key: Any) -> Any:
        return self._dataset[(self._index, *(key if isinstance(key, tuple) else (key,)))]


def upload_array(
    container: Any,
    key: str,
    path: str,
    parameters: dict[str, Any],
    metadata: dict[str, Any],
    *,
    root: Path,
    expect: Identity | None = None,
) -> Any:
    """Write one artifact into the server's storage through Tiled's own client.

    The file is opened through the confined reader (:mod:`manifest_broker.boundary`):
    inside ``root``, a regular file, and the very file the check saw (``expect``);
    the dataset is reached through links inside the file only and must keep its
    bytes in that file. It (or its row ``parameters["slice"]``) is read in blocks of
    at most :data:`UPLOAD_BLOCK_BYTES`, aligned with its HDF5 chunks, and each block
    goes out as one ``write_block`` request as soon as it is read, so memory stays
    one block whatever the array's size (Tiled's ``write_array`` gathers every block
    of a dask array into one result). The node carries :data:`UPLOAD_MARK` until the
    last block is written and the file is found unchanged; a file changed meanwhile
    deletes the node and fails the array. A whole scalar or zero-length dataset gets
    the leading axis of one that Tiled's HDF5 adapter gives it, so the uploaded node
    is the node Tiled would serve from the file; compound dtypes keep their fields.

    Returns:
        The new array's client.

    Raises:
        ProviderFileError: when the file or dataset is refused, or changed while read.
    """
    import itertools

    from dask.array.core import normalize_chunks
    from tiled.structures.array import ArrayStructure, BuiltinDtype, StructDtype
    from tiled.structures.core import StructureFamily
    from tiled.structures.data_source import DataSource

    with open_hdf5(path, root, what="file", expect=expect) as handle:
        dataset = readable_dataset(hard_object(handle, parameters["dataset"]))
        index = parameters.get("slice")
        source: Any = dataset if index is None else _Row(dataset, int(index))
        whole: Any = None
        if source.shape == () or 0 in source.shape:
            whole = np.asarray(dataset[()] if index is None else dataset[int(index)])
            if index is None:  # laid out as Tiled serves the file itself (the same node by either route)
                whole = as_tiled_serves(whole, row=False)
            shape, dtype = whole.shape, whole.dtype
            chunks = tuple((n,) for n in shape)
        else:
            shape, dtype = source.shape, source.dtype
            previous = dataset.chunks if index is None or dataset.chunks is None else dataset.chunks[1:]
            chunks = normalize_chunks("auto", shape, limit=UPLOAD_BLOCK_BYTES, dtype=dtype, previous_chunks=previous)
        if dtype.fields:  # named fields kept, each in native byte order (see _native)
            dtype = _native(dtype)
            data_type: Any = StructDtype.from_numpy_dtype(dtype)
        else:
            data_type = BuiltinDtype.from_numpy_dtype(dtype)
        structure = ArrayStructure(shape=tuple(shape), chunks=chunks, dims=None, data_type=data_type)
        node = container.new(
            StructureFamily.array,
            [DataSource(structure=structure, structure_family=StructureFamily.array)],
            key=key,
            metadata={**metadata, UPLOAD_MARK: "incomplete"},
        )
        if whole is not None:
            node.write(whole.astype(dtype, copy=False))
        else:
            starts = [np.cumsum((0, *sizes[:-1])) for sizes in chunks]
            for block in itertools.product(*(range(len(sizes)) for sizes in chunks)):
                where = tuple(
                    slice(int(starts[axis][i]), int(starts[axis][i]) + chunks[axis][i]) for axis, i in enumerate(block)
                )
                node.write_block(np.ascontiguousarray(source[where], dtype=dtype), block=block)
        if expect is not None and Identity.of(os.fstat(handle.id.get_vfd_handle())) != expect:
            node.delete(external_only=False)
            raise ProviderFileError(
                "changed",
                f"{printable(path)} changed while it was uploaded; the array was "
                "removed again: re-run to upload it as it is now",
                path,
            )
    node.replace_metadata(metadata=metadata, drop_revision=True)
    return node


def _native(dtype: Any) -> Any:
    """A compound dtype with every field in native byte order (Tiled's writable
    storage mixes up a compound array whose fields are big-endian)."""

    if dtype.names is None:
        return dtype.newbyteorder("=") if dtype.subdtype is None else np.dtype((_native(dtype.base), dtype.shape))
    return np.dtype(
        {
            "names": list(dtype.names),
            "formats": [_native(dtype.fields[n][0]) for n in dtype.names],
            "offsets": [dtype.fields[n][1] for n in dtype.names],
            "itemsize": dtype.itemsize,
        }
    )


def check_uploads_accepted(client: Any) -> None:
    """Before any work: the server takes an uploaded array (it has writable storage).
    A one-byte array is written at the root and deleted again.

    Raises:
        UploadError: when it does not, saying how to start one that does.
    """
    import uuid

    try:
        node = client.write_array(np.zeros(1, np.uint8), key=f"broker-upload-check-{uuid.uuid4().hex[:12]}")
    except Exception as exc:
        if response_status(exc) == 405:
            raise UploadError(
                "--upload: the server has no writable storage, so it cannot keep uploaded arrays; "
                "start it with `broker serve --storage DIR` (tiled serve ... -w DIR); nothing was "
                "registered"
            ) from None
        raise UploadError(
            f"--upload: the server refused a test upload ({failure_reason(exc)}); nothing was registered"
        ) from None
    node.delete(external_only=False)
