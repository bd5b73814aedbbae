"""One JSON document whatever the payload: Arrow tables (a million contract findings)
are streamed batch by batch and read back as the rows they hold."""

from __future__ import annotations

import io
import json
import sys

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from manifest_broker import render

_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.text(max_size=20),
    st.lists(st.integers(0, 9), max_size=3),
)
_ROWS = st.lists(
    st.fixed_dictionaries(
        {"rule": st.text(max_size=10), "row": st.none() | st.integers(0, 10**6), "message": st.text(max_size=40)}
    ),
    max_size=25,
)


def _printed(payload: dict) -> str:
    buffer, stdout = io.StringIO(), sys.stdout
    sys.stdout = buffer
    try:
        render.print_json(payload)
    finally:
        sys.stdout = stdout
    return buffer.getvalue()


@settings(max_examples=200, deadline=None)
@given(
    rest=st.dictionaries(st.text(min_size=1, max_size=8), _VALUES, max_size=4), rows=_ROWS, empty_first=st.booleans()
)
def test_streamed_tables_read_back_as_their_rows(rest: dict, rows: list[dict], empty_first: bool) -> None:
    schema = pa.schema([("rule", pa.string()), ("row", pa.int64()), ("message", pa.string())])
    tables = {"findings": pa.Table.from_pylist(rows, schema=schema)}
    if empty_first:
        tables = {"nothing": schema.empty_table(), **tables}
    rest = {k: v for k, v in rest.items() if k not in tables}
    document = json.loads(_printed({**rest, **tables}))
    assert document == {**rest, **{k: t.to_pylist() for k, t in tables.items()}}


def test_many_batches_are_one_array() -> None:
    table = pa.table({"i": list(range(25_001))})
    assert json.loads(_printed({"ok": False, "findings": table}))["findings"] == [{"i": i} for i in range(25_001)]
