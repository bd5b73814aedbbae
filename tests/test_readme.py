"""The README is executable: every command block runs as written, in order, in one
shell, from a folder laid out like the repository's, and says what it promises.

Only the two quickstart commands are not run here (.ci/run runs exactly those on a
fresh clone). A block the README marks `background` is left running, as a user would
leave a server in the background, and the next block waits until it answers.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(?:<!-- readme: (?P<note>[^\n]*?) -->\n)?```(?P<lang>bash|python)\n(?P<body>.*?)```", re.S)
# What blocks promise, by a phrase of the block: a phrase of their output.
PROMISES = {
    "broker synth spinwave": "spinwave: 20 Hamiltonians, 40 artifacts",
    "broker explore": "likely pattern: C",
    "broker generate": "20 Hamiltonians",
    "broker check": "OK: 0 error(s)",
    "broker ingest": "created 20 Hamiltonians and 40 artifacts (+1 parent containers)",
    "broker register": "created 20 Hamiltonians and 40 artifacts",
    "broker verify": "OK: 20 Hamiltonians, 40 artifacts",
    "broker locate": "Hamiltonian(s)",
    "load_batches": "arrays, first",
    "broker delete": "would delete 3 array node(s), 1 container node(s)",
    "broker sql": "dispersion\t20",
    "broker synth nexus": "NeXus NXentry /mantid_workspace_1: signal workspace/values",
    "broker generate work/gen_sqe": "6 Hamiltonians",
    "--card work/sqe/card.yaml": "OK: 0 error(s), 0 warning(s); 6 Hamiltonians, 24 artifacts",
    "--card work/card.yaml": "OK: 0 error(s), 0 warning(s); 20 Hamiltonians, 40 artifacts",
    "--upload": "(data uploaded into the server's storage)",
    "--parent sequoia --sample 24": "24 served from the server's own storage, 24 arrays compared, 0 problem(s)",
    "broker synth tnr": "run 218391: 24 slices",
    "broker tnr package ": "packaged run 218389: 24 slices",
    "broker tnr check": "OK: every run",
    "--dask tcp://127.0.0.1": "OK: 0 error(s)",
    "broker tnr watch": "packaged run 218391: 24 slices",
    "broker tnr sql": "eis",
    "broker tnr plot": "wrote work/run_218389.png",
    "iceberg-packager": "wrote work/tnr_data.parquet and work/tnr_data_metadata.parquet",
    "pl.scan_iceberg": "interval_start",
}


def blocks() -> list[tuple[str | None, str, str, int]]:
    """(note, language, body, line) of every fenced bash or python block of the README."""
    text = (ROOT / "README.md").read_text()
    return [(m["note"], m["lang"], m["body"], text.count("\n", 0, m.start()) + 1) for m in BLOCK.finditer(text)]


def test_only_the_quickstart_and_the_slurm_example_are_not_run() -> None:
    skipped = [body.strip() for note, _, body, _ in blocks() if note and note.startswith("skip")]
    assert skipped[:2] == [
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/broker demo",
        ".venv/bin/python -m pytest",
    ]
    assert len(skipped) == 3 and skipped[2].startswith("from dask_jobqueue import SLURMCluster")
    assert {lang for _, lang, _, _ in blocks()} == {"bash", "python"}


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _script(folder: Path, port: str, dask_port: str) -> str:
    """One bash script: each block in turn, in the same shell, stopping at the first
    command that fails; markers between blocks split the output."""
    lines = ["set -e", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for i, (note, lang, body, line) in enumerate(blocks()):
        if note and note.startswith("skip"):
            continue
        body = body.replace("8000", port).replace("8786", dask_port)
        lines.append(f"echo '### block {i} (README line {line})'; echo '### block {i}' >&2")
        if lang == "python":
            (folder / f"block_{i}.py").write_text(body)
            lines.append(f"python block_{i}.py")
        else:
            lines.append(body)
        if note and note.startswith("background"):
            lines.append(
                f"python -c 'import sys, time, httpx\n"
                f"for _ in range(600):\n"
                f"    try:\n"
                f'        httpx.get("http://127.0.0.1:{port}/api/v1/", timeout=1).raise_for_status(); sys.exit(0)\n'
                f"    except Exception:\n"
                f"        time.sleep(0.1)\n"
                f"sys.exit(1)'"
            )
    lines.append("echo '### end'")
    return "\n".join(lines) + "\n"


def test_every_block_runs_as_written(tmp_path: Path) -> None:
    # The repository's folder as the README assumes it: its tests/ and a .venv whose
    # activate script puts this installation's commands on the PATH.
    (tmp_path / "tests").symlink_to(ROOT / "tests", target_is_directory=True)
    (tmp_path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    assert (tmp_path / ".venv" / "bin" / "activate").is_file()
    port = "8000" if _free(8000) else str(_free_port())
    dask_port = "8786" if _free(8786) else str(_free_port())
    (tmp_path / "readme.sh").write_text(_script(tmp_path, port, dask_port))
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "BROKER_CACHE_DIR": str(tmp_path / "cache"),
    }
    done = subprocess.run(["bash", "readme.sh"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    out, err = done.stdout, done.stderr
    last = [line for line in out.splitlines() if line.startswith("### ")][-1]
    assert done.returncode == 0 and last == "### end", f"stopped at {last}:\n{out[-3000:]}\n{err[-3000:]}"
    assert "Traceback" not in err and "error:" not in err, err[-3000:]
    outputs = dict(zip(re.findall(r"### block (\d+)", out), re.split(r"### block \d+[^\n]*\n", out)[1:]))
    bodies = {str(i): body for i, (_, _, body, _) in enumerate(blocks())}
    for phrase, promise in PROMISES.items():
        shown = [outputs[i] for i, body in bodies.items() if phrase in body and i in outputs]
        assert shown, f"no block runs {phrase!r}"
        assert any(promise in text for text in shown), (phrase, promise, shown)
    assert (tmp_path / "work" / "run_218389.png").stat().st_size > 20_000
    assert (tmp_path / "work" / "to-provider.md").is_file()


def _free_port() -> int:
    from manifest_broker.catalog.serve import free_port

    return free_port()
