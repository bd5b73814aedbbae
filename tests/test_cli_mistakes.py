"""A mistake matrix over every command of `broker` and `iceberg-packager`.

Each command is given each class of mistake that applies to it: a missing path, a
directory for a file and a file for a directory, a file of the wrong kind, an output
in a missing or read-only folder, an unreachable or refusing server, a key in the URL,
a number out of range. Every case must give one `error:` line naming the path or the
option, the documented exit code (1 for what is wrong with the inputs or the world,
2 for a command line used wrongly), no traceback, and nothing created or changed; with
`--json`, exactly one JSON document on stdout that says the same. Ctrl-C (a real
SIGINT to the process group, as a terminal sends it) is tested on the long commands.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.serve import free_port, running_server
from manifest_broker.commandline._tnr import packager
from manifest_broker.commandline.main import app
from manifest_broker.generators.generate import synthesize
from manifest_broker.generators.tnr import synthesize_run
from manifest_broker.tnr.lake import write_run
from manifest_broker.tnr.package import package_run
from tests.integration.catalog_dump import dump

pytestmark = pytest.mark.integration
runner = CliRunner()


def state(root: Path) -> dict[str, object]:
    """Every file and folder under root, with size, mtime and mode: 'nothing changed'."""
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path)] = (stat.S_IFMT(st.st_mode), st.st_size if path.is_file() else 0, st.st_mtime_ns, st.st_mode)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A good dataset, its catalog served by a real `tiled serve`, a tNR run in a lake,
    and the wrong things the mistakes use."""
    root = tmp_path_factory.mktemp("world")
    good = synthesize("spinwave", root, 3)
    assert good.hamiltonians.num_rows == 3
    ham, art = root / "manifests" / "spinwave_hamiltonians.parquet", root / "manifests" / "spinwave_artifacts.parquet"
    catalog = root / "catalog.db"
    ingest([ManifestPair(ham, art)], root / "data", str(catalog))
    run = synthesize_run(root / "run", n_slices=4, points=(5, 9))
    write_run(root / "lake", package_run(run.split_file, run.reduced_dir, run.template))
    (root / "folder").mkdir()
    readonly = root / "readonly"
    readonly.mkdir()
    if os.geteuid() == 0:  # root writes through permission bits: a read-only filesystem it is
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(readonly)], check=True)
    else:
        readonly.chmod(0o555)
    (root / "text_hamiltonians.parquet").write_text("a text file, not Parquet")
    (root / "text_artifacts.parquet").write_text("a text file, not Parquet")
    (root / "notes.txt").write_text("not JSON, not XML")
    (root / "broken.py").write_text("def generate(output_dir, n_hamiltonians=None):\n    return [\n")
    (root / "raises.py").write_text(
        "def generate(output_dir, n_hamiltonians=None):\n    raise ValueError('no such run')\n"
    )
    with running_server(str(catalog), root / "data") as url:
        yield {
            "root": str(root),
            "ham": str(ham),
            "art": str(art),
            "data": str(root / "data"),
            "catalog": str(catalog),
            "split": str(run.split_file),
            "reduced": str(run.reduced_dir),
            "xml": str(run.template),
            "lake": str(root / "lake"),
            "missing": str(root / "missing"),
            "folder": str(root / "folder"),
            "readonly": str(root / "readonly"),
            "text_h": str(root / "text_hamiltonians.parquet"),
            "text_a": str(root / "text_artifacts.parquet"),
            "notes": str(root / "notes.txt"),
            "broken": str(root / "broken.py"),
            "raises": str(root / "raises.py"),
            "url": url,
            "down": f"http://127.0.0.1:{free_port()}",
            "keyurl": url + "/?api_key=hunter2",
        }
    if os.geteuid() == 0:
        subprocess.run(["umount", "-l", str(readonly)], capture_output=True)
    else:
        readonly.chmod(0o755)


