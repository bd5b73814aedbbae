"""The contract's answers to small hostile inputs: bounded work and bounded messages,
datasets that declare more than they store, null dataspaces, corrupt chunks, and one
file named several ways (check OK <=> ingest OK). Inputs written by hand."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair


def _pair(root: Path, hams: list[dict], arts: list[dict]) -> ManifestPair:
    (root / "m").mkdir(exist_ok=True)
    pair = ManifestPair(root / "m" / "t_hamiltonians.parquet", root / "m" / "t_artifacts.parquet")
    pq.write_table(pa.Table.from_pylist(hams), pair.hamiltonians)
    schema = pa.schema(
        [
            ("huid", pa.string()),
            ("type", pa.string()),
            ("file", pa.string()),
            ("dataset", pa.string()),
            ("index", pa.int64()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(arts, schema=schema), pair.artifacts)
    return pair


def test_many_rows_sharing_one_key_are_linear_and_each_message_bounded(tmp_path: Path) -> None:
    """20,000 rows with one huid and one key: every row is named once, each message
    carries a count and the first rows, never the whole list (was quadratic)."""
    data = tmp_path / "data"
    data.mkdir()
    with h5py.File(data / "f.h5", "w") as f:
        f["x"] = np.arange(3.0)
    n = 20_000
    hams = [{"huid": "same", "key": "K", "T": float(i)} for i in range(n)]
    arts = [{"huid": "same", "type": "x", "file": "f.h5", "dataset": "/x", "index": None} for _ in range(n)]
    started = time.perf_counter()
    pair = _pair(tmp_path, hams, arts)
    report = check_manifests([pair], data, cache_dir=None)
    seconds = time.perf_counter() - started
    findings = report.findings.to_pylist()
    by_rule: dict[str, int] = {}
    for finding in findings:
        by_rule[finding["rule"]] = by_rule.get(finding["rule"], 0) + 1
        # at most five rows named (a locator names its manifest with each row)
        assert len(finding["message"]) < 300 + 5 * len(str(pair.artifacts)), finding["message"]
    assert by_rule["huid_duplicate"] == n and by_rule["key_duplicate"] == n and by_rule["type_duplicate"] == n
    assert by_rule["locator_duplicate"] == n
    example = next(f["message"] for f in findings if f["rule"] == "key_duplicate")
    assert f"appears {n} times (rows 0, 1, 2, 3, 4, ...;" in example
    assert seconds < 120  # a guard against the quadratic form (minutes), not a benchmark


def test_a_dataset_declaring_more_than_it_stores_is_refused_and_the_limit_can_be_raised(tmp_path: Path) -> None:
    """A kilobyte file holding a 10^12-element dataset (no chunk written) and a batched
    file whose rows are the limit's size: the logical size decides, per served array."""
    data = tmp_path / "data"
    data.mkdir()
    with h5py.File(data / "sparse.h5", "w") as f:
        f.create_dataset("huge", shape=(10**6, 10**6), dtype="f8", chunks=(1000, 1000))
        f.create_dataset("rows", shape=(4, 1000), dtype="f4", chunks=(1, 1000))
    assert os.path.getsize(data / "sparse.h5") < 20_000
    pair = _pair(
        tmp_path,
        [{"huid": "a", "key": "A"}, {"huid": "b", "key": "B"}],
        [
            {"huid": "a", "type": "huge", "file": "sparse.h5", "dataset": "/huge", "index": None},
            {"huid": "b", "type": "row", "file": "sparse.h5", "dataset": "/rows", "index": 2},
        ],
    )
    report = check_manifests([pair], data, cache_dir=None)
    refused = [f for f in report.findings.to_pylist() if f["rule"] == "dataset_too_large"]
    assert [f["row"] for f in refused] == [0]
    assert "7.2 TiB" in refused[0]["message"] and "--max-array-size" in refused[0]["message"]
    # The batched row is 4,000 bytes: a limit below it refuses the row, not its whole dataset's 16,000.
    tight = check_manifests([pair], data, cache_dir=None, max_array_bytes=3_999)
    assert sorted(f["row"] for f in tight.findings.to_pylist() if f["rule"] == "dataset_too_large") == [0, 1]
    loose = check_manifests([pair], data, cache_dir=None, max_array_bytes=8 * 10**12)
    assert [f for f in loose.findings.to_pylist() if f["rule"] == "dataset_too_large"] == []


