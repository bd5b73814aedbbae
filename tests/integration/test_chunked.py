"""The check and the plan chunk by chunk give what they give whole (issue #25).

A facility-sized dataset is checked a chunk of manifest rows at a time (its rows
kept in DuckDB's database file, not in memory) and planned a chunk of Hamiltonians
at a time (the artifacts sorted into one file per chunk): the findings and the
catalog written must be exactly those of one chunk. The inputs are written by
hand with pyarrow and h5py (not by the generators), the artifacts in any order.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manifest_broker.catalog import ingest as ingest_module
from manifest_broker.catalog import plan as plan_module
from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestError, ManifestPair
from manifest_broker.errors import BrokerError
from tests.integration.catalog_dump import dump

BATCH = 12  # Hamiltonians in the batched file


def _data(base: Path) -> None:
    base.mkdir(parents=True, exist_ok=True)
    with h5py.File(base / "batch.h5", "w") as f:
        f.create_dataset("spectra", data=np.arange(BATCH * 4, dtype="f8").reshape(BATCH, 4)).attrs["units"] = "counts"
        f.create_dataset("xas", data=np.arange(BATCH * 3, dtype="f4").reshape(BATCH, 3))
    for i in range(3):
        with h5py.File(base / f"single_{i}.h5", "w") as f:
            f.create_dataset("image", data=np.full((2, 2), i, dtype="i4"))


def _manifests(folder: Path, order: list[int], name: str = "hand") -> ManifestPair:
    """BATCH Hamiltonians with two batched artifacts each, three with a file of their
    own besides; artifact rows in ``order`` (a permutation)."""
    folder.mkdir(parents=True, exist_ok=True)
    huids = [f"h{i:02d}" for i in range(BATCH)]
    pq.write_table(
        pa.table(
            {
                "huid": huids,
                "key": [f"H{i:02d}" for i in range(BATCH)],
                "J": [0.5 * i for i in range(BATCH)],
                "label": [f"sample {i % 4}" for i in range(BATCH)],
            }
        ),
        folder / f"{name}_hamiltonians.parquet",
    )
    rows = [(h, "rixs", "batch.h5", "/spectra", i, "from the manifest") for i, h in enumerate(huids)]
    rows += [(h, "xas", "batch.h5", "/xas", i, None) for i, h in enumerate(huids)]
    rows += [(huids[3 * i], "image", f"single_{i}.h5", "/image", None, None) for i in range(3)]
    rows = [rows[i] for i in order]
    columns = list(zip(*rows))
    pq.write_table(
        pa.table(
            {
                "huid": columns[0],
                "type": columns[1],
                "file": columns[2],
                "dataset": columns[3],
                "index": pa.array(columns[4], pa.int64()),
                "units": pa.array(columns[5], pa.string()),
            }
        ),
        folder / f"{name}_artifacts.parquet",
        row_group_size=5,  # row groups that do not line up with any chunk
    )
    return ManifestPair(folder / f"{name}_hamiltonians.parquet", folder / f"{name}_artifacts.parquet")


ARTIFACTS = 2 * BATCH + 3


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), chunk=st.integers(1, BATCH - 1))
def test_an_ingest_in_chunks_writes_the_catalog_a_whole_one_writes(
    seed: int, chunk: int, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path_factory.mktemp("chunked")
    _data(root / "data")
    order = list(range(ARTIFACTS))
    random.Random(seed).shuffle(order)
    pair = _manifests(root / "manifests", order)

    whole = ingest([pair], root / "data", str(root / "whole.db"), parent="lab", use_cache=False)
    with monkeypatch.context() as patch:  # each example on its own (hypothesis runs them in one call)
        patch.setattr(ingest_module, "PLAN_CHUNK", chunk)
        chunked = ingest([pair], root / "data", str(root / "chunked.db"), parent="lab", use_cache=False)

    assert whole.plan is not None and chunked.plan is None  # the second one did go chunk by chunk
    assert chunked.result.created_hamiltonians == whole.result.created_hamiltonians == BATCH
    assert chunked.result.created_arrays == whole.result.created_arrays == ARTIFACTS
    assert dump(str(root / "chunked.db")) == dump(str(root / "whole.db"))


def test_an_ingest_in_chunks_on_postgresql_writes_the_catalog_a_whole_one_writes(
    tmp_path: Path, postgres_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.pg import new_database

    _data(tmp_path / "data")
    pair = _manifests(tmp_path / "manifests", list(reversed(range(ARTIFACTS))))
    whole = new_database(postgres_server)
    ingest([pair], tmp_path / "data", whole, parent="lab", use_cache=False)
    monkeypatch.setattr(ingest_module, "PLAN_CHUNK", 5)
    chunked = new_database(postgres_server)
    run = ingest([pair], tmp_path / "data", chunked, parent="lab", use_cache=False)
    assert run.plan is None and run.result.created_arrays == ARTIFACTS
    assert dump(chunked) == dump(whole)


@pytest.mark.parametrize("chunk", [3, 1000], ids=["in chunks", "whole"])
@pytest.mark.parametrize("which", ["hamiltonians", "artifacts"])
def test_a_manifest_changed_after_the_check_is_refused_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, which: str
) -> None:
    _data(tmp_path / "data")
    pair = _manifests(tmp_path / "manifests", list(range(ARTIFACTS)))
    changed = pair.hamiltonians if which == "hamiltonians" else pair.artifacts
    monkeypatch.setattr(ingest_module, "PLAN_CHUNK", chunk)

    def swap(stage: str, done: int, total: int) -> None:
        # Between the check and the plan: another table under the same name.
        if stage == "planning" and done == 0:
            table = pq.read_table(changed)
            pq.write_table(table.slice(1), changed)

    catalog = tmp_path / "c.db"
    with pytest.raises(ManifestError, match="changed since it was checked"):
        ingest([pair], tmp_path / "data", str(catalog), parent="lab", use_cache=False, progress=swap)
    assert not catalog.exists() or [n for n in dump(str(catalog))["nodes"] if n[0] != "/"] == []


# Values that each make a rule speak: duplicates, missing, bad names, non-finite and
# out-of-range numbers.
keys = st.sampled_from(["K0", "K1", "K2", "K1", "", None, "a/b", "caf\u00e9", "cafe\u0301"])
huids = st.sampled_from(["h0", "h1", "h2", "h3", "h1", "", None])
numbers = st.sampled_from([0.0, 1.5, -2.0, math.nan, math.inf])
types = st.sampled_from(["a", "b", "a", "", "c/d"])
files = st.sampled_from(["batch.h5", "missing.h5", "../out.h5", "single_0.h5"])
datasets = st.sampled_from(["/spectra", "/xas", "/image", "/nothing"])
indexes = st.sampled_from([None, 0, 1, 3, BATCH + 5])


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    hams=st.lists(st.tuples(huids, keys, numbers, st.sampled_from([2**70, 7])), min_size=0, max_size=9),
    arts=st.lists(st.tuples(huids, types, files, datasets, indexes), min_size=0, max_size=9),
    chunk=st.integers(1, 4),
)
def test_a_check_in_chunks_finds_what_a_whole_check_finds(
    hams: list[tuple], arts: list[tuple], chunk: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("findings")
    _data(root / "data")
    folder = root / "manifests"
    folder.mkdir()
    h = list(zip(*hams)) if hams else [[], [], [], []]
    a = list(zip(*arts)) if arts else [[], [], [], [], []]
    pq.write_table(
        pa.table(
            {
                "huid": pa.array(h[0], pa.string()),
                "key": pa.array(h[1], pa.string()),
                "J": pa.array(h[2], pa.float64()),
                "big": pa.array([str(v) for v in h[3]], pa.string()).cast(pa.decimal128(38, 0)),
            }
        ),
        folder / "x_hamiltonians.parquet",
        row_group_size=3,
    )
    pq.write_table(
        pa.table(
            {
                "huid": pa.array(a[0], pa.string()),
                "type": pa.array(a[1], pa.string()),
                "file": pa.array(a[2], pa.string()),
                "dataset": pa.array(a[3], pa.string()),
                "index": pa.array(a[4], pa.int64()),
            }
        ),
        folder / "x_artifacts.parquet",
        row_group_size=2,
    )
    pair = ManifestPair(folder / "x_hamiltonians.parquet", folder / "x_artifacts.parquet")
    whole = check_manifests([pair], root / "data", use_cache=False)
    chunked = check_manifests([pair], root / "data", use_cache=False, chunk_rows=chunk)
    assert chunked.findings.to_pylist() == whole.findings.to_pylist()
    assert (chunked.hamiltonian_rows, chunked.artifact_rows) == (whole.hamiltonian_rows, whole.artifact_rows)


def test_the_check_leaves_no_database_file_behind(tmp_path: Path) -> None:
    from manifest_broker import queries

    _data(tmp_path / "data")
    pair = _manifests(tmp_path / "manifests", list(range(ARTIFACTS)))
    before = set(os.listdir(queries.spill_directory())) if os.path.isdir(queries.spill_directory()) else set()
    report = check_manifests([pair], tmp_path / "data", use_cache=False, chunk_rows=4)
    assert report.ok, report.findings.to_pylist()
    assert set(os.listdir(queries.spill_directory())) - before == set()


def test_a_manifest_rewritten_with_its_old_modification_time_is_still_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _data(tmp_path / "data")
    pair = _manifests(tmp_path / "manifests", list(range(ARTIFACTS)))
    monkeypatch.setattr(ingest_module, "PLAN_CHUNK", 4)

    def rewrite(stage: str, done: int, total: int) -> None:
        if stage == "planning" and done == 0:
            before = os.stat(pair.artifacts)
            with open(pair.artifacts, "r+b") as f:  # same size, same bytes even
                first = f.read(1)
                f.seek(0)
                f.write(first)
            os.utime(pair.artifacts, ns=(before.st_atime_ns, before.st_mtime_ns))

    with pytest.raises(ManifestError, match="changed since it was checked"):
        ingest([pair], tmp_path / "data", str(tmp_path / "c.db"), parent="lab", use_cache=False, progress=rewrite)


def test_spill_folders_of_killed_processes_are_swept(tmp_path: Path) -> None:
    import subprocess
    import sys

    from manifest_broker import queries

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, alive = int(gone.stdout), os.getpid()
    old = 2 * queries.STALE_SPILL_SECONDS
    folders = {}
    for name, pid, age in [("dead-old", dead, old), ("dead-new", dead, 0), ("alive-old", alive, old)]:
        folder = tmp_path / name / f"manifest-broker-duckdb-{pid}"
        folder.mkdir(parents=True)
        (folder / "check-x.duckdb").write_bytes(b"x")
        stamp = folder.stat().st_mtime - age
        os.utime(folder, (stamp, stamp))
        queries._sweep_spill_directories(str(tmp_path / name))
        folders[name] = folder.exists()
    assert folders == {"dead-old": False, "dead-new": True, "alive-old": True}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    huids=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=30, unique=True),
    picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=60),
    chunk=st.integers(1, 8),
)
def test_the_owners_join_by_hash_gives_each_artifact_its_hamiltonians_chunk(
    huids: list[str], picks: list[int], chunk: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """plan/artifact_owners (joined on the huids' 64-bit hash) and its exact fallback
    by string give every artifact, in artifact row order, the plan chunk of its
    Hamiltonian's row, over generated huids (any Unicode, look-alike spellings) and
    artifacts in any order."""
    from manifest_broker import queries

    folder = tmp_path_factory.mktemp("owners")
    owned = [huids[p % len(huids)] for p in picks]
    pq.write_table(pa.table({"huid": huids}), folder / "h.parquet", row_group_size=3)
    pq.write_table(pa.table({"huid": owned}), folder / "a.parquet", row_group_size=4)
    expected = [huids.index(h) // chunk for h in owned]
    params = {
        "hamiltonian_huids": str(plan_module._huids(folder / "h.parquet", folder / "h_huids.parquet")),
        "artifact_huids": str(plan_module._huids(folder / "a.parquet", folder / "a_huids.parquet")),
        "chunk": chunk,
    }
    con = queries.connect(stage=True)
    try:
        for statement in ("plan/artifact_owners", "plan/artifact_owners_by_huid"):
            out = folder / f"{statement.split('/')[1]}.parquet"
            con.execute(queries.load(statement), {**params, "owners": str(out)})
            assert pq.read_table(out).column("chunk").to_pylist() == expected, statement
        repeat = con.execute(
            queries.load("plan/huid_hashes_repeat"), {"hamiltonian_huids": params["hamiltonian_huids"]}
        )
        assert repeat.fetchone() == (False,)
    finally:
        con.close()


def test_huids_sharing_a_hash_are_planned_by_string(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two huids with one 64-bit hash (about 3 x 10^-7 at 3.3 x 10^6 Hamiltonians,
    so made here by having plan/huid_hashes_repeat say so): the plan joins by string
    and writes the catalog the hash join writes."""
    from manifest_broker import queries

    _data(tmp_path / "data")
    pair = _manifests(tmp_path / "manifests", list(reversed(range(ARTIFACTS))))
    monkeypatch.setattr(ingest_module, "PLAN_CHUNK", 5)
    by_hash = ingest([pair], tmp_path / "data", str(tmp_path / "hash.db"), parent="lab", use_cache=False)
    real_load, asked = queries.load, list[str]()

    def load(name: str, dialect: str | None = None) -> str:
        asked.append(name)
        return (
            "SELECT $hamiltonian_huids IS NOT NULL AS repeat"
            if name == "plan/huid_hashes_repeat"
            else real_load(name, dialect)
        )

    monkeypatch.setattr(queries, "load", load)
    by_string = ingest([pair], tmp_path / "data", str(tmp_path / "string.db"), parent="lab", use_cache=False)
    assert "plan/artifact_owners_by_huid" in asked and "plan/artifact_owners" not in asked
    assert by_hash.result.created_arrays == by_string.result.created_arrays == ARTIFACTS
    assert dump(str(tmp_path / "string.db")) == dump(str(tmp_path / "hash.db"))


def test_an_owners_join_past_the_stage_limit_runs_again_with_the_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The owners' join out of DuckDB's stage limit (3.3 x 10^7 Hamiltonians did;
    here a statement that cannot fit stands in for its first run) runs again with
    the host's limit, and the catalog is the one a single run writes."""
    import duckdb

    from manifest_broker import queries

    _data(tmp_path / "data")
    pair = _manifests(tmp_path / "manifests", list(range(ARTIFACTS)))
    monkeypatch.setattr(ingest_module, "PLAN_CHUNK", 4)
    once = ingest([pair], tmp_path / "data", str(tmp_path / "once.db"), parent="lab", use_cache=False)
    real_load, runs = queries.load, list[str]()

    def load(name: str, dialect: str | None = None) -> str:
        if name != "plan/artifact_owners":
            return real_load(name, dialect)
        runs.append(name)
        if len(runs) > 1:
            return real_load(name, dialect)
        # a list of 10^8 integers (800 MB) in one value: DuckDB cannot spill it
        return (
            "COPY (SELECT list(i) AS chunk FROM range(100000000) t(i)"
            " WHERE $chunk > 0 OR $hamiltonian_huids <> $artifact_huids) TO $owners (FORMAT parquet)"
        )

    monkeypatch.setattr(queries, "load", load)
    with pytest.raises(duckdb.OutOfMemoryException):  # what the join's limit does to it
        with queries.connect(stage=True, limit=plan_module.OWNERS_MEMORY_LIMIT) as con:
            con.execute("SELECT list(i) FROM range(100000000) t(i)").fetchall()
    again = ingest([pair], tmp_path / "data", str(tmp_path / "again.db"), parent="lab", use_cache=False)
    assert len(runs) == 2
    assert once.result.created_arrays == again.result.created_arrays == ARTIFACTS
    assert dump(str(tmp_path / "again.db")) == dump(str(tmp_path / "once.db"))


@pytest.mark.parametrize("which", ["hamiltonians", "artifacts"])
def test_a_column_named_huid_in_other_capitals_does_not_stand_for_huid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    """A metadata column HUID (or Huid) before huid, holding the huids in another
    order: DuckDB's Parquet reader takes names without regard to case, so the
    owners' join once read that column and planned artifacts into the wrong chunk,
    lost with exit 0 (an outside tester's find). The catalog written chunk by chunk is
    the one written whole."""
    _data(tmp_path / "data")
    pair = _manifests(tmp_path / "manifests", list(reversed(range(ARTIFACTS))))
    path = pair.hamiltonians if which == "hamiltonians" else pair.artifacts
    table = pq.read_table(path)
    shuffled = table["huid"].to_pylist()
    random.Random(7).shuffle(shuffled)
    name = "HUID" if which == "hamiltonians" else "Huid"
    pq.write_table(pa.table({name: shuffled, **{n: table[n] for n in table.column_names}}), path, row_group_size=5)

    whole = ingest([pair], tmp_path / "data", str(tmp_path / "whole.db"), parent="lab", use_cache=False)
    monkeypatch.setattr(ingest_module, "PLAN_CHUNK", 3)
    chunked = ingest([pair], tmp_path / "data", str(tmp_path / "chunked.db"), parent="lab", use_cache=False)
    assert whole.plan is not None and chunked.plan is None
    assert chunked.result.created_arrays == whole.result.created_arrays == ARTIFACTS and chunked.missing == 0
    assert dump(str(tmp_path / "chunked.db")) == dump(str(tmp_path / "whole.db"))


def test_a_chunk_planned_short_of_its_artifacts_abandons_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the owners' join ever wrong (every artifact put in the first chunk here),
    the plan of a chunk would lack artifacts: the write stops before its commit, with
    one error naming the rows, and the catalog is as it was."""
    _data(tmp_path / "data")
    pair = _manifests(tmp_path / "manifests", list(range(ARTIFACTS)))
    monkeypatch.setattr(ingest_module, "PLAN_CHUNK", 4)
    real_owners = plan_module._owners

    def first_chunk_only(dataset, hamiltonians: int, path: Path) -> Path:  # type: ignore[no-untyped-def]
        real_owners(dataset, hamiltonians, path)
        pq.write_table(pa.table({"chunk": pa.array([0] * ARTIFACTS, pa.int64())}), path)
        return path

    monkeypatch.setattr(plan_module, "_owners", first_chunk_only)
    catalog = tmp_path / "c.db"
    with pytest.raises(BrokerError, match=r"the plan of Hamiltonian rows 0-3 has \d+ of their 27 artifacts") as raised:
        ingest([pair], tmp_path / "data", str(catalog), parent="lab", use_cache=False)
    assert raised.value.where == str(pair.artifacts)
    assert not catalog.exists() or [n for n in dump(str(catalog))["nodes"] if n[0] != "/"] == []


@pytest.mark.parametrize("chunk", [3, 1000], ids=["in chunks", "whole"])
def test_string_views_in_the_artifact_manifest_plan_as_strings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Artifact columns stored as Arrow string views (Arrow's take and filter have no
    kernel for them: the check passed and the plan broke, an outside tester's find)
    give the catalog plain strings give."""
    _data(tmp_path / "data")
    plain = _manifests(tmp_path / "plain", list(reversed(range(ARTIFACTS))))
    views = _manifests(tmp_path / "views", list(reversed(range(ARTIFACTS))))
    table = pq.read_table(views.artifacts)
    kinds = [pa.string_view() if pa.types.is_string(f.type) else f.type for f in table.schema]
    pq.write_table(table.cast(pa.schema([f.with_type(k) for f, k in zip(table.schema, kinds)])), views.artifacts)
    assert pq.read_schema(views.artifacts).field("type").type == pa.string_view()
    monkeypatch.setattr(ingest_module, "PLAN_CHUNK", chunk)
    for pair, name in ((plain, "plain.db"), (views, "views.db")):
        run = ingest([pair], tmp_path / "data", str(tmp_path / name), parent="lab", use_cache=False)
        assert run.result.created_arrays == ARTIFACTS and run.missing == 0
    assert dump(str(tmp_path / "views.db")) == dump(str(tmp_path / "plain.db"))
