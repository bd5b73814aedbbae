"""Start-up is part of the product: `import manifest_broker.commandline.main` (what `broker --help`
runs) must not pull in the heavy libraries; each command imports what it needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("pyarrow", "polars", "duckdb", "tiled", "pyiceberg", "numpy", "pandas", "h5py", "sqlalchemy")


def test_importing_the_cli_pulls_in_no_heavy_library() -> None:
    script = f"import sys, manifest_broker.commandline.main; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_help_answers_for_every_command_group() -> None:
    broker = Path(sys.executable).parent / "broker"
    for args in ([], ["tnr"], ["ingest"], ["tnr", "package"]):
        out = subprocess.run([str(broker), *args, "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "Usage" in out.stdout and "Traceback" not in out.stderr, out.stderr