def test_null_dataspace_is_a_rule_and_corrupt_chunks_are_found_by_a_deep_check(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with h5py.File(data / "c.h5", "w") as f:
        f.create_dataset("x", data=np.random.default_rng(1).random((100, 100)), chunks=(10, 100), compression="gzip")
        f.create_dataset("nul", data=h5py.Empty("f8"))
        f["ok"] = np.arange(3.0)
        info = f["x"].id.get_chunk_info(5)
    raw = bytearray((data / "c.h5").read_bytes())
    raw[info.byte_offset + 8 : info.byte_offset + info.size - 8] = b"\0" * (info.size - 16)
    (data / "c.h5").write_bytes(raw)
    pair = _pair(
        tmp_path,
        [{"huid": h, "key": h.upper()} for h in "abc"],
        [
            {"huid": "a", "type": "x", "file": "c.h5", "dataset": "/x", "index": None},
            {"huid": "b", "type": "n", "file": "c.h5", "dataset": "/nul", "index": None},
            {"huid": "c", "type": "o", "file": "c.h5", "dataset": "/ok", "index": None},
        ],
    )
    shallow = {
        f["rule"]: f
        for f in check_manifests([pair], data, cache_dir=None).findings.to_pylist()
        if f["severity"] == "error"
    }
    assert set(shallow) == {"dataset_null_dataspace"}
    deep = check_manifests([pair], data, cache_dir=tmp_path / "cache", deep=True).findings.to_pylist()
    rules = {f["rule"]: f for f in deep if f["severity"] == "error"}
    assert set(rules) == {"dataset_null_dataspace", "dataset_unreadable_chunks"}
    assert rules["dataset_unreadable_chunks"]["row"] == 0 and "corrupt" in rules["dataset_unreadable_chunks"]["message"]
    # A deep check after a shallow one opens the files again (the cache cannot vouch for values).
    again = check_manifests([pair], data, cache_dir=tmp_path / "cache", deep=True)
    assert again.probe is not None and again.probe.opened == 1


def test_one_file_named_several_ways_is_one_asset(tmp_path: Path) -> None:
    """sub/f.h5, ./sub/./f.h5, sub//f.h5 and a symlink inside the data directory:
    check OK, and ingest OK with one asset (was a raw UNIQUE-constraint error)."""
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    with h5py.File(data / "sub" / "f.h5", "w") as f:
        f["x"] = np.arange(4.0)
    (data / "alias").symlink_to("sub")
    names = ["sub/f.h5", "./sub/./f.h5", "sub//f.h5", "alias/f.h5"]
    pair = _pair(
        tmp_path,
        [{"huid": f"h{i}", "key": f"H{i}"} for i in range(4)],
        [
            {"huid": f"h{i}", "type": "x", "file": name, "dataset": "/x" if i % 2 else "x", "index": None}
            for i, name in enumerate(names)
        ],
    )
    for cache in (tmp_path / "cache", tmp_path / "cache"):  # first opened, then from the cache
        report = check_manifests([pair], data, cache_dir=cache)
        assert report.ok, report.findings.to_pylist()
        assert (
            report.probes is not None and report.probes.num_rows == 4
        )  # one row per (file as named, dataset as named)
    catalog = tmp_path / "c.db"
    run = ingest([pair], data, str(catalog))
    assert run.result is not None and run.result.created_arrays == 4
    with sqlite3.connect(catalog) as db:
        assets = db.execute("SELECT data_uri FROM assets").fetchall()
    assert len(assets) == 1 and assets[0][0].endswith("/sub/f.h5")


def test_a_catalog_creation_cut_short_leaves_no_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C (or a full disk, or a kill) while Tiled creates a new SQLite catalog
    left an empty or half-made file that the re-run then had to refuse; the catalog is
    now made beside its place and renamed into it once stamped."""
    import tiled.catalog.core

    from manifest_broker.catalog.database import locate
    from manifest_broker.catalog.write import init_catalog

    async def interrupted(engine: object) -> None:
        raise KeyboardInterrupt

    catalog = tmp_path / "new.db"
    with monkeypatch.context() as patch:
        patch.setattr(tiled.catalog.core, "initialize_database", interrupted)
        try:
            init_catalog(locate(str(catalog)), template_dir=None)
        except KeyboardInterrupt:
            pass
        else:
            raise AssertionError("the interrupt did not reach the caller")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert init_catalog(locate(str(catalog)), template_dir=None) is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db"]  # nothing of the staging file left
    with sqlite3.connect(catalog) as db:
        assert db.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)


def test_a_deep_check_does_not_read_what_the_limit_refuses(tmp_path: Path) -> None:
    """--deep on a 2 kB file declaring 10^12 values ran for minutes; it is refused
    unread (the limit can be raised to read it)."""
    data = tmp_path / "data"
    data.mkdir()
    with h5py.File(data / "sparse.h5", "w") as f:
        f.create_dataset("huge", shape=(10**12,), dtype="f8", chunks=(10**6,))
    pair = _pair(
        tmp_path,
        [{"huid": "a", "key": "A"}],
        [{"huid": "a", "type": "h", "file": "sparse.h5", "dataset": "/huge", "index": None}],
    )
    started = time.perf_counter()
    report = check_manifests([pair], data, cache_dir=None, deep=True)
    assert time.perf_counter() - started < 60
    rules = {f["rule"] for f in report.findings.to_pylist() if f["severity"] == "error"}
    assert rules == {"dataset_too_large_to_read"}, rules


# A rule's finding columns over a value DuckDB cannot spill: a list of 4 x 10^7
# integers (320 MB), past the stage's limit and within the host's.
_UNSPILLABLE_RULE = (
    "SELECT 'dataset_empty' AS rule, 'error' AS severity, NULL::VARCHAR AS manifest, NULL::BIGINT AS row,"
    ' NULL::VARCHAR AS "column", NULL::VARCHAR AS value, NULL::VARCHAR AS message'
    " FROM (SELECT list(i) AS l FROM range(40000000) t(i)) WHERE len(l) < 0"
)


def _one_rule_unspillable(  # type: ignore[no-untyped-def]
    tmp_path: Path, monkeypatch, asked: list[str], rule: str = "contract/rows/dataset_empty"
) -> tuple[ManifestPair, Path]:
    """A one-row dataset whose ``rule`` (a statement of the check) cannot fit the
    stage's limit; ``asked`` records the statements loaded."""
    from manifest_broker import queries

    data = tmp_path / "data"
    data.mkdir()
    with h5py.File(data / "f.h5", "w") as f:
        f["x"] = np.arange(3.0)
    hams = [{"huid": "h", "key": "K", "T": 1.0}]
    pair = _pair(tmp_path, hams, [{"huid": "h", "type": "x", "file": "f.h5", "dataset": "/x"}])
    real_load = queries.load

    def load(name: str, dialect: str | None = None) -> str:
        asked.append(name)
        if name != rule:
            return real_load(name, dialect)
        if rule == "contract/schema/distinct_documents":
            return "SELECT NULL::VARCHAR AS doc FROM (SELECT list(i) AS l FROM range(40000000) t(i)) WHERE len(l) < 0"
        return _UNSPILLABLE_RULE

    monkeypatch.setattr(queries, "load", load)
    return pair, data


def test_a_rule_past_the_stage_limit_runs_again_with_the_hosts(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A rule out of DuckDB's stage limit (its operators spill only so far) runs once
    more with the host's limit, and the rules after it run within the stage's again."""
    import duckdb

    from manifest_broker import queries

    monkeypatch.delenv("BROKER_DUCKDB_MEMORY", raising=False)
    with pytest.raises(duckdb.OutOfMemoryException), queries.connect(stage=True) as con:
        con.execute(_UNSPILLABLE_RULE).fetchall()  # what the stage's limit does to it
    asked: list[str] = []
    pair, data = _one_rule_unspillable(tmp_path, monkeypatch, asked)
    report = check_manifests([pair], data, cache_dir=None)
    assert report.ok, report.findings.to_pylist()
    assert asked.count("contract/rows/dataset_empty") == 1 and asked.count("session/memory_limit") == 2
    # the host's limit for that rule only: the next rule's statement comes after the limit set back
    after = asked.index("contract/rows/dataset_empty")
    assert asked[after + 1 : after + 3] == ["session/memory_limit", "session/memory_limit"]


def test_a_rule_past_a_limit_the_user_set_is_refused(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With $BROKER_DUCKDB_MEMORY set, the user's limit is kept: the rule's run out
    of memory is the check's error, not a run with more."""
    import duckdb

    monkeypatch.setenv("BROKER_DUCKDB_MEMORY", "192MB")
    asked: list[str] = []
    pair, data = _one_rule_unspillable(tmp_path, monkeypatch, asked)
    with pytest.raises(duckdb.OutOfMemoryException):
        check_manifests([pair], data, cache_dir=None)
    assert "session/memory_limit" not in asked


def test_the_distinct_documents_past_the_stage_limit_run_again_with_the_hosts(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The distinct metadata documents (300 metadata columns of 30,000 rows ran out
    of the stage's limit: an outside tester's find) get the host's limit as the rules
    do."""
    monkeypatch.delenv("BROKER_DUCKDB_MEMORY", raising=False)
    asked: list[str] = []
    pair, data = _one_rule_unspillable(tmp_path, monkeypatch, asked, "contract/schema/distinct_documents")
    check_manifests([pair], data, cache_dir=None)
    after = asked.index("contract/schema/distinct_documents")
    assert asked[after + 1 : after + 3] == ["session/memory_limit", "session/memory_limit"]
