"""Progress and answers: a bar per stage on a terminal, nothing extra when piped,
JSON for programs, and one error path for every command.

Run as the user runs them: the installed ``broker`` in a subprocess, on a real
pseudo-terminal for the bars."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.ingest import ingest
from manifest_broker.commandline._tnr import app as tnr_app
from manifest_broker.errors import BrokerError
from tests.conftest import Dataset
from tests.tnr.spec_run import FILES, RUN, spec_run

BROKER = str(Path(sys.executable).parent / "broker")
BAR = "━"


def _on_terminal(args: list[str]) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (stdout piped); returns (code, stdout, terminal output)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120"}
    process = subprocess.Popen([BROKER, *args], stdout=subprocess.PIPE, stderr=follower, env=env)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out, _ = process.communicate()
    os.close(leader)
    return process.returncode, out.decode(), seen.decode(errors="replace")


def _args(data: Dataset) -> list[str]:
    return [str(data.pair.hamiltonians), str(data.pair.artifacts), "--base-dir", str(data.base_dir), "--no-cache"]


def test_bars_on_a_terminal_and_none_when_piped(edrixs: Dataset, tmp_path: Path) -> None:
    code, out, terminal = _on_terminal(["ingest", *_args(edrixs), "--catalog", str(tmp_path / "a.db")])
    assert code == 0, terminal
    for stage in ("probing files", "planning", "writing rows"):
        assert stage in terminal, terminal
    assert BAR in terminal and "left" in terminal
    assert out.startswith("created 6 Hamiltonians")

    piped = subprocess.run(
        [BROKER, "ingest", *_args(edrixs), "--catalog", str(tmp_path / "b.db")], capture_output=True, text=True
    )
    assert piped.returncode == 0 and piped.stderr == "" and BAR not in piped.stdout

    code, out, terminal = _on_terminal(["ingest", *_args(edrixs), "--catalog", str(tmp_path / "c.db"), "--json"])
    assert code == 0 and BAR not in terminal
    answer = json.loads(out)
    assert answer["created_hamiltonians"] == 6 and answer["created_catalog"] is True


def test_stages_report_every_step_to_the_end(edrixs: Dataset, tmp_path: Path) -> None:
    heard: dict[str, list[tuple[int, int]]] = {}

    def record(stage: str, done: int, total: int) -> None:
        heard.setdefault(stage, []).append((done, total))

    run = ingest([edrixs.pair], edrixs.base_dir, str(tmp_path / "x.db"), use_cache=False, progress=record)
    assert run.result is not None
    assert list(heard) == ["probing files", "planning", "writing rows"]
    for stage, reports in heard.items():
        dones = [d for d, _ in reports]
        assert dones == sorted(dones) and reports[0][0] == 0, stage
        assert reports[-1][0] == reports[-1][1], stage  # ends complete
    files = check_manifests([edrixs.pair], edrixs.base_dir, use_cache=False).probe
    assert files is not None and heard["probing files"][-1][1] == files.opened
    rows = heard["writing rows"][-1][1]
    assert rows == run.result.created_hamiltonians + 3 * run.result.created_arrays + 1  # one file, one asset


def test_tnr_package_answers_in_json(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    out = tmp_path / "out.parquet"
    result = CliRunner().invoke(
        tnr_app,
        ["package", str(split), str(reduced), str(xml), "--lake", str(tmp_path / "lake"), "-o", str(out), "--json"],
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["written"] is True and answer["slices"] == len(FILES) and answer["run_number"] == RUN
    assert answer["files"] == [str(out), str(tmp_path / "out_metadata.parquet")]
    assert all(Path(f).is_file() for f in answer["files"]) and isinstance(answer["warnings"], list)


def test_every_project_error_has_one_root() -> None:
    import manifest_broker.catalog.database
    import manifest_broker.catalog.delete
    import manifest_broker.catalog.manifests
    import manifest_broker.catalog.modea
    import manifest_broker.catalog.plan
    import manifest_broker.catalog.register
    import manifest_broker.catalog.serve
    import manifest_broker.catalog.verify
    import manifest_broker.catalog.write
    import manifest_broker.generators.generate
    import manifest_broker.tnr.inputs
    import manifest_broker.tnr.lake
    import manifest_broker.tnr.reduced
    import manifest_broker.tnr.schema

    modules = [v for k, v in sys.modules.items() if k.startswith("manifest_broker.")]
    errors = {
        obj
        for m in modules
        for obj in vars(m).values()
        if isinstance(obj, type) and issubclass(obj, Exception) and obj.__module__.startswith("manifest_broker")
    }
    strays = sorted(e.__name__ for e in errors if not issubclass(e, BrokerError))
    # SqlNotFound is the broker's own bug (a SQL file missing from the package), not the user's.
    assert strays == ["SqlNotFound"]
    assert manifest_broker.catalog.manifests.ManifestError("m", where=Path("/x")).where == "/x"
