"""`broker locate` against Tiled's own search, over many queries: straight from the
catalog (SQLite and PostgreSQL, the SQL of sql/locate/) and through a stock server,
the rows, their order and their column types are the ones `client.search(...)` gives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manifest_broker.catalog import modea
from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.serve import running_server
from tests.pg import new_database
from tests.reliability.conftest import batched_dataset

pytestmark = pytest.mark.integration

N = 30
LATTICES = ["square", "kagome", "chain"]
# parameter -> values a query compares it with (inside, at and outside its range)
VALUES: dict[str, list[Any]] = {
    "J1": [-1.0, 0.0, 0.5, 0.51724, 1.0, 2],
    "sites": [0, 2, 4, 7, 2.5],
    "lattice": ["square", "kagome", "none"],
    "Δgap(meV)": [-0.5, 0.0, 0.3, 5],
}
OPERATORS = ["==", "!=", "<", "<=", ">", ">="]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Hamiltonians with float, int and text parameters (one key with a non-ASCII letter and
    parentheses), ingested into a catalog of each kind and served; yields the URL
    and the catalog."""
    root = tmp_path_factory.mktemp(f"locate-{request.param}")
    base, manifests = root / "data", root / "m"
    base.mkdir()
    ham, art = batched_dataset(base, manifests, "mx", N)
    table = pq.read_table(ham)
    table = table.append_column("sites", pa.array([i % 5 for i in range(N)], pa.int64()))
    table = table.append_column("lattice", pa.array([LATTICES[i % 3] for i in range(N)]))
    table = table.append_column("Δgap(meV)", pa.array(np.round(np.linspace(-1, 1, N), 3)))
    pq.write_table(table, ham)
    if request.param == "sqlite":
        catalog = str(root / "c.db")
    else:
        catalog = new_database(request.getfixturevalue("postgres_server"))
    ingest([ManifestPair(ham, art)], base, catalog, parent="lab")
    with running_server(catalog, base, log=root / "serve.log") as url:
        yield url, catalog


def _tiled_search(node: Any, queries: list[str]) -> pa.Table:
    """The locator table of Tiled's own search: ``client.search(...)``, full nodes."""
    results = node
    for query in queries:
        results = results.search(modea.parse_query(query))
    rows = [
        row
        for key, child in results.items()
        if child.structure_family == "container"
        for row in modea.locator_rows(key, dict(child.metadata))
    ]
    return modea._table(rows)


def _assert_same(served: tuple[str, str], queries: list[str]) -> pa.Table:
    from tiled.client import from_uri

    url, catalog = served
    node = from_uri(url, api_key="secret")["lab"]
    want = _tiled_search(node, queries)
    from_catalog = modea.locate_in_catalog(catalog, queries, parent="lab")
    through_server = modea.locate(node, queries)
    assert from_catalog.schema == want.schema and from_catalog.to_pylist() == want.to_pylist(), queries
    assert through_server.schema == want.schema and through_server.to_pylist() == want.to_pylist(), queries
    return want


@pytest.mark.parametrize("key", list(VALUES))
def test_every_operator_on_every_parameter_type(served: tuple[str, str], key: str) -> None:
    found = 0
    for op in OPERATORS:
        for value in VALUES[key]:
            if isinstance(value, str) and op not in ("==", "!="):
                continue  # parse_query refuses to order text
            text = f'"{value}"' if isinstance(value, str) else str(value)
            found += _assert_same(served, [f"{key}{op}{text}"]).num_rows
    assert found > 0


def test_queries_are_anded_and_an_empty_answer_has_the_locator_columns(served: tuple[str, str]) -> None:
    both = _assert_same(served, ["J1>=0.25", 'lattice=="kagome"', "sites!=2"])
    assert 0 < both.num_rows < 2 * N
    none = _assert_same(served, ["J1>0.5", "J1<0.5"])
    assert none.num_rows == 0 and none.column_names == modea.LOCATOR_COLUMNS
    assert _assert_same(served, []).num_rows == 2 * N


_query = st.sampled_from(list(VALUES)).flatmap(
    lambda key: st.tuples(
        st.just(key),
        st.sampled_from(OPERATORS if not isinstance(VALUES[key][0], str) else ["==", "!="]),
        st.sampled_from(VALUES[key])
        | (st.floats(-2, 2).map(lambda v: round(v, 2)) if key != "lattice" else st.nothing()),
    )
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_query, max_size=3))
def test_generated_queries_give_tiled_search_rows(served: tuple[str, str], drawn: list[tuple[str, str, Any]]) -> None:
    _assert_same(served, [f'{k}{op}"{v}"' if isinstance(v, str) else f"{k}{op}{v}" for k, op, v in drawn])


def test_what_tiled_cannot_search_is_one_error_both_ways(served: tuple[str, str]) -> None:
    """A list, an object or null that Tiled's server answers with 500 (tiled.client
    gets the same) is one error through the server; from a SQLite catalog, where
    Tiled's adapter cannot bind them, it is refused before any SQL."""
    import json as jsonlib

    from typer.testing import CliRunner

    from manifest_broker.commandline.main import app

    url, catalog = served
    runner = CliRunner(env={"TILED_API_KEY": "secret"})
    for query in ["J1==[1]", 'J1=={"a":1}']:
        through_server = runner.invoke(app, ["locate", query, "--url", url, "--parent", "lab", "--json"])
        if through_server.exit_code != 0:  # PostgreSQL's server answers these; SQLite's cannot
            assert through_server.exit_code == 1, through_server.output
            assert "the server answered 500" in jsonlib.loads(through_server.stdout)["error"]
        from_catalog = runner.invoke(app, ["locate", query, "--catalog", catalog, "--parent", "lab", "--json"])
        if catalog.startswith("postgresql"):
            assert from_catalog.exit_code == 0, from_catalog.output
        else:
            assert from_catalog.exit_code == 1, from_catalog.output
            assert "cannot compare a list or an object" in jsonlib.loads(from_catalog.stdout)["error"]


def test_a_parent_that_is_an_array_is_refused_through_the_server(served: tuple[str, str]) -> None:
    from tiled.client import from_uri
    from typer.testing import CliRunner

    from manifest_broker.commandline.main import app

    url, _ = served
    lab = from_uri(url, api_key="secret")["lab"]
    hamiltonian = next(iter(lab))
    array = next(iter(lab[hamiltonian]))
    result = CliRunner(env={"TILED_API_KEY": "secret"}).invoke(
        app, ["locate", "J1>0", "--url", url, "--parent", f"lab/{hamiltonian}/{array}"]
    )
    assert result.exit_code == 1 and "not a container on the server" in result.output, result.output
