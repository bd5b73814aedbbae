"""SIGKILL `broker ingest` at points spread over the whole run (imports and probe,
planning, inside the write transaction, around the commit), on SQLite and on
PostgreSQL, and stop PostgreSQL itself with `pg_ctl stop -m immediate` mid-write.
After every kill the catalog is exactly what it was before the run (every table,
Tiled's triggers as a fresh `tiled catalog init` makes them, the closure table, the
SQLite and FTS5 integrity checks), and a re-run gives the catalog a single clean run
makes."""

from __future__ import annotations

import fcntl
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from manifest_broker.catalog.database import locate
from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.write import init_catalog
from tests.integration.catalog_dump import dump, integrity_problems
from tests.pg import new_database, start_cluster
from tests.reliability.conftest import BROKER, warm_and_bulk

pytestmark = pytest.mark.integration
BULK = 15_000  # x 3 = 45,000 nodes: a write transaction long enough to land kills in
KILLS = 8


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ManifestPair, ManifestPair]:
    return warm_and_bulk(tmp_path_factory.mktemp("kills"), 30, BULK)


def _command(pair: ManifestPair, base: Path, catalog: str) -> list[str]:
    return [
        *BROKER,
        "ingest",
        str(pair.hamiltonians),
        str(pair.artifacts),
        "--base-dir",
        str(base),
        "--catalog",
        catalog,
        "--parent",
        "bulk",
        "--json",
    ]


def _writer_lock_held(catalog: str) -> bool:
    """Whether a broker holds the catalog's writer lock (from initialisation to
    commit): the SQLite lock file's flock, or PostgreSQL's advisory lock."""
    location = locate(catalog)
    if location.sqlite_path is not None:
        lock = location.sqlite_path.with_name(location.sqlite_path.name + "-broker.lock")
        if not lock.exists():
            return False
        with open(lock, "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False
    import psycopg

    with psycopg.connect(catalog) as conn:
        return bool(conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchone()[0])


def _wait_for_writer_lock(catalog: str, process: subprocess.Popen, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if _writer_lock_held(catalog):
            return True
        time.sleep(0.01)
    return False


def _timed_clean_run(command: list[str]) -> tuple[float, float]:
    """(seconds from start to the end of the write, seconds of the write) of a clean
    run: the JSON answer is printed right after the commit."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    first = process.stdout.readline()
    committed = time.perf_counter() - started
    answer = json.loads(first + process.stdout.read())
    assert process.wait() == 0
    return committed, answer["timings"]["write"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_anywhere_loses_nothing(
    data: tuple[Path, ManifestPair, ManifestPair], backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    base, warm, bulk = data
    server = request.getfixturevalue("postgres_server") if backend == "postgresql" else None

    def make(name: str) -> str:
        return str(tmp_path / f"{name}.db") if server is None else new_database(server)

    fresh = make("fresh")
    init_catalog(locate(fresh))
    fresh_triggers = dump(fresh)["triggers"]
    pristine = make("pristine")  # the catalog before the run, copied for every kill
    ingest([warm], base, pristine, parent="warm")
    before = dump(pristine)
    assert before["triggers"] == fresh_triggers

    def copy(name: str) -> str:
        if server is None:
            target = tmp_path / f"{name}.db"
            shutil.copyfile(pristine, target)
            return str(target)
        return new_database(server, template=pristine.rsplit("/", 1)[1])

    # A first run fills the broker's caches (probe, Tiled's structures); the timed
    # clean run and every killed run then start alike.
    _timed_clean_run(_command(bulk, base, copy("warmup")))
    clean = copy("clean")
    committed, write = _timed_clean_run(_command(bulk, base, clean))
    expected = dump(clean)
    outcomes = []
    in_transaction = 0
    half = KILLS // 2
    for n in range(KILLS):
        catalog = copy(f"kill{n}")
        process = subprocess.Popen(_command(bulk, base, catalog), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if n < half:  # spread over the start: imports, probe, planning
            at = (committed - write) * (n + 0.5) / half
            time.sleep(at)
        else:  # inside the write: counted from the moment the broker holds the writer lock (an event, not a time)
            assert _wait_for_writer_lock(catalog, process), "the broker never took the writer lock"
            at = write * (n - half + 1) / (half + 1)
            time.sleep(at)
            in_transaction += _writer_lock_held(catalog)
        process.send_signal(signal.SIGKILL)
        process.wait()
        now = dump(catalog)
        finished = now != before
        outcomes.append((round(at, 2), process.returncode, "finished" if finished else "as before"))
        if finished:  # the kill came after the commit: the run was complete
            assert now == expected, f"killed at {at:.2f}s: neither the old catalog nor the finished one"
            continue
        assert all(v == 0 for v in integrity_problems(catalog).values()), (at, integrity_problems(catalog))
        assert now["triggers"] == fresh_triggers
    # Every kill left the old catalog or the finished one (asserted above); and kills
    # did land inside the write transaction, where the broker held its lock.
    assert in_transaction >= 1, outcomes
    # a re-run after the last kill completes, equal to the clean run
    done = subprocess.run(_command(bulk, base, catalog), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert dump(catalog) == expected
    print(f"\n{backend}: kills at (s, exit, catalog) {outcomes}; write window {committed - write:.2f}-{committed:.2f}s")


def test_postgres_stopped_immediately_mid_write(data: tuple[Path, ManifestPair, ManifestPair], tmp_path: Path) -> None:
    base, warm, bulk = data
    cluster = start_cluster()  # its own server, so stopping it disturbs no other test
    try:
        catalog, clean, warmup = new_database(cluster.uri), new_database(cluster.uri), new_database(cluster.uri)
        for target in (catalog, clean, warmup):
            ingest([warm], base, target, parent="warm")
        _timed_clean_run(_command(bulk, base, warmup))  # fills the caches: the timed runs start alike
        _, write = _timed_clean_run(_command(bulk, base, clean))
        expected, before = dump(clean), dump(catalog)
        process = subprocess.Popen(
            _command(bulk, base, catalog), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert _wait_for_writer_lock(catalog, process), "the broker never took the writer lock"
        time.sleep(write * 0.5)  # inside the write transaction
        cluster.stop("immediate")
        out, err = process.communicate(timeout=120)
        assert process.returncode == 1, (out, err)
        answer = json.loads(out)  # --json: the error is the one document on stdout, and stderr is empty
        assert "nothing was written" in answer["error"] and answer["exit_code"] == 1, answer
        assert err == "", err
        cluster.start()
        assert dump(catalog) == before
        assert all(v == 0 for v in integrity_problems(catalog).values())
        done = subprocess.run(_command(bulk, base, catalog), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert dump(catalog) == expected
    finally:
        cluster.remove()
