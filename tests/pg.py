"""Real servers for the integration tests: a throw-away PostgreSQL cluster on
127.0.0.1 (started here from the installed server binaries) and `tiled serve`."""

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

from manifest_broker.serve import free_port


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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for this test session; yields a base URI without a database."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (install the Debian package postgresql)")
    root = Path(tempfile.mkdtemp(prefix="broker-pg-"))
    data = root / "data"
    os.chmod(root, 0o777)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "broker", "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True)  # fmt: skip
    port = free_port()
    subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "start",
                                 "-o", f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off"]),
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql://broker@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def new_database(server: str) -> str:
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, not yet initialised catalog: a SQLite file, or a PostgreSQL database
    (the way tiled's own tests parametrise over sqlite_or_postgres_uri)."""
    if request.param == "sqlite":
        return str(tmp_path / f"catalog-{time.monotonic_ns()}.db")
    return new_database(request.getfixturevalue("postgres_server"))
