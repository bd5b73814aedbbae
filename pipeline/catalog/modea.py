"""Mode A (the guide's expert access): find Hamiltonians with a Tiled metadata
search, take the locators from their metadata, and read the arrays straight from the
HDF5 files with h5py, in worker processes, batch by batch, with no array bytes going
through HTTP.

    from manifest_broker.catalog.modea import locate, load_batches
    table = locate(client["lab"], ["J1>0.5"])            # one row per artifact
    for rows, arrays in load_batches(table, batch_size=256, workers=4):
        ...                                               # a training step
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from manifest_broker.catalog.plan import LOCATOR_PREFIXES
from manifest_broker.errors import BrokerError
from manifest_broker.processes import shut_down, submit, worker_pool

LOCATOR_COLUMNS = ["huid", "key", "type", "file", "dataset", "index"]
_QUERY = re.compile(r"^\s*(?P<key>[^<>=!\s]+)\s*(?P<op>==|!=|>=|<=|>|<|=)\s*(?P<value>.*?)\s*$")


class LocateError(BrokerError, ValueError):
    """A query the command line cannot turn into a Tiled query."""


def parse_query(text: str) -> Any:
    """``J1>0.5``, ``lattice==square``, ``S<=2`` -> a ``tiled.queries`` object.

    The value is read as JSON when it parses (numbers, true/false, null, "quoted
    text"), else taken as text. Dotted keys reach into nested metadata, as Tiled's
    ``Key`` does.

    Raises:
        LocateError: for text that is not ``key OP value``.
    """
    from tiled.queries import Key

    match = _QUERY.match(text)
    if not match or not match["value"]:
        raise LocateError(f"query {text!r}: write KEY OP VALUE with OP one of == != > >= < <= (e.g. 'J1>0.5')")
    try:
        value = json.loads(match["value"])
    except json.JSONDecodeError:
        value = match["value"]
    key = Key(match["key"])
    op = match["op"]
    if op in ("==", "="):
        return key == value
    if op == "!=":
        return key != value
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise LocateError(f"query {text!r}: {op} compares numbers; {match['value']!r} is not one")
    return {">": key > value, ">=": key >= value, "<": key < value, "<=": key <= value}[op]


def locator_rows(key: str, metadata: dict) -> list[dict]:
    """One row per artifact of a Hamiltonian, from its metadata alone: huid, key,
    type, file, dataset, index, then the Hamiltonian's parameters."""
    types = [k[len("path_") :] for k in metadata if k.startswith("path_")]
    # a parameter named like a locator column keeps its value as param_<name>
    parameters = {(f"param_{k}" if k in LOCATOR_COLUMNS else k): v for k, v in metadata.items()
                  if k != "huid" and not k.startswith(LOCATOR_PREFIXES)}  # fmt: skip
    return [
        {"huid": metadata.get("huid"), "key": key, "type": t, "file": metadata[f"path_{t}"],
         "dataset": metadata.get(f"dataset_{t}"), "index": metadata.get(f"index_{t}"), **parameters}
        for t in types
    ]  # fmt: skip


def locate(node: Any, queries: list[str] | None = None) -> pa.Table:
    """Search the Hamiltonians under ``node`` (a ``tiled.client`` container) and
    return their locators, one row per artifact; only metadata is fetched (pages of
    search results), never an array.

    Raises:
        LocateError: for a query that cannot be parsed.
    """
    results = node
    for query in [parse_query(q) for q in queries or []]:
        results = results.search(query)  # Container.search() takes one query; chained, they are ANDed
    rows: list[dict] = []
    for key, child in results.items():
        if child.structure_family == "container":
            rows.extend(locator_rows(key, dict(child.metadata)))
    if not rows:
        return pa.table({c: pa.array([], pa.int64() if c == "index" else pa.string()) for c in LOCATOR_COLUMNS})
    table = pa.Table.from_pylist(rows)
    if "index" in table.column_names and table.schema.field("index").type == pa.null():
        table = table.set_column(table.schema.get_field_index("index"), "index", pa.nulls(table.num_rows, pa.int64()))
    return table


def _read(tasks: list[tuple[int, str, str, int | None]]) -> list[tuple[int, np.ndarray]]:
    """Read one batch: files opened once each; the rows of one batched dataset come
    in one h5py read (increasing indices)."""
    import h5py

    out: list[tuple[int, np.ndarray]] = []
    by_file: dict[str, list[tuple[int, str, int | None]]] = {}
    for pos, file, dataset, index in tasks:
        by_file.setdefault(file, []).append((pos, dataset, index))
    for file, items in by_file.items():
        with h5py.File(file, "r") as f:
            by_dataset: dict[str, list[tuple[int, int | None]]] = {}
            for pos, dataset, index in items:
                by_dataset.setdefault(dataset, []).append((pos, index))
            for dataset, rows in by_dataset.items():
                ds = f[dataset]
                whole = [pos for pos, index in rows if index is None]
                for pos in whole:
                    out.append((pos, ds[()]))
                indexed = sorted((index, pos) for pos, index in rows if index is not None)
                if indexed:
                    unique = sorted({i for i, _ in indexed})
                    low, high = unique[0], unique[-1]
                    if high - low + 1 <= 4 * len(unique):  # dense: one contiguous read
                        block, where = ds[low : high + 1], {i: i - low for i in unique}
                    else:  # sparse: h5py's point selection
                        block, where = ds[unique], {i: n for n, i in enumerate(unique)}
                    out.extend((pos, block[where[i]]) for i, pos in indexed)
    return out


def load_batches(table: pa.Table, *, batch_size: int = 256, workers: int | None = None,
                 types: list[str] | None = None) -> Iterator[tuple[pa.Table, list[np.ndarray]]]:  # fmt: skip
    """Read the arrays of a locator table with h5py, ``batch_size`` rows at a time,
    in ``workers`` processes (h5py holds one global lock per process).

    Args:
        table: A table with ``file``, ``dataset`` and ``index`` (e.g. from :func:`locate`).
        types: Keep only these artifact types.

    Yields:
        (the batch's rows, their arrays in row order), batches in table order.
    """
    import pyarrow.compute as pc

    if types is not None:
        table = table.filter(pc.is_in(table["type"], pa.array(types)))
    files, datasets = table["file"].to_pylist(), table["dataset"].to_pylist()
    indexes = table["index"].to_pylist() if "index" in table.column_names else [None] * table.num_rows
    starts = list(range(0, table.num_rows, batch_size))
    tasks = [
        [(p, files[p], datasets[p], indexes[p]) for p in range(s, min(s + batch_size, table.num_rows))] for s in starts
    ]
    workers = workers or min(len(tasks), os.cpu_count() or 1)
    if workers <= 1 or len(tasks) <= 1:
        results: Iterator[list[tuple[int, np.ndarray]]] = map(_read, tasks)
        pool = None
    else:
        pool = worker_pool(workers, ["h5py", "manifest_broker.catalog.modea"])
        futures = [submit(pool, _read, task) for task in tasks]
        results = (future.result() for future in futures)
    try:
        for start, found in zip(starts, results):
            arrays = [a for _, a in sorted(found, key=lambda item: item[0])]
            yield table.slice(start, len(arrays)), arrays
    finally:
        if pool is not None:
            shut_down(pool)