PAIR = ["{ham}", "{art}", "--base-dir", "{data}"]
TNR = ["{split}", "{reduced}", "{xml}", "--lake", "{lake}"]
# (arguments, exit code, words the error line must hold); a key of "wrong_key" runs with TILED_API_KEY=wrong.
CASES: dict[str, tuple[list[str], int, list[str]]] = {
    # synth / generate / explore
    "synth: OUT_DIR is a file": (["synth", "spinwave", "{notes}"], 1, ["OUT_DIR", "notes.txt", "is a file"]),
    "synth: OUT_DIR in a read-only folder": (["synth", "spinwave", "{readonly}/new"], 1, ["OUT_DIR", "readonly"]),
    "synth: -n 0": (["synth", "spinwave", "{folder}/x", "-n", "0"], 2, ["-n"]),
    "synth: unknown layout": (["synth", "nosuch", "{folder}/x"], 1, ["unknown layout", "nosuch"]),
    "synth tnr: bad flavour": (["synth", "tnr", "{folder}/x", "--flavour", "csv"], 2, ["--flavour", "csv"]),
    "generate: script missing": (["generate", "{missing}.py", "{data}", "{folder}/m"], 1, ["missing.py", "not found"]),
    "generate: script with a syntax error": (
        ["generate", "{broken}", "{data}", "{folder}/m"],
        1,
        ["broken.py:2", "syntax error"],
    ),
    "generate: script raising": (
        ["generate", "{raises}", "{data}", "{folder}/m"],
        1,
        ["raises.py:2", "ValueError", "no such run"],
    ),
    "generate: DATA_DIR missing": (["generate", "spinwave", "{missing}", "{folder}/m"], 1, ["missing", "not found"]),
    "generate: OUT_DIR is a file": (["generate", "spinwave", "{data}", "{notes}"], 1, ["OUT_DIR", "is a file"]),
    "explore: DATA_DIR missing": (["explore", "{missing}"], 1, ["DATA_DIR", "does not exist"]),
    "explore: DATA_DIR is a file": (["explore", "{notes}"], 1, ["DATA_DIR", "is a file"]),
    "explore: --sample -1": (["explore", "{data}", "--sample", "-1"], 2, ["--sample"]),
    "explore: --card in a missing folder": (
        ["explore", "{data}", "--card", "{missing}/c.yaml"],
        1,
        ["--card", "does not exist"],
    ),
    "explore: --card a directory": (["explore", "{data}", "--card", "{folder}"], 1, ["--card", "is a directory"]),
    "explore: --generator already there": (
        ["explore", "{data}", "--generator", "{notes}"],
        2,
        ["notes.txt", "already there"],
    ),
    "explore: --generator in a missing folder": (
        ["explore", "{data}", "--generator", "{missing}/g.py"],
        1,
        ["--generator", "does not exist"],
    ),
    "explore: --card already there": (["explore", "{data}", "--card", "{notes}"], 2, ["notes.txt", "already there"]),
    # check / ingest / delete / sql / demo
    "check: manifest missing": (
        ["check", "{missing}", "{art}", "--base-dir", "{data}"],
        1,
        ["missing", "manifest not found"],
    ),
    "check: odd number of manifests": (["check", "{ham}", "--base-dir", "{data}"], 2, ["pairs"]),
    "check: --base-dir missing": (
        ["check", "{ham}", "{art}", "--base-dir", "{missing}"],
        1,
        ["--base-dir", "does not exist"],
    ),
    "check: --base-dir is a file": (
        ["check", "{ham}", "{art}", "--base-dir", "{notes}"],
        1,
        ["--base-dir", "is a file"],
    ),
    "check: --catalog garbage": (["check", *PAIR, "--catalog", "{notes}"], 1, ["notes.txt", "not a database"]),
    "check: --feedback a directory": (["check", *PAIR, "--feedback", "{folder}"], 1, ["--feedback", "is a directory"]),
    "check: --feedback in a missing folder": (
        ["check", *PAIR, "--feedback", "{missing}/f.md"],
        1,
        ["--feedback", "does not exist"],
    ),
    "check: --feedback read-only": (
        ["check", *PAIR, "--feedback", "{readonly}/f.md"],
        1,
        ["--feedback", "not writable"],
    ),
    "check: --workers 0": (["check", *PAIR, "--workers", "0"], 2, ["--workers"]),
    "check: --card missing": (
        ["check", *PAIR, "--card", "{missing}.yaml"],
        1,
        ["missing.yaml", "no such dataset card"],
    ),
    "check: --card not a card": (
        ["check", *PAIR, "--card", "{notes}"],
        1,
        ["notes.txt", "a dataset card is a mapping"],
    ),
    "ingest: --upload is a file": (
        ["ingest", *PAIR, "--catalog", "{folder}/n.db", "--upload", "{notes}"],
        1,
        ["--upload", "is a file"],
    ),
    "ingest: --upload with --update-metadata": (
        ["ingest", *PAIR, "--catalog", "{folder}/n.db", "--upload", "{folder}/st", "--update-metadata"],
        2,
        ["--upload", "--update-metadata"],
    ),
    "ingest: --card without --parent": (
        ["ingest", *PAIR, "--catalog", "{folder}/n.db", "--card", "{notes}"],
        2,
        ["--card", "--parent"],
    ),
    "ingest: manifests not Parquet": (
        ["ingest", "{text_h}", "{text_a}", "--base-dir", "{data}", "--catalog", "{folder}/n.db"],
        1,
        ["the manifests break the contract", "nothing was written"],
    ),
    "ingest: --catalog garbage": (["ingest", *PAIR, "--catalog", "{notes}"], 1, ["notes.txt", "not a database"]),
    "ingest: --catalog a directory": (["ingest", *PAIR, "--catalog", "{folder}"], 1, ["folder", "is a directory"]),
    "ingest: --catalog in a missing folder": (
        ["ingest", *PAIR, "--catalog", "{missing}/c.db"],
        1,
        ["--catalog", "does not exist"],
    ),
    "ingest: --catalog in a read-only folder": (
        ["ingest", *PAIR, "--catalog", "{readonly}/c.db"],
        1,
        ["--catalog", "not writable"],
    ),
    "ingest: --base-dir missing": (
        ["ingest", "{ham}", "{art}", "--base-dir", "{missing}", "--catalog", "{catalog}"],
        1,
        ["--base-dir", "does not exist"],
    ),
    "delete: neither --url nor --catalog": (["delete", "x", "--yes"], 2, ["--url", "--catalog"]),
    "delete: catalog missing": (["delete", "x", "--catalog", "{missing}", "--yes"], 1, ["missing", "does not exist"]),
    "delete: a directory as catalog": (["delete", "x", "--catalog", "{folder}", "--yes"], 1, ["is a directory"]),
    "delete: a path not in the catalog": (["delete", "no/such", "--catalog", "{catalog}", "--yes"], 1, ["no/such"]),
    "delete: server down": (["delete", "x", "--url", "{down}", "--yes"], 1, ["cannot reach the Tiled server"]),
    "delete: without --yes off a terminal": (["delete", "x", "--catalog", "{catalog}"], 2, ["--yes"]),
    "sql: --ham missing": (["sql", "select 1", "--ham", "{missing}", "--art", "{art}"], 1, ["--ham", "not found"]),
    "sql: --ham a text file": (
        ["sql", "select 1", "--ham", "{text_h}", "--art", "{art}"],
        1,
        ["text_hamiltonians", "Parquet"],
    ),
    "sql: -o a directory": (
        ["sql", "select 1", "--ham", "{ham}", "--art", "{art}", "--format", "parquet", "-o", "{folder}"],
        1,
        ["-o", "is a directory"],
    ),
    "sql: -o in a missing folder": (
        ["sql", "select 1", "--ham", "{ham}", "--art", "{art}", "--format", "parquet", "-o", "{missing}/q.parquet"],
        1,
        ["-o", "does not exist"],
    ),
    "sql: bad SQL": (["sql", "selec 1", "--ham", "{ham}", "--art", "{art}"], 1, ["query failed"]),
    "sql: an empty query": (["sql", "", "--ham", "{ham}", "--art", "{art}"], 1, ["no statement to run"]),
    "sql: unknown format": (
        ["sql", "select 1", "--ham", "{ham}", "--art", "{art}", "--format", "xml"],
        2,
        ["--format"],
    ),
    "demo: --workdir is a file": (["demo", "--workdir", "{notes}"], 1, ["--workdir", "is a file"]),
    "demo: -n 0": (["demo", "--workdir", "{folder}/d", "-n", "0"], 2, ["-n"]),
    # serve / register / verify / locate
    "serve: catalog missing": (
        ["serve", "--catalog", "{missing}", "--base-dir", "{data}"],
        1,
        ["missing", "does not exist"],
    ),
    "serve: catalog garbage": (["serve", "--catalog", "{notes}", "--base-dir", "{data}"], 1, ["not a database"]),
    "serve: --base-dir missing": (
        ["serve", "--catalog", "{catalog}", "--base-dir", "{missing}"],
        1,
        ["--base-dir", "does not exist"],
    ),
    "serve: --storage with --read-only": (
        ["serve", "--catalog", "{catalog}", "--base-dir", "{data}", "--storage", "{folder}/s", "--read-only"],
        2,
        ["--storage", "--read-only"],
    ),
    "serve: --storage is a file": (
        ["serve", "--catalog", "{catalog}", "--base-dir", "{data}", "--storage", "{notes}"],
        1,
        ["--storage", "is a file"],
    ),
    "serve: --port 99999": (
        ["serve", "--catalog", "{catalog}", "--base-dir", "{data}", "--port", "99999"],
        2,
        ["--port"],
    ),
    "register: server down": (["register", *PAIR, "--url", "{down}"], 1, ["cannot reach the Tiled server"]),
    "register: URL without http": (["register", *PAIR, "--url", "127.0.0.1:8000"], 2, ["--url", "http://"]),
    "register: a key in the URL": (["register", *PAIR, "--url", "{keyurl}"], 2, ["--url", "carries an API key"]),
    "register: wrong key": (["register", *PAIR, "--url", "{url}"], 1, ["refused the connection", "HTTP 401"]),
    "register: --workers 0": (["register", *PAIR, "--url", "{url}", "--workers", "0"], 2, ["--workers"]),
    "register: --upload to a server without storage": (
        ["register", *PAIR, "--url", "{url}", "--upload"],
        1,
        ["--upload", "no writable storage", "--storage"],
    ),
    "register: manifest missing": (
        ["register", "{missing}", "{art}", "--base-dir", "{data}", "--url", "{url}"],
        1,
        ["missing", "manifest not found"],
    ),
    "verify: server down": (["verify", *PAIR, "--url", "{down}"], 1, ["cannot reach the Tiled server"]),
    "verify: wrong key": (["verify", *PAIR, "--url", "{url}"], 1, ["refused the connection"]),
    "verify: --sample -1": (["verify", *PAIR, "--url", "{url}", "--sample", "-1"], 2, ["--sample"]),
    "verify: --parent missing": (["verify", *PAIR, "--url", "{url}", "--parent", "no/such"], 1, ["--parent no/such"]),
    "locate: no --url": (["locate", "J1>1"], 2, ["--url"]),
    "locate: server down": (["locate", "--url", "{down}"], 1, ["cannot reach the Tiled server"]),
    "locate: a bad filter": (["locate", "J1 ~ 1", "--url", "{url}"], 2, ["J1 ~ 1"]),
    "locate: -o a directory": (["locate", "--url", "{url}", "-o", "{folder}"], 1, ["-o", "is a directory"]),
    "locate: -o in a missing folder": (
        ["locate", "--url", "{url}", "-o", "{missing}/l.parquet"],
        1,
        ["-o", "does not exist"],
    ),
    # tnr
    "tnr package: split missing": (
        ["tnr", "package", "{missing}", "{reduced}", "{xml}", "--lake", "{folder}/lake"],
        1,
        ["split file not found", "nothing was written"],
    ),
    "tnr package: split a directory": (
        ["tnr", "package", "{folder}", "{reduced}", "{xml}", "--lake", "{folder}/lake"],
        1,
        ["is a directory"],
    ),
    "tnr package: split not JSON": (
        ["tnr", "package", "{notes}", "{reduced}", "{xml}", "--lake", "{folder}/lake"],
        1,
        ["malformed split file JSON"],
    ),
    "tnr package: reduced dir missing": (
        ["tnr", "package", "{split}", "{missing}", "{xml}", "--lake", "{folder}/lake"],
        1,
        ["reduced directory not found"],
    ),
    "tnr package: template not XML": (
        ["tnr", "package", "{split}", "{reduced}", "{notes}", "--lake", "{folder}/lake"],
        1,
        ["malformed reduction template XML"],
    ),
    "tnr package: -o a directory": (["tnr", "package", *TNR, "-o", "{folder}"], 1, ["-o", "is a directory"]),
    # -o creates its folder as the reference does (#27), unless it cannot be made
    "tnr package: -o below a file": (
        ["tnr", "package", *TNR, "-o", "{notes}/new/t.parquet"],
        1,
        ["-o", "cannot create its folder"],
    ),
    "tnr package: -o in a new folder on a read-only mount": (
        ["tnr", "package", *TNR, "-o", "{readonly}/new/t.parquet"],
        1,
        ["-o", "cannot create its folder"],
    ),
    "tnr package: -o read-only": (["tnr", "package", *TNR, "-o", "{readonly}/t.parquet"], 1, ["-o", "not writable"]),
    "tnr package: --lake URI without --warehouse": (
        ["tnr", "package", "{split}", "{reduced}", "{xml}", "--lake", "postgresql://u@127.0.0.1:1/db"],
        2,
        ["--warehouse"],
    ),
    "tnr package-many: ROOT missing": (
        ["tnr", "package-many", "{missing}", "--lake", "{folder}/lake"],
        1,
        ["ROOT", "does not exist"],
    ),
    "tnr package-many: ROOT a file": (
        ["tnr", "package-many", "{notes}", "--lake", "{folder}/lake"],
        1,
        ["ROOT", "is a file"],
    ),
    "tnr package-many: no run": (["tnr", "package-many", "{folder}", "--lake", "{folder}/lake"], 1, ["no run found"]),
    "tnr package-many: --jobs 0": (
        ["tnr", "package-many", "{root}", "--lake", "{folder}/lake", "--jobs", "0"],
        2,
        ["--jobs"],
    ),
    "tnr plot: lake missing": (
        ["tnr", "plot", "--run", "218389", "-o", "{folder}/p.png", "--lake", "{missing}"],
        1,
        ["no lake here"],
    ),
    "tnr plot: run missing": (
        ["tnr", "plot", "--run", "1", "-o", "{folder}/p.png", "--lake", "{lake}"],
        1,
        ["run 1 is not in"],
    ),
    "tnr plot: -o without a format": (
        ["tnr", "plot", "--run", "218389", "-o", "{folder}/p", "--lake", "{lake}"],
        2,
        ["-o", ".png"],
    ),
    "tnr plot: -o in a missing folder": (
        ["tnr", "plot", "--run", "218389", "-o", "{missing}/p.png", "--lake", "{lake}"],
        1,
        ["-o", "does not exist"],
    ),
    "tnr plot: an empty Q band": (
        ["tnr", "plot", "--run", "218389", "-o", "{folder}/p.png", "--lake", "{lake}", "--q-min", "5", "--q-max", "6"],
        2,
        ["Q band", "--q-min"],
    ),
    "tnr plot: --q-min above --q-max": (
        [
            "tnr",
            "plot",
            "--run",
            "218389",
            "-o",
            "{folder}/p.png",
            "--lake",
            "{lake}",
            "--q-min",
            "0.3",
            "--q-max",
            "0.1",
        ],
        2,
        ["--q-min"],
    ),
    "tnr sql: lake missing": (["tnr", "sql", "select 1", "--lake", "{missing}"], 1, ["no lake here"]),
    "tnr sql: namespace missing": (
        ["tnr", "sql", "select 1", "--lake", "{lake}", "--namespace", "foo"],
        1,
        ["no namespace 'foo'"],
    ),
    "tnr sql: bad SQL": (["tnr", "sql", "selec 1", "--lake", "{lake}"], 1, ["query failed"]),
    "tnr sql: only a comment": (["tnr", "sql", "/* a comment */", "--lake", "{lake}"], 1, ["no statement to run"]),
    "tnr check: lake missing": (["tnr", "check", "--lake", "{missing}"], 1, ["no lake here"]),
    "tnr check: namespace missing": (
        ["tnr", "check", "--lake", "{lake}", "--namespace", "foo"],
        1,
        ["no namespace 'foo'"],
    ),
    "tnr maintain: namespace missing": (
        ["tnr", "maintain", "--lake", "{lake}", "--namespace", "foo"],
        1,
        ["no namespace 'foo'"],
    ),
    "tnr maintain: --keep 0": (["tnr", "maintain", "--lake", "{lake}", "--keep", "0"], 2, ["--keep"]),
    # the command line itself
    "an unknown command": (["chek"], 2, ["chek"]),
    "an unknown option": (["check", *PAIR, "--bogus"], 2, ["--bogus"]),
    "a missing option": (["ingest", "{ham}", "{art}", "--base-dir", "{data}"], 2, ["--catalog"]),
}
PACKAGER_CASES: dict[str, tuple[list[str], int, list[str]]] = {
    "iceberg-packager: split missing": (
        ["{missing}", "{reduced}", "{xml}", "--lake", "{folder}/lake"],
        1,
        ["split file not found"],
    ),
    "iceberg-packager: -o below a file": ([*TNR, "-o", "{notes}/new/t.parquet"], 1, ["-o", "cannot create its folder"]),
    "iceberg-packager: -o a directory": ([*TNR, "-o", "{folder}"], 1, ["-o", "is a directory"]),
    "iceberg-packager: a missing argument": (["{split}"], 2, ["reduced_dir", "iceberg-packager --help"]),
}
NO_JSON = ("serve", "demo", "chek")


