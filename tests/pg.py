"""Real PostgreSQL for the tests: throw-away clusters on 127.0.0.1, started from the
installed server binaries (the fixtures are registered in tests/conftest.py)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from manifest_broker.catalog.serve import free_port


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_postgres(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


class Cluster:
    """A throw-away PostgreSQL cluster on 127.0.0.1 that can be stopped hard and restarted."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="broker-pg-"))
        self.data = self.root / "data"
        os.chmod(self.root, 0o777)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            _as_postgres([str(bin_dir / "initdb"), "-D", str(self.data), "-U", "broker", "--auth=trust", "-E", "UTF8"]),
            check=True,
            capture_output=True,
        )
        self.port = free_port()
        self.uri = f"postgresql://broker@127.0.0.1:{self.port}"

    def start(self) -> None:
        subprocess.run(
            _as_postgres(
                [
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "log"),
                    "-w",
                    "start",
                    "-o",
                    f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "stop"]), capture_output=True
        )

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> Cluster:
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.fail("no PostgreSQL server binaries (install the Debian package postgresql; .ci/run does)")
    cluster = Cluster(bin_dir)
    cluster.start()
    return cluster


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for this test session; yields a base URI without a database."""
    cluster = start_cluster()
    try:
        yield cluster.uri
    finally:
        cluster.remove()


def new_database(server: str, template: str | None = None) -> str:
    """A new database on ``server`` (a copy of ``template`` when given); its URI."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return f"{server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, not yet initialised catalog: a SQLite file, or a PostgreSQL database
    (the way tiled's own tests parametrise over sqlite_or_postgres_uri)."""
    if request.param == "sqlite":
        return str(tmp_path / f"catalog-{time.monotonic_ns()}.db")
    return new_database(request.getfixturevalue("postgres_server"))
