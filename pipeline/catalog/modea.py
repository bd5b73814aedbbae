"""Mode A (the guide's expert access): find Hamiltonians with a Tiled metadata
search, take the locators from their metadata, and read the arrays straight from the
HDF5 files with h5py, in worker processes, batch by batch, with no array bytes going
through HTTP.

    from manifest_broker.catalog.modea import locate, load_batches
    table = locate(client["lab"], ["J1>0.5"])            # one row per artifact
    for rows, arrays in load_batches(table, base_dir="data", batch_size=256, workers=4):
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

from manifest_broker.catalog.manifests import LOCATOR_PREFIXES
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
    parameters = {
        (f"param_{k}" if k in LOCATOR_COLUMNS else k): v
        for k, v in metadata.items()
        if k != "huid" and not k.startswith(LOCATOR_PREFIXES)
    }
    return [
        {
            "huid": metadata.get("huid"),
            "key": key,
            "type": t,
            "file": metadata[f"path_{t}"],
            "dataset": metadata.get(f"dataset_{t}"),
            "index": metadata.get(f"index_{t}"),
            **parameters,
        }
        for t in types
    ]


# Tiled's largest page (tiled.server.dependencies.MAX_PAGE_SIZE), and the pages asked
# for at once when the server can only page by offset (a sorted container).
PAGE_LIMIT = 300
PAGES_IN_FLIGHT = 4


def _table(rows: list[dict]) -> pa.Table:
    if not rows:
        return pa.table({c: pa.array([], pa.int64() if c == "index" else pa.string()) for c in LOCATOR_COLUMNS})
    table = pa.Table.from_pylist(rows)
    if "index" in table.column_names and table.schema.field("index").type == pa.null():
        table = table.set_column(table.schema.get_field_index("index"), "index", pa.nulls(table.num_rows, pa.int64()))
    return table


def _search_pages(node: Any, params: dict[str, Any]) -> Iterator[list[dict]]:
    """The search results under ``node`` as Tiled's server pages them (its order),
    metadata and structure family only, pages of :data:`PAGE_LIMIT`.

    In Tiled's default order the pages follow the server's own cursor (``page[cursor]``,
    the id of the last node sent): each page costs the server its rows, where a page
    asked for by offset first walks past every earlier match (quadratic over a
    large answer: 109 s against 34 s for 83,407 matches of 10^6 nodes). With a sort
    of the client's, the server pages by offset only: then the exact count comes
    first and :data:`PAGES_IN_FLIGHT` offset pages are asked for at once.
    """
    from urllib.parse import parse_qs, urlparse

    from tiled.client.utils import handle_error

    http = node.context.http_client
    url = node.item["links"]["search"]
    page = {"fields": ["metadata", "structure_family"], "omit_links": True, "page[limit]": PAGE_LIMIT}

    def get(extra: dict[str, Any]) -> dict:
        return handle_error(http.get(url, params={**params, **extra}, headers={"Accept": "application/json"})).json()

    if "sort" not in params:
        cursor: dict[str, Any] = {}
        while True:
            content = get({**page, **cursor})
            yield content["data"]
            following = (content.get("links") or {}).get("next")
            if not following or not content["data"]:
                return
            cursor = {"page[cursor]": parse_qs(urlparse(following).query)["page[cursor]"][0]}
    yield from _offset_pages(get, page)


def _offset_pages(get: Any, page: dict[str, Any]) -> Iterator[list[dict]]:
    """Offset pages, several in flight; asking goes on past the exact count until a
    short page, so a child added meanwhile is not cut off."""
    from concurrent.futures import ThreadPoolExecutor

    count = get({"fields": "count", "page[limit]": 0})["meta"]["count"]
    with ThreadPoolExecutor(PAGES_IN_FLIGHT) as pool:
        offset = 0
        while True:
            ends = max(count, offset + PAGE_LIMIT)
            offsets = range(offset, ends, PAGE_LIMIT)
            short = False
            for data in pool.map(lambda o: get({**page, "page[offset]": o})["data"], offsets):
                yield data
                short = short or len(data) < PAGE_LIMIT
            if short:
                return
            offset = ends


def locate(node: Any, queries: list[str] | None = None) -> pa.Table:
    """Search the Hamiltonians under ``node`` (a ``tiled.client`` container) and
    return their locators, one row per artifact, in the order of Tiled's search.

    Only what the rows need travels: the server's metadata-only search pages
    (``fields=metadata``, ``omit_links``) of its largest size, following its cursor
    (:func:`_search_pages`), never a full node document and never an array.

    Raises:
        LocateError: for a query that cannot be parsed.
    """
    from tiled.client.container import _queries_to_params

    params = {**_queries_to_params(*[parse_query(q) for q in queries or []]), **node._sorting_params}
    rows: list[dict] = []
    for data in _search_pages(node, params):
        for item in data:
            attributes = item["attributes"]
            if attributes.get("structure_family") == "container":
                rows.extend(locator_rows(item["id"], attributes.get("metadata") or {}))
    return _table(rows)


def locate_in_catalog(catalog: str, queries: list[str] | None = None, parent: str = "") -> pa.Table:
    """:func:`locate` straight from a catalog database (SQLite file or PostgreSQL
    URL), without a server: Tiled's own catalog adapter turns the queries into its
    conditions and ordering, and one ``SELECT`` of key, family and metadata reads
    the matching children (the statement Tiled pages through, without the paging),
    streamed through the broker's own (synchronous) connection.

    Raises:
        LocateError: for a query that cannot be parsed, or a parent not in the catalog.
        manifest_broker.catalog.database.CatalogError: for a catalog that cannot be used.
    """
    import asyncio

    import orjson

    from manifest_broker.catalog.database import check_catalog, engine
    from manifest_broker.catalog.database import locate as locate_catalog

    parsed = [parse_query(q) for q in queries or []]
    check_catalog(catalog)
    target = locate_catalog(catalog)
    statement = asyncio.run(_tiled_statement(target.tiled_uri, parsed, parent))
    rows: list[dict] = []
    eng = engine(target, readonly=True)
    try:
        with eng.connect() as connection:
            result = connection.execution_options(stream_results=True, yield_per=20_000).execute(statement)
            for key, family, metadata in result:
                if family == "container":
                    rows.extend(locator_rows(key, orjson.loads(metadata) if metadata else {}))
    finally:
        eng.dispose()
    return _table(rows)


async def _tiled_statement(uri: str, parsed: list[Any], parent: str) -> Any:
    """The ``SELECT key, structure_family, metadata`` of the children of ``parent``
    matching ``parsed``, with the conditions and order Tiled's adapter gives them
    (metadata as JSON text, parsed by the caller)."""
    import sqlalchemy as sa
    from tiled.catalog import from_uri, orm
    from tiled.server.core import NoEntry

    adapter = from_uri(uri)
    try:
        segments = [s for s in parent.split("/") if s]
        try:
            node = await adapter.lookup_adapter(segments) if segments else adapter
        except NoEntry:
            node = None
        if node is None or node.structure_family != "container":
            raise LocateError(f"--parent {parent}: no such container in the catalog", where=parent)
        for query in parsed:
            node = node.search(query)
        statement = sa.select(orm.Node.key, orm.Node.structure_family, sa.cast(orm.Node.metadata_, sa.Text))
        return node.apply_conditions(node._scope_statement(statement)).order_by(*node.order_by_clauses)
    finally:
        await adapter.context.engine.dispose()


def _read(root: str, tasks: list[tuple[int, str, str, int | None]]) -> list[tuple[int, np.ndarray]]:
    """Read one batch: files opened once each, through the confined reader (inside
    ``root``, regular files, no external links, virtual datasets or external
    storage); the rows of one batched dataset come in one h5py read (increasing
    indices)."""
    from manifest_broker import boundary

    out: list[tuple[int, np.ndarray]] = []
    by_file: dict[str, list[tuple[int, str, int | None]]] = {}
    for pos, file, dataset, index in tasks:
        by_file.setdefault(file, []).append((pos, dataset, index))
    for file, items in by_file.items():
        with boundary.open_hdf5(file, root, what="locator file") as f:
            by_dataset: dict[str, list[tuple[int, int | None]]] = {}
            for pos, dataset, index in items:
                by_dataset.setdefault(dataset, []).append((pos, index))
            for dataset, rows in by_dataset.items():
                ds = boundary.readable_dataset(boundary.hard_object(f, dataset))
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


# Where a locator table records the data directory its files were located in
# (``broker locate --base-dir``, :func:`locate`'s ``base_dir``): Parquet keeps it.
BASE_DIR_KEY = b"manifest_broker.base_dir"


def with_base_dir(table: pa.Table, base_dir: str | os.PathLike[str]) -> pa.Table:
    """``table`` with the data directory recorded in its schema metadata, where
    :func:`load_batches` finds it when it is not given one."""
    return table.replace_schema_metadata(
        {**(table.schema.metadata or {}), BASE_DIR_KEY: os.fsencode(os.path.realpath(base_dir))}
    )


def confined_root(table: pa.Table, base_dir: str | os.PathLike[str] | None) -> str:
    """The resolved data directory ``load_batches`` reads inside, after checking that
    every ``file`` of ``table`` resolves inside it (nothing is opened).

    Raises:
        LocateError: when no data directory is given or recorded.
        manifest_broker.boundary.ProviderFileError: ``outside_root`` for the first
            locator outside it (a column in the locator namespace, a file moved...).
    """
    import pyarrow.compute as pc

    from manifest_broker import boundary

    if base_dir is None:
        recorded = (table.schema.metadata or {}).get(BASE_DIR_KEY)
        if recorded is None:
            raise LocateError(
                "load_batches needs base_dir, the data directory the locators must lie in "
                "(or a table from `broker locate --base-dir DIR`, which records it)"
            )
        base_dir = os.fsdecode(recorded)
    root = os.path.realpath(base_dir)
    if not os.path.isdir(root):
        raise LocateError(f"base_dir {base_dir}: not a directory", where=base_dir)
    for file in pc.unique(table["file"]).to_pylist():
        if file is None:
            raise LocateError("a locator without a file: the table is not from `broker locate`")
        boundary.resolve(file, root, what="locator file")
    return root


def load_batches(
    table: pa.Table,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 256,
    workers: int | None = None,
    types: list[str] | None = None,
) -> Iterator[tuple[pa.Table, list[np.ndarray]]]:
    """Read the arrays of a locator table with h5py, ``batch_size`` rows at a time,
    in ``workers`` processes (h5py holds one global lock per process).

    Every file is read through :mod:`manifest_broker.boundary`, inside ``base_dir``:
    the locators come from metadata, and a locator outside the data directory is
    refused before anything is read.

    Args:
        table: A table with ``file``, ``dataset`` and ``index`` (e.g. from :func:`locate`).
        base_dir: The data directory the files must lie in; default the one the
            table records (``broker locate --base-dir``).
        types: Keep only these artifact types.

    Yields:
        (the batch's rows, their arrays in row order), batches in table order.

    Raises:
        LocateError: without a data directory.
        manifest_broker.boundary.ProviderFileError: for a locator outside it, or a
            file or dataset the confined reader refuses.
    """
    import pyarrow.compute as pc

    if types is not None:
        table = table.filter(pc.is_in(table["type"], pa.array(types)))
    root = confined_root(table, base_dir)
    files, datasets = table["file"].to_pylist(), table["dataset"].to_pylist()
    indexes = table["index"].to_pylist() if "index" in table.column_names else [None] * table.num_rows
    starts = list(range(0, table.num_rows, batch_size))
    tasks = [
        [(p, files[p], datasets[p], indexes[p]) for p in range(s, min(s + batch_size, table.num_rows))] for s in starts
    ]
    workers = workers or min(len(tasks), os.cpu_count() or 1)
    if workers <= 1 or len(tasks) <= 1:
        results: Iterator[list[tuple[int, np.ndarray]]] = (_read(root, task) for task in tasks)
        pool = None
    else:
        pool = worker_pool(workers, ["h5py", "manifest_broker.catalog.modea"])
        futures = [submit(pool, _read, root, task) for task in tasks]
        results = (future.result() for future in futures)
    try:
        for start, found in zip(starts, results):
            arrays = [a for _, a in sorted(found, key=lambda item: item[0])]
            yield table.slice(start, len(arrays)), arrays
    finally:
        if pool is not None:
            shut_down(pool)