def _run(world: dict[str, str], args: list[str], target=app, key: str = "secret"):  # type: ignore[no-untyped-def]
    filled = [a.format(**world) for a in args]
    return runner.invoke(target, filled, env={"TILED_API_KEY": key, "COLUMNS": "300"})


@pytest.mark.parametrize("case", sorted(CASES) + sorted(PACKAGER_CASES))
def test_a_mistake_is_one_line_with_its_exit_code_and_changes_nothing(world: dict[str, str], case: str) -> None:
    args, code, words = CASES.get(case) or PACKAGER_CASES[case]
    target = packager if case in PACKAGER_CASES else app
    key = "wrong" if "wrong key" in case else "secret"
    root = Path(world["root"])
    before, catalog_before = state(root), dump(world["catalog"])
    result = _run(world, args, target, key)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    assert len(errors) == 1 and all(w in errors[0] for w in words), result.stderr
    assert "Traceback" not in result.output + result.stderr
    if "wrong key" not in case and "a key in the URL" not in case:
        assert "secret" not in result.stderr
    assert "hunter2" not in result.output + result.stderr  # a key is never repeated
    assert state(root) == before and dump(world["catalog"]) == catalog_before

    if args[0] in NO_JSON or target is packager and "a missing argument" in case:
        return
    as_json = _run(world, [*args, "--json"], target, key)
    assert as_json.exit_code == code
    document = json.loads(as_json.stdout)  # exactly one document
    assert document["exit_code"] == code and all(w in document["error"] for w in words), document
    assert not [line for line in as_json.stderr.splitlines() if line.startswith("error:")]
    assert state(root) == before


