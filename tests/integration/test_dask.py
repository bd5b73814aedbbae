"""Beyond one machine, on real parts: a `dask scheduler` and two `dask worker`
processes on 127.0.0.1 probe files and package tNR runs; a worker killed mid-way
loses and duplicates nothing; an unreachable scheduler is one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.serve import free_port
from manifest_broker.cluster import connect
from manifest_broker.generators.generate import synthesize
from tests.integration.catalog_dump import dump
from tests.pg import new_database

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


class Cluster:
    """A scheduler and workers, each a process of its own."""

    def __init__(self, root: Path, workers: int = 2) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.log = root / "dask.log"
        log = open(self.log, "ab")
        env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        self.scheduler = subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"],
            stdout=log,
            stderr=log,
            env=env,
        )
        self.workers = [self.start_worker(log, env) for _ in range(workers)]
        client = connect(self.address, timeout=60)
        client.wait_for_workers(workers, timeout=60)
        client.close()

    def start_worker(self, log, env) -> subprocess.Popen:  # type: ignore[no-untyped-def]
        return subprocess.Popen(
            [
                str(BIN / "dask"),
                "worker",
                self.address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
            ],
            stdout=log,
            stderr=log,
            env=env,
        )

    def stop(self) -> None:
        for process in [*self.workers, self.scheduler]:
            process.terminate()
        for process in [*self.workers, self.scheduler]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def vdp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ManifestPair]:
    root = tmp_path_factory.mktemp("vdp")
    synthesize("vdp", root, 120)  # 1,320 files: two batches of a thousand
    return root / "data", ManifestPair(
        root / "manifests" / "vdp_hamiltonians.parquet", root / "manifests" / "vdp_artifacts.parquet"
    )


def test_the_probe_on_dask_finds_what_the_local_probe_finds(cluster: Cluster, vdp: tuple[Path, ManifestPair]) -> None:
    base, pair = vdp
    local = check_manifests([pair], base, use_cache=False)
    client = connect(cluster.address)
    try:
        remote = check_manifests([pair], base, use_cache=False, cluster=client)
    finally:
        client.close()
    assert remote.ok and local.ok
    assert remote.probes is not None and local.probes is not None
    assert remote.probes.sort_by([("file", "ascending"), ("dataset", "ascending")]).equals(
        local.probes.sort_by([("file", "ascending"), ("dataset", "ascending")])
    )
    assert remote.probe is not None and remote.probe.opened == local.probe.opened == 1320  # type: ignore[union-attr]


def test_a_worker_killed_mid_probe_changes_nothing_in_the_catalog(
    tmp_path: Path, vdp: tuple[Path, ManifestPair]
) -> None:
    base, pair = vdp
    expected = str(tmp_path / "local.db")
    ingest([pair], base, expected, parent="vdp", use_cache=False)
    own = Cluster(tmp_path)  # its own workers: one of them is killed
    try:
        catalog = str(tmp_path / "dask.db")
        process = subprocess.Popen(
            [
                str(BIN / "broker"),
                "ingest",
                str(pair.hamiltonians),
                str(pair.artifacts),
                "--base-dir",
                str(base),
                "--catalog",
                catalog,
                "--parent",
                "vdp",
                "--no-cache",
                "--dask",
                own.address,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        client = connect(own.address)
        victim = own.workers[0]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the moment a task runs on the first worker: kill it
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy and process.poll() is None:
                break
            time.sleep(0.01)
        client.close()
        victim.send_signal(signal.SIGKILL)
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert "Traceback" not in err
        assert dump(catalog) == dump(expected)
    finally:
        own.stop()


def test_an_unreachable_scheduler_is_one_line_before_any_work(tmp_path: Path, vdp: tuple[Path, ManifestPair]) -> None:
    base, pair = vdp
    catalog = tmp_path / "never.db"
    started = time.monotonic()
    done = subprocess.run(
        [
            str(BIN / "broker"),
            "ingest",
            str(pair.hamiltonians),
            str(pair.artifacts),
            "--base-dir",
            str(base),
            "--catalog",
            str(catalog),
            "--dask",
            f"tcp://127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1 and "cannot reach the Dask scheduler" in lines[0], done.stderr
    assert not catalog.exists() and time.monotonic() - started < 60


def test_a_campaign_on_dask_packages_each_run_exactly_once(tmp_path: Path, postgres_server: str) -> None:
    from manifest_broker.generators.tnr import synthesize_campaign
    from manifest_broker.tnr.lake import catalog as lake_catalog
    from manifest_broker.tnr.lake import check_lake, locate_lake, scan

    made = synthesize_campaign(tmp_path / "campaign", 8, n_slices=40, points=(200, 300), flavour="savetxt")
    lake_uri = new_database(postgres_server)
    warehouse = tmp_path / "warehouse"
    own = Cluster(tmp_path)
    try:
        command = [
            str(BIN / "broker"),
            "tnr",
            "package-many",
            str(tmp_path / "campaign"),
            "--lake",
            lake_uri,
            "--warehouse",
            str(warehouse),
            "--dask",
            own.address,
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        client = connect(own.address)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:  # a run in progress on a worker: kill it
            if any(client.processing().values()):
                break
            time.sleep(0.01)
        client.close()
        own.workers[0].send_signal(signal.SIGKILL)
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        again = subprocess.run(command, capture_output=True, text=True, timeout=600)  # a re-run replaces, never adds
        assert again.returncode == 0, again.stderr
        # The workers only read; this process commits, so an embedded lake works as well.
        embedded = subprocess.run(
            [*command[:4], "--lake", str(tmp_path / "embedded"), "--dask", own.address],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert embedded.returncode == 0, embedded.stderr
    finally:
        own.stop()
    lake = locate_lake(lake_uri, warehouse)
    runs = scan(lake, "runs").to_pylist()
    assert sorted(r["run_number"] for r in runs) == [r.run_number for r in made]
    assert scan(lake, "reflectivity").num_rows == sum(len(r.labels) for r in made)
    assert check_lake(lake_catalog(lake, create=False), "tnr") == []
    embedded_lake = locate_lake(str(tmp_path / "embedded"))
    assert sorted(r["run_number"] for r in scan(embedded_lake, "runs").to_pylist()) == [r.run_number for r in made]
