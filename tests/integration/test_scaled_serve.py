"""`broker serve --workers N`: Tiled's own app in several uvicorn processes on a
PostgreSQL catalog, registered into and read through like the one-process server;
on SQLite only read-only, and refused otherwise with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest
from typer.testing import CliRunner

from manifest_broker.catalog.client import Server
from manifest_broker.catalog.database import locate
from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.register import ServerTarget
from manifest_broker.catalog.serve import free_port, running_server, wait_ready
from manifest_broker.catalog.write import init_catalog
from manifest_broker.commandline.main import app
from manifest_broker.generators.generate import synthesize
from tests.integration.catalog_dump import dump
from tests.pg import new_database

pytestmark = pytest.mark.integration


def _spinwave(root: Path) -> tuple[Path, ManifestPair]:
    synthesize("spinwave", root, 12)
    return root / "data", ManifestPair(
        root / "manifests" / "spinwave_hamiltonians.parquet", root / "manifests" / "spinwave_artifacts.parquet"
    )


def test_two_server_processes_on_postgresql_register_and_serve(tmp_path: Path, postgres_server: str) -> None:
    from tiled.client import from_uri

    base, pair = _spinwave(tmp_path)
    scaled, bulk = new_database(postgres_server), new_database(postgres_server)
    init_catalog(locate(scaled))
    ingest([pair], base, bulk, parent="lab")
    broker = str(Path(sys.executable).parent / "broker")
    port = free_port()
    server = subprocess.Popen(
        [broker, "serve", "--catalog", scaled, "--base-dir", str(base), "--port", str(port), "--workers", "2"],
        env={**os.environ, "TILED_API_KEY": "secret"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, server)
        tree = psutil.Process(server.pid).children(recursive=True)
        assert (
            sum("app_factory" in " ".join(p.cmdline()) or "multiprocessing" in " ".join(p.cmdline()) for p in tree) >= 2
        )
        assert all("secret" not in " ".join(p.cmdline()) for p in [psutil.Process(server.pid), *tree])
        done = ingest([pair], base, ServerTarget(Server(url, "secret"), workers=4), parent="lab")
        assert not done.result.failed and done.missing == 0
        client = from_uri(url, api_key="secret")
        node = client["lab"]
        assert len(node) == 12
        key = next(iter(node))
        assert np.asarray(node[key]["dos"].read()).shape == (200,)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert dump(scaled) == dump(bulk)  # what the HTTP path wrote through two processes is the bulk writer's catalog


def test_sqlite_with_several_workers_is_read_only_or_refused(tmp_path: Path) -> None:
    from tiled.client import from_uri

    base, pair = _spinwave(tmp_path)
    catalog = str(tmp_path / "catalog.db")
    ingest([pair], base, catalog, parent="lab")
    refused = CliRunner().invoke(app, ["serve", "--catalog", catalog, "--base-dir", str(base), "--workers", "2"])
    assert refused.exit_code == 2 and "database is locked" in refused.stderr and "--read-only" in refused.stderr
    before = dump(catalog)
    with running_server(catalog, base, workers=2, read_only=True) as url:
        client = from_uri(url, api_key="secret")
        assert len(client["lab"]) == 12
        with pytest.raises(Exception):  # noqa: B017 - whatever the server answers, it writes nothing
            client["lab"].create_container("new")
    assert dump(catalog) == before
