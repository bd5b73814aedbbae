"""SIGKILL `broker ingest` at points spread over the whole run (imports and probe,
planning, inside the write transaction, around the commit), on SQLite and on
PostgreSQL, and stop PostgreSQL itself with `pg_ctl stop -m immediate` mid-write.
After every kill the catalog is exactly what it was before the run (every table,
Tiled's triggers as a fresh `tiled catalog init` makes them, the closure table, the
SQLite and FTS5 integrity checks), and a re-run gives the catalog a single clean run
makes."""

from __future__ import annotations

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
KILLS = 12


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ManifestPair, ManifestPair]:
    return warm_and_bulk(tmp_path_factory.mktemp("kills"), 30, BULK)


def _command(pair: ManifestPair, base: Path, catalog: str) -> list[str]:
    return [*BROKER, "ingest", str(pair.hamiltonians), str(pair.artifacts), "--base-dir", str(base),
            "--catalog", catalog, "--parent", "bulk", "--json"]  # fmt: skip


def _kill_points(before_write: float, write: float) -> list[float]:
    """Half the points over the start (imports, probe, planning), half inside the
    write transaction, the last one just before its commit."""
    half = KILLS // 2
    early = [before_write * (i + 0.5) / half for i in range(half)]
    inside = [before_write + write * (i + 1) / (half + 1) for i in range(half)]
    return early + inside


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
def test_sigkill_anywhere_loses_nothing(data: tuple[Path, ManifestPair, ManifestPair], backend: str, tmp_path: Path,
                                        request: pytest.FixtureRequest) -> None:  # fmt: skip
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
    for n, at in enumerate(_kill_points(committed - write, write)):
        catalog = copy(f"kill{n}")
        process = subprocess.Popen(_command(bulk, base, catalog), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(at)
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
    survived = [o for o in outcomes if o[1] == -signal.SIGKILL and o[2] == "as before"]
    assert len(survived) >= 10, outcomes
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
        committed, write = _timed_clean_run(_command(bulk, base, clean))
        expected, before = dump(clean), dump(catalog)
        process = subprocess.Popen(
            _command(bulk, base, catalog), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(committed - write * 0.5)  # inside the write transaction
        cluster.stop("immediate")
        out, err = process.communicate(timeout=120)
        assert process.returncode == 1, (out, err)
        assert err.startswith("error:") and "nothing was written" in err and "Traceback" not in err, err
        cluster.start()
        assert dump(catalog) == before
        assert all(v == 0 for v in integrity_problems(catalog).values())
        done = subprocess.run(_command(bulk, base, catalog), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert dump(catalog) == expected
    finally:
        cluster.remove()
