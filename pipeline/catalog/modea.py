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


# Tiled's largest page (tiled.server.dependencies.MAX_PAGE_SIZE), and the requests in
# flight at once: offset pages of a sorted container, or the segments of an answer in
# Tiled's default order.
PAGE_LIMIT = 300
PAGES_IN_FLIGHT = 4


def _table(rows: list[dict]) -> pa.Table:
    if not rows:
        return pa.table({c: pa.nulls(0, pa.int64() if c == "index" else pa.string()) for c in LOCATOR_COLUMNS})
    table = pa.Table.from_pylist(rows)
    if "index" in table.column_names and table.schema.field("index").type == pa.null():
        table = table.set_column(table.schema.get_field_index("index"), "index", pa.nulls(table.num_rows, pa.int64()))
    return table


def _search_pages(node: Any, params: dict[str, Any]) -> Iterator[list[dict]]:
    """The search results under ``node`` as Tiled's server pages them (its order),
    metadata and structure family only, pages of :data:`PAGE_LIMIT`.

    In Tiled's default order the answer is cut into :data:`PAGES_IN_FLIGHT` segments
    read at once (:func:`_segment_pages`); within one, the pages follow the server's
    own cursor (``page[cursor]``, the id of the last node sent), so each page costs the
    server its rows, where a page asked for by offset first walks past every earlier
    match (quadratic over a large answer: 109 s against 34 s for 83,407 matches of
    10^6 nodes). With a sort of the client's, the server pages by offset only: then
    :data:`PAGES_IN_FLIGHT` offset pages are asked for at once (:func:`_offset_pages`).
    """
    import orjson
    from tiled.client.utils import handle_error

    http = node.context.http_client
    url = node.item["links"]["search"]
    page = {"fields": ["metadata", "structure_family"], "omit_links": True, "page[limit]": PAGE_LIMIT}

    def get(extra: dict[str, Any]) -> dict:
        response = http.get(url, params={**params, **extra}, headers={"Accept": "application/json"})
        return orjson.loads(handle_error(response).content)

    count = get({"fields": "count", "page[limit]": 0})["meta"]["count"]
    if "sort" in params:
        yield from _offset_pages(get, page, count)
    else:
        yield from _segment_pages(get, page, count)


def _following(content: dict) -> dict[str, Any] | None:
    """The cursor of the page after ``content``, None after the last one."""
    from urllib.parse import parse_qs, urlparse

    following = (content.get("links") or {}).get("next")
    if not following or not content["data"]:
        return None
    return {"page[cursor]": parse_qs(urlparse(following).query)["page[cursor]"][0]}


