"""`modea.locator_table`, the column-by-column build of `broker locate --catalog`,
gives the table the row-by-row path (`locator_rows`, `Table.from_pylist`) gives,
whatever shape the metadata documents have."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from manifest_broker.catalog import modea


def _row_by_row(keys: list[str], documents: list[dict[str, Any]]) -> pa.Table:
    return modea._table([row for k, d in zip(keys, documents) for row in modea.locator_rows(k, d)])


def _both(documents: list[dict[str, Any]]) -> tuple[pa.Table, pa.Table]:
    keys = [f"H{i}" for i in range(len(documents))]
    texts = pa.array([json.dumps(d) for d in documents], pa.string())
    fast = modea.locator_table(pa.array(keys, pa.string()), texts)
    # as sql/locate/hamiltonians gives them: each text ended by a newline
    lined = modea.locator_table(pa.array(keys, pa.string()), pa.array([json.dumps(d) + "\n" for d in documents]))
    assert lined.equals(fast) and lined.schema == fast.schema
    return fast, _row_by_row(keys, documents)


def _hamiltonian(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "huid": f"h{i}",
        "J1": i / 7,
        "n": i,
        "path_rixs": "/d/a.h5",
        "dataset_rixs": "/spectra",
        "index_rixs": i,
        "path_xas": "/d/a.h5",
        "dataset_xas": "/xas",
        "index_xas": i,
        **extra,
    }


def test_ingest_shaped_documents_are_built_column_by_column() -> None:
    documents = [_hamiltonian(i) for i in range(50)]
    fast, slow = _both(documents)
    assert fast.equals(slow) and fast.schema == slow.schema and fast.num_rows == 100
    keys = pa.array([f"H{i}" for i in range(50)])
    assert modea._uniform_locator_table(keys, pa.array([json.dumps(d) for d in documents]), False) is not None


def test_odd_shapes_give_the_row_by_row_table() -> None:
    cases = [
        [_hamiltonian(i, when="2020-01-01 00:00:00") for i in range(3)],  # text Arrow would read as a time
        [_hamiltonian(0), {**dict(reversed(list(_hamiltonian(1).items())))}],  # locator keys in another order
        [_hamiltonian(0), _hamiltonian(1, extra=1.5)],  # a key the first document lacks
        [_hamiltonian(0, extra=None), _hamiltonian(1, extra=2)],  # a null
        [_hamiltonian(0, nested={"path_xas": 1}), _hamiltonian(1, nested={"path_xas": 2})],
        [_hamiltonian(0, type="t", key="k", param_type="p")],  # parameters named like locator columns
        [{"huid": "h", "J1": 1.0}],  # no locator at all
        [{"path_rixs": "/a.h5", "x": 1}, {"path_rixs": "/b.h5", "x": 2.5}],  # no huid, int then float
    ]
    for documents in cases:
        fast, slow = _both(documents)
        assert fast.to_pylist() == slow.to_pylist() and fast.schema == slow.schema, documents


_values = st.one_of(st.integers(-5, 5), st.floats(-2, 2, allow_nan=False), st.text(max_size=5), st.booleans())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(["J1", "n", "label", "huid", "path_a", "dataset_a", "index_a"]), _values),
        min_size=1,
        max_size=6,
    )
)
def test_any_documents_give_the_row_by_row_table(documents: list[dict[str, Any]]) -> None:
    keys = [f"H{i}" for i in range(len(documents))]
    try:
        slow = _row_by_row(keys, documents)
    except (pa.ArrowException, ValueError):  # from_pylist refuses mixed types: so may the fast path
        return
    fast = modea.locator_table(pa.array(keys), pa.array([json.dumps(d) for d in documents]))
    assert fast.to_pylist() == slow.to_pylist() and fast.schema == slow.schema