# ---------------------------------------------------------------------------------
# Ctrl-C: a SIGINT to the whole process group, wherever it lands.


def _interrupt(command: list[str], cwd: Path, after: float) -> subprocess.CompletedProcess:
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    time.sleep(after)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


@pytest.mark.parametrize("after", [0.5, 2.0, 3.5])
def test_ctrl_c_during_ingest_is_one_line_and_loses_nothing(tmp_path: Path, after: float) -> None:
    made = synthesize("vdp", tmp_path, 150)  # 1,650 files: seconds of probing
    assert made.artifacts.num_rows > 1600
    broker = str(Path(sys.executable).parent / "broker")
    catalog = tmp_path / "catalog.db"
    command = [
        broker,
        "ingest",
        str(tmp_path / "manifests" / "vdp_hamiltonians.parquet"),
        str(tmp_path / "manifests" / "vdp_artifacts.parquet"),
        "--base-dir",
        str(tmp_path / "data"),
        "--catalog",
        str(catalog),
        "--no-cache",
    ]
    done = _interrupt(command, tmp_path, after)
    assert done.returncode in (0, 130), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    if done.returncode == 130:
        assert [line for line in done.stderr.splitlines() if line.strip()] == [
            "error: interrupted (Ctrl-C): what was committed stays; a re-run finishes the job"
        ]
        if catalog.exists():  # interrupted after the catalog was made: it holds nothing of the run
            assert len(dump(str(catalog))["nodes"]) == 1
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert len(dump(str(catalog))["nodes"]) == 1 + 150 + made.artifacts.num_rows


@pytest.mark.parametrize("after", [1.0, 3.0])
def test_ctrl_c_during_a_campaign_leaves_consistent_tables(tmp_path: Path, after: float) -> None:
    from manifest_broker.generators.tnr import synthesize_campaign
    from manifest_broker.tnr.lake import catalog, check_lake, scan

    synthesize_campaign(tmp_path / "campaign", 5, n_slices=40, points=(200, 300))
    broker = str(Path(sys.executable).parent / "broker")
    command = [
        broker,
        "tnr",
        "package-many",
        str(tmp_path / "campaign"),
        "--lake",
        str(tmp_path / "lake"),
        "--jobs",
        "2",
    ]
    done = _interrupt(command, tmp_path, after)
    assert done.returncode in (0, 130) and "Traceback" not in done.stderr, done.stderr
    if done.returncode == 130:
        assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
            "error: interrupted (Ctrl-C): what was committed stays; a re-run finishes the job"
        ]
    if (tmp_path / "lake" / "catalog.db").exists():
        assert check_lake(catalog(tmp_path / "lake", create=False), "tnr") == []
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert sorted(set(scan(tmp_path / "lake", "runs")["run_number"].to_pylist())) == list(range(218389, 218394))