def _segment_pages(get: Any, page: dict[str, Any], count: int) -> Iterator[list[dict]]:
    """Cursor pages of an answer in Tiled's default order, several segments at once.

    Segment ``i`` starts with the page at offset ``i * count // segments`` (Tiled's
    server turns an offset in its default order into the cursor before it, one
    walk over the ids) and follows its cursor until a key of the next segment's first
    page appears: keys are unique under a parent, so the segments joined in order are
    the answer one cursor would give. A child added or removed meanwhile shifts a
    boundary, never doubles a row; the last segment runs to the end.
    """
    from concurrent.futures import ThreadPoolExecutor

    segments = max(1, min(PAGES_IN_FLIGHT, count // page["page[limit]"]))
    starts = [count * i // segments for i in range(segments)]
    with ThreadPoolExecutor(segments) as pool:
        firsts = list(pool.map(lambda start: get({**page, "page[offset]": start}), starts))
        stops = [{item["id"] for item in first["data"]} for first in firsts[1:]] + [set()]

        def segment(i: int) -> list[list[dict]]:
            content, pages = firsts[i], list[list[dict]]()
            while True:
                data = content["data"]
                cut = next((j for j, item in enumerate(data) if item["id"] in stops[i]), None)
                if cut is not None:
                    return [*pages, data[:cut]]
                pages.append(data)
                cursor = _following(content)
                if cursor is None:
                    return pages
                content = get({**page, **cursor})

        for pages in pool.map(segment, range(segments)):
            yield from pages


def _offset_pages(get: Any, page: dict[str, Any], count: int) -> Iterator[list[dict]]:
    """Offset pages, several in flight; asking goes on past the exact count until a
    short page, so a child added meanwhile is not cut off."""
    from concurrent.futures import ThreadPoolExecutor

    limit = page["page[limit]"]
    with ThreadPoolExecutor(PAGES_IN_FLIGHT) as pool:
        offset = 0
        while True:
            ends = max(count, offset + limit)
            offsets = range(offset, ends, limit)
            short = False
            for data in pool.map(lambda o: get({**page, "page[offset]": o})["data"], offsets):
                yield data
                short = short or len(data) < limit
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
    URL), without a server and without Tiled: one ``SELECT`` of the matching
    children's keys and metadata (``sql/locate/``), with the conditions and the
    order Tiled's catalog adapter gives the same queries (:func:`catalog_conditions`),
    fetched as Arrow and parsed by Arrow's JSON reader (:func:`locator_table`).

    Raises:
        LocateError: for a query that cannot be parsed, or a parent not in the catalog.
        manifest_broker.catalog.database.CatalogError: for a catalog that cannot be used.
    """
    import sqlalchemy as sa

    from manifest_broker import queries as sql
    from manifest_broker.catalog.database import check_catalog, engine, find_node
    from manifest_broker.catalog.database import locate as locate_catalog

    parsed = [parse_query(q) for q in queries or []]
    check_catalog(catalog)
    target = locate_catalog(catalog)
    statement, values = _hamiltonians_statement(parsed, target.dialect)
    eng = engine(target, readonly=True)
    try:
        with eng.connect() as connection:
            node = find_node(connection, parent)
            family = None
            if node is not None:
                family = connection.execute(sa.text(sql.load("catalog/structure_family")), {"id": node}).scalar()
            if node is None or family != "container":
                raise LocateError(f"--parent {parent}: no such container in the catalog", where=parent)
            if target.dialect == "sqlite":
                keys, documents = _sqlite_hamiltonians(target.sqlite_path, statement, [node, *values])
            else:
                keys, documents = _postgresql_hamiltonians(target.url, statement, [node, *values])
    finally:
        eng.dispose()
    return locator_table(keys, documents, one_key_order=target.dialect == "postgresql")


# Tiled's adapter: ==, != and the comparisons all go through its binary_op.
_SQL_OPERATORS = {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _query_parts(query: Any) -> tuple[list[str], str, Any]:
    """A parsed query as (key path, operator name, value)."""
    from tiled.queries import Comparison, Eq, NotEq

    if isinstance(query, Eq):
        op = "eq"
    elif isinstance(query, NotEq):
        op = "ne"
    elif isinstance(query, Comparison):
        op = str(getattr(query.operator, "value", query.operator))
    else:  # parse_query makes no other kind
        raise LocateError(f"query {query!r}: not a Key comparison")
    return query.key.split("."), op, query.value


def catalog_conditions(parsed: list[Any], dialect: str) -> tuple[str, list[Any]]:
    """The WHERE conditions (``" AND ..."`` each) and their bound values for
    ``parsed``, exactly as Tiled's catalog adapter (``binary_op``) writes them:
    on SQLite ``JSON_EXTRACT(nodes.metadata, '$."a"."b"') OP value``; on
    PostgreSQL ``metadata @> {"a": {"b": value}}`` for ``==`` and
    ``(metadata #> '{a,b}') OP value::jsonb`` otherwise.

    Raises:
        LocateError: for ``null`` on SQLite, which Tiled's adapter cannot search for.
    """
    from manifest_broker import queries as sql

    text, values = "", list[Any]()
    for query in parsed:
        keys, op, value = _query_parts(query)
        # libpq's $n: the parent's id is $1, so a condition's first value is $(2 + bound so far)
        number = 2 + len(values)
        if dialect == "sqlite":
            if value is None:
                raise LocateError(f"query {query.key} {op} null: a SQLite catalog cannot search for null")
            if isinstance(value, (list, dict)):
                raise LocateError(
                    f"query {query.key} {op} {json.dumps(value)}: a SQLite catalog cannot compare a list or an object"
                )
            # SQLAlchemy's JSON path for SQLite, as Tiled's Node.metadata_[keys] renders it
            path = "$" + "".join(f'."{k}"' for k in keys)
            condition = _statement_body(sql.load("locate/condition_compare", "sqlite")).format(op=_SQL_OPERATORS[op])
            values += [path, int(value) if isinstance(value, bool) else value]
        elif op == "eq":
            document: Any = value
            for k in reversed(keys):
                document = {k: document}
            condition = _statement_body(sql.load("locate/condition_contains", "postgresql")).format(document=number)
            values.append(json.dumps(document))
        else:
            condition = _statement_body(sql.load("locate/condition_compare", "postgresql")).format(
                op=_SQL_OPERATORS[op], path=number, value=number + 1
            )
            values += [keys, json.dumps(value)]
        text += " AND " + condition
    return text, values


def _statement_body(text: str) -> str:
    """A SQL file's text without its comment lines, on one line."""
    return " ".join(line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("--"))


def _hamiltonians_statement(parsed: list[Any], dialect: str) -> tuple[str, list[Any]]:
    from manifest_broker import queries as sql

    conditions, values = catalog_conditions(parsed, dialect)
    # without its comments: a driver may take a "?" or "$1" in one for a parameter
    return _statement_body(sql.load("locate/hamiltonians", dialect)).format(conditions=conditions), values


def _sqlite_hamiltonians(path: Any, statement: str, values: list[Any]) -> tuple[pa.Array, pa.Array]:
    """Keys and metadata texts of the matching children, read through ADBC's SQLite
    driver straight into Arrow columns (read-only; no row becomes a Python object)."""
    from urllib.parse import quote

    import adbc_driver_sqlite.dbapi as adbc

    with adbc.connect(f"file:{quote(str(path))}?mode=ro") as connection, connection.cursor() as cursor:
        cursor.execute(statement, values)
        return _key_document_columns(cursor.fetch_arrow_table())


def _postgresql_hamiltonians(url: str, statement: str, values: list[Any]) -> tuple[pa.Array, pa.Array]:
    """:func:`_sqlite_hamiltonians` on PostgreSQL, through ADBC's PostgreSQL driver:
    libpq's binary COPY straight into Arrow, no row a Python tuple (10^6 Hamiltonians:
    7.8 CPU seconds for the whole command against 12.3 through psycopg); a list binds
    as ``text[]``."""
    import adbc_driver_postgresql.dbapi as adbc
    import sqlalchemy as sa

    # libpq takes the URL without SQLAlchemy's driver name; a password given in
    # the URL stays in it, one given through the environment stays there
    uri = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with adbc.connect(uri) as connection, connection.cursor() as cursor:
        cursor.execute(statement, values)
        return _key_document_columns(cursor.fetch_arrow_table())


def _key_document_columns(table: pa.Table) -> tuple[pa.Array, pa.Array]:
    """The keys as one string array; the documents as one large_string array, whose
    data buffer holds them end to end (large: 10^7 documents pass 2 GiB)."""
    keys = table.column(0).cast(pa.string()).combine_chunks()
    return keys, table.column(1).cast(pa.large_string()).combine_chunks()


def locator_table(keys: pa.Array, documents: pa.Array, *, one_key_order: bool = False) -> pa.Table:
    """The locator rows of Hamiltonians given as keys and metadata JSON texts: the
    table :func:`locator_rows` and :func:`_table` make of the parsed documents.

    Arrow's JSON reader parses every document at once when they all have the same
    keys (the shape ``broker ingest`` writes); then the rows are built column by
    column. Any other shape goes row by row through :func:`locator_rows`.

    Args:
        keys: The Hamiltonians' keys.
        documents: Their metadata as JSON texts, each ended by a newline or not.
        one_key_order: Documents with the same keys have them in the same order
            (PostgreSQL's jsonb: by length, then bytes), so the order of the
            locator keys, which orders each Hamiltonian's rows, needs no check.
    """
    if len(keys) == 0:
        return _table([])
    try:
        table = _uniform_locator_table(keys, documents, one_key_order)
    except (pa.ArrowException, ValueError):
        table = None
    if table is not None:
        return table
    import orjson

    rows: list[dict] = []
    for key, document in zip(keys.to_pylist(), documents.to_pylist()):
        rows.extend(locator_rows(key, orjson.loads(document) if document else {}))
    return _table(rows)


def _uniform_locator_table(keys: pa.Array, documents: pa.Array, one_key_order: bool) -> pa.Table | None:
    """:func:`locator_table` column by column, or None when the documents do not all
    have the first one's keys, with values, with the locator keys in its order (what
    ``Table.from_pylist`` would make of them differs then)."""
    import orjson
    import pyarrow.compute as pc
    import pyarrow.json as pj

    first = orjson.loads(documents[0].as_py() or "{}")
    if not isinstance(first, dict):
        return None
    names = list(first)
    if documents.null_count or len(set(names)) != len(names):
        return None
    # the documents end with a newline (sql/locate/hamiltonians): their bytes end to
    # end are newline-delimited JSON as they are
    text = documents.cast(pa.large_string())
    if not pc.all(pc.ends_with(text, "\n")).as_py():
        text = pc.binary_join_element_wise(text, pa.scalar("", pa.large_string()), pa.scalar("\n", pa.large_string()))
    buffer = text.buffers()[2]
    offsets = np.frombuffer(text.buffers()[1], np.int64, len(text) + 1, text.offset * 8)
    data = buffer[int(offsets[0]) : int(offsets[-1])] if buffer is not None else b""
    parsed = pj.read_json(pa.BufferReader(data))
    if any(_temporal(f.type) for f in parsed.schema):
        # Arrow takes text that looks like a time for a timestamp; Python keeps text
        strings = pa.schema([pa.field(f.name, pa.string()) for f in parsed.schema if _temporal(f.type)])
        parsed = pj.read_json(
            pa.BufferReader(data),
            parse_options=pj.ParseOptions(explicit_schema=strings, unexpected_field_behavior="infer"),
        )
        if any(_temporal(f.type) for f in parsed.schema):
            return None
    if parsed.num_rows != len(keys) or sorted(parsed.column_names) != sorted(names):
        return None
    if any(parsed.column(n).null_count for n in names):
        return None
    types = [n[len("path_") :] for n in names if n.startswith("path_")]
    if len(types) > 1 and not one_key_order:
        # every document has its locator keys in the first one's order (the order of
        # its rows). With no nested value, '"path_x":' is that key and nothing else
        # (a quote inside a JSON string is escaped).
        if any(pa.types.is_nested(f.type) for f in parsed.schema):
            return None
        at = [pc.find_substring(documents, orjson.dumps(f"path_{t}").decode() + ":") for t in types]
        for before, after in zip(at, at[1:]):
            if pc.min(before).as_py() < 0 or not pc.all(pc.less(before, after)).as_py():
                return None
    parameters = [n for n in names if n != "huid" and not n.startswith(LOCATOR_PREFIXES)]
    renamed = [f"param_{n}" if n in LOCATOR_COLUMNS else n for n in parameters]
    if len(set(renamed)) != len(renamed) or set(renamed) & set(LOCATOR_COLUMNS):
        return None
    if not types:
        return _table([])
    n = len(keys)
    huid = parsed.column("huid") if "huid" in names else pa.nulls(n)
    pieces = []
    for t in types:
        dataset = parsed.column(f"dataset_{t}") if f"dataset_{t}" in names else pa.nulls(n)
        index = parsed.column(f"index_{t}") if f"index_{t}" in names else pa.nulls(n)
        columns = [huid, keys, parsed.column(f"path_{t}"), dataset, index, *(parsed.column(p) for p in parameters)]
        pieces.append(pa.table(columns, names=[c for c in LOCATOR_COLUMNS if c != "type"] + renamed))
    # one column type across the types, as from_pylist infers it over all the rows
    schema = pa.unify_schemas([p.schema for p in pieces], promote_options="permissive")
    for p in pieces:
        for field, other in zip(schema, p.schema):
            if field.type != other.type and other.type != pa.null():
                return None
    combined = pa.concat_tables([p.cast(schema) for p in pieces])
    # rows Hamiltonian by Hamiltonian, its artifacts in its locator keys' order
    order = (np.arange(len(types))[None, :] * n + np.arange(n)[:, None]).ravel()
    table = combined.take(pa.array(order))
    kinds = pa.DictionaryArray.from_arrays(pa.array(np.tile(np.arange(len(types), dtype=np.int32), n)), types)
    table = table.add_column(LOCATOR_COLUMNS.index("type"), "type", kinds.cast(pa.string()))
    if table.schema.field("index").type == pa.null():
        table = table.set_column(table.schema.get_field_index("index"), "index", pa.nulls(table.num_rows, pa.int64()))
    return table


def _temporal(t: pa.DataType) -> bool:
    if pa.types.is_temporal(t):
        return True
    if pa.types.is_struct(t):
        return any(_temporal(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _temporal(t.value_type)
    return False


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
