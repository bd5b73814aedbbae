"""`broker demo`, the README's first command, end to end and again (idempotent), and
the commands it prints at the end, run as printed in the shell it ran in."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from manifest_broker.catalog.serve import free_port, wait_ready
from tests.integration.catalog_dump import dump

pytestmark = pytest.mark.integration
BROKER = str(Path(sys.executable).parent / "broker")


def _shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    # A shell as a user has it: no virtual environment activated.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV",)}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_demo_runs_twice_and_its_next_steps_work_as_printed(tmp_path: Path) -> None:
    first = subprocess.run([BROKER, "demo", "-n", "3"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "0 problem(s)" in first.stdout
    catalog = str(tmp_path / "broker-demo" / "catalog.db")
    nodes = dump(catalog)["nodes"]
    assert len(nodes) == 1 + 1 + (3 + 30 + 3 + 3) + (33 + 60 + 12 + 6)  # root, /demo, Hamiltonians, artifacts
    second = subprocess.run([BROKER, "demo", "-n", "3"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0 and "nothing to add" in second.stdout, second.stdout + second.stderr
    assert dump(catalog)["nodes"] == nodes
    from manifest_broker.tnr.lake import scan

    assert scan(tmp_path / "broker-demo" / "lakehouse", "reflectivity").num_rows == 24  # re-packaged, not duplicated
    assert (tmp_path / "broker-demo" / "tnr_218389.png").stat().st_size > 20_000

    # The closing lines, each a command typed as printed (the port made free for the test).
    steps = second.stdout.split("serve the catalog", 1)[1]
    commands = [line.strip() for line in steps.splitlines() if line.startswith("  ")]
    serve, read_tiled, read_lake, tnr_sql = commands
    assert "api_key" not in second.stdout  # a key is never put into a program's arguments
    port = free_port()
    serve, read_tiled = (c.replace("8000", str(port)) for c in (serve, read_tiled))
    assert "broker serve" in serve and not serve.split("=", 1)[1].startswith("broker")  # not a bare `broker`
    server = subprocess.Popen(
        ["bash", "-c", serve],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        shown = _shell(read_tiled, tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert re.match(r"H_\S+ \{'huid': ", shown.stdout), shown.stdout
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/metadata/demo").status_code == 401  # the key is needed
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the shell, broker and the tiled server it runs
        server.wait(timeout=30)
    for command in (read_lake, tnr_sql):
        done = _shell(command, tmp_path)
        assert done.returncode == 0, (command, done.stderr)
        assert "Warning" not in done.stderr, done.stderr
    assert "hold" in _shell(tnr_sql, tmp_path).stdout
