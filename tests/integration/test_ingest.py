"""`broker ingest` against real catalogs: idempotent, atomic, clear about bad input,
and served by a stock `tiled serve` that finds every Hamiltonian."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.database import locate
from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.plan import plan_nodes
from manifest_broker.catalog.serve import running_server
from manifest_broker.catalog.write import IngestError, init_catalog, write_plan
from manifest_broker.commandline.main import app
from tests.conftest import Dataset
from tests.integration.catalog_dump import dump

pytestmark = pytest.mark.integration
runner = CliRunner()


def _args(ds: Dataset, catalog: str, *extra: str) -> list[str]:
    return [
        "ingest",
        str(ds.pair.hamiltonians),
        str(ds.pair.artifacts),
        "--base-dir",
        str(ds.base_dir),
        "--catalog",
        catalog,
        *extra,
    ]


def test_rerun_adds_nothing_then_adds_only_what_is_new(edrixs: Dataset, catalog_uri: str) -> None:
    ham, art = edrixs.hamiltonians, edrixs.artifacts
    # first run: four Hamiltonians, rixs only
    edrixs.write(ham.slice(0, 4), art.filter(pc.and_(pc.less(art["index"], 4), pc.equal(art["type"], "rixs"))))
    first = runner.invoke(app, _args(edrixs, catalog_uri, "--json"))
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["created_nodes"] == 8
    before = dump(catalog_uri)
    again = runner.invoke(app, _args(edrixs, catalog_uri))
    assert again.exit_code == 0 and "nothing to add" in again.output
    assert dump(catalog_uri) == before
    # the full manifests: two new Hamiltonians, and xas for all six
    edrixs.write(ham, art)
    third = runner.invoke(app, _args(edrixs, catalog_uri, "--json"))
    out = json.loads(third.stdout)
    assert (
        out["created_hamiltonians"],
        out["created_arrays"],
        out["existing_hamiltonians"],
        out["existing_arrays"],
    ) == (2, 8, 4, 4)
    # the existing Hamiltonians' Mode A locators were extended, each with a revision, not flagged as differing
    assert (
        sorted(out["updated_metadata"]) == [f"H_edrixs_{i:06d}" for i in range(4)] and out["differing_metadata"] == []
    )
    after = dump(catalog_uri)
    assert len(after["nodes"]) == 1 + 6 + 12
    assert len(after["revisions"]) == 4
    assert len({n[0] for n in after["nodes"]}) == len(after["nodes"])  # no duplicates


def test_differing_metadata_is_reported_then_updated_on_request(spinwave: Dataset, catalog_uri: str) -> None:
    assert runner.invoke(app, _args(spinwave, catalog_uri)).exit_code == 0
    ham = spinwave.hamiltonians
    j1 = ham["J1"].to_pylist()
    j1_before, j1[2] = j1[2], 99.0
    spinwave.write(hamiltonians=ham.set_column(ham.schema.get_field_index("J1"), "J1", pa.array(j1)))
    before = dump(catalog_uri)
    result = runner.invoke(app, _args(spinwave, catalog_uri))
    assert result.exit_code == 0 and "differ from the catalog" in result.output and "H_sw_00003" in result.output
    assert dump(catalog_uri) == before
    result = runner.invoke(app, _args(spinwave, catalog_uri, "--update-metadata"))
    assert result.exit_code == 0 and "updated metadata of H_sw_00003" in result.output
    after = dump(catalog_uri)
    [revision] = after["revisions"]
    assert revision[0] == "/H_sw_00003" and revision[1] == 1 and json.loads(revision[2])["J1"] == j1_before
    assert [json.loads(n[2])["J1"] for n in after["nodes"] if n[0] == "/H_sw_00003"] == [99.0]


def test_served_by_plain_tiled_serve_and_verified(
    spinwave: Dataset, edrixs: Dataset, vdp: Dataset, tmp_path: Path
) -> None:
    catalog = str(tmp_path / "served.db")
    pairs = [spinwave.pair, edrixs.pair, vdp.pair]
    run = ingest(pairs, spinwave.base_dir, catalog, parent="lab/2026")
    assert run.result is not None and run.result.created_hamiltonians == 4 + 6 + 2
    with running_server(catalog, spinwave.base_dir) as url:
        from tiled.client import from_uri
        from tiled.queries import FullText, Key

        client = from_uri(url, api_key="secret")
        node = client["lab"]["2026"]
        assert len(node) == 12
        assert len(node.search(Key("tenDq") > -1e9)) == 6  # every EDRIXS Hamiltonian
        assert len(node.search(FullText("vdp_000002"))) == 1
        for key in node:  # every Hamiltonian found by its huid
            assert len(node.search(Key("huid") == node[key].metadata["huid"])) == 1
        with h5py.File(edrixs.base_dir / "edrixs" / "edrixs_spectra.h5") as f:
            assert np.array_equal(node["H_edrixs_000005"]["rixs"].read(), f["spectra"][5])
        ham_art = []
        for ds in (spinwave, edrixs, vdp):
            ham_art += [str(ds.pair.hamiltonians), str(ds.pair.artifacts)]
        result = runner.invoke(
            app,
            [
                "verify",
                *ham_art,
                "--base-dir",
                str(spinwave.base_dir),
                "--url",
                url,
                "--parent",
                "lab/2026",
                "--sample",
                "12",
                "--json",
            ],
            env={"TILED_API_KEY": "secret"},
        )
        report = json.loads(result.stdout)
        assert result.exit_code == 0, report["problems"]
        assert report["hamiltonians"] == 12 and report["artifacts"] == 8 + 12 + 22 and report["arrays_compared"] == 12
        # a mismatch is caught: point one served array at another row behind verify's back
        with sqlite3.connect(catalog) as db:
            db.execute("""UPDATE data_sources SET parameters = '{"dataset": "/spectra", "slice": "0"}'
                          WHERE parameters = '{"dataset":"/spectra","slice":"5"}'""")
        bad = runner.invoke(
            app,
            [
                "verify",
                str(edrixs.pair.hamiltonians),
                str(edrixs.pair.artifacts),
                "--base-dir",
                str(spinwave.base_dir),
                "--url",
                url,
                "--parent",
                "lab/2026",
                "--sample",
                "12",
            ],
            env={"TILED_API_KEY": "secret"},
        )
        assert bad.exit_code == 1 and "H_edrixs_000005/rixs: array served (Mode B) differs" in bad.output


def _unchanged_after(catalog: str, args: list[str], message: str) -> None:
    before = dump(catalog)
    result = runner.invoke(app, args, env={"COLUMNS": "400"})  # findings tables unwrapped
    assert result.exit_code == 1, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert dump(catalog) == before


def test_bad_input_leaves_catalog_unchanged(spinwave: Dataset, multimodal: Dataset, catalog_uri: str) -> None:
    assert runner.invoke(app, _args(multimodal, catalog_uri)).exit_code == 0
    # a key already in the catalog, for another Hamiltonian
    ham = spinwave.hamiltonians
    keys = ham["key"].to_pylist()
    keys[1] = "H_mm_00002"
    spinwave.write(hamiltonians=ham.set_column(1, "key", pa.array(keys)))
    # refused by the contract (key_in_catalog), before anything is planned
    _unchanged_after(catalog_uri, _args(spinwave, catalog_uri), "key_in_catalog")
    spinwave.write(hamiltonians=ham)
    # an artifact of an unknown Hamiltonian, and NaN in metadata: the contract refuses
    art = spinwave.artifacts
    huids = art["huid"].to_pylist()
    huids[0] = "ghost"
    spinwave.write(artifacts=art.set_column(0, "huid", pa.array(huids)))
    _unchanged_after(catalog_uri, _args(spinwave, catalog_uri), "break the contract")
    spinwave.write(artifacts=art)
    j2 = ham["J2"].to_pylist()
    j2[0] = float("nan")
    spinwave.write(hamiltonians=ham.set_column(ham.schema.get_field_index("J2"), "J2", pa.array(j2)))
    _unchanged_after(catalog_uri, _args(spinwave, catalog_uri), "break the contract")


def test_files_that_change_after_the_check(spinwave: Dataset, catalog_uri: str) -> None:
    location = locate(catalog_uri)
    init_catalog(location)
    plan = plan_nodes(check_manifests([spinwave.pair], spinwave.base_dir).checked())
    before = dump(catalog_uri)
    (spinwave.base_dir / "sw_00002.h5").unlink()
    with pytest.raises(IngestError, match="sw_00002.h5: vanished after the check"):
        write_plan(location, plan)
    assert dump(catalog_uri) == before
    # a dataset whose shape changed since it was probed
    with h5py.File(spinwave.base_dir / "sw_00002.h5", "w") as f:
        f["dispersion"] = np.zeros((3, 3), "f4")
        f["dos"] = np.zeros(7)
    with pytest.raises(IngestError, match="changed or replaced after the check"):
        write_plan(location, plan)
    assert dump(catalog_uri) == before


def test_catalogs_the_writer_refuses(spinwave: Dataset, tmp_path: Path) -> None:
    not_tiled = tmp_path / "other.db"
    with sqlite3.connect(not_tiled) as db:
        db.execute("CREATE TABLE t (x)")
    result = runner.invoke(app, _args(spinwave, str(not_tiled)))
    assert result.exit_code == 1 and "not a Tiled catalog" in result.output
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"definitely not sqlite" * 50)
    result = runner.invoke(app, _args(spinwave, str(garbage)))
    assert result.exit_code == 1 and "error:" in result.output and "Traceback" not in result.output
    assert garbage.read_bytes() == b"definitely not sqlite" * 50
    old = tmp_path / "old.db"
    init_catalog(locate(str(old)))
    with sqlite3.connect(old) as db:
        db.execute("UPDATE alembic_version SET version_num = 'a66028395cab'")
    result = runner.invoke(app, _args(spinwave, str(old)))
    assert result.exit_code == 1 and "a66028395cab" in result.output and "917dbbcfc4b1" in result.output


def test_locked_catalog(spinwave: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import manifest_broker.catalog.write as writer

    monkeypatch.setattr(writer, "WRITER_BUSY_SECONDS", 2.0)  # how long it waits is not what is tested
    catalog = tmp_path / "locked.db"
    init_catalog(locate(str(catalog)))
    before = dump(str(catalog))
    other = sqlite3.connect(catalog, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        result = runner.invoke(app, _args(spinwave, str(catalog)))
        assert result.exit_code == 1 and "locked by another writer" in result.output, result.output
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert dump(str(catalog)) == before


def test_read_only_catalog(spinwave: Dataset, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    catalog = folder / "catalog.db"
    init_catalog(locate(str(catalog)))
    sqlite3.connect(catalog).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    # Root ignores permission bits; an immutable file is read-only for root too.
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(catalog)], check=True)
    else:
        catalog.chmod(0o444)
        folder.chmod(0o555)
    try:
        result = runner.invoke(app, _args(spinwave, str(catalog)))
        assert result.exit_code == 1 and "read-only" in result.output, result.output
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(catalog)], check=True)
        folder.chmod(0o755)
        catalog.chmod(0o644)
    assert len(dump(str(catalog))["nodes"]) == 1


def test_killed_run_leaves_catalog_as_it_was_and_rerun_finishes(edrixs: Dataset, tmp_path: Path) -> None:
    catalog = str(tmp_path / "killed.db")
    init_catalog(locate(catalog))
    before = dump(catalog)
    # The real ingest (check, plan, write), holding its transaction open before the commit.
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from manifest_broker.catalog.database import locate\n"
        "from manifest_broker.catalog.contract import check_manifests\n"
        "from manifest_broker.catalog.manifests import ManifestPair\n"
        "from manifest_broker.catalog.plan import plan_nodes\n"
        "from manifest_broker.catalog.write import write_plan\n"
        "def hold():\n"
        "    print('holding the transaction open', flush=True)\n"
        "    time.sleep(60)\n"
        "if __name__ == '__main__':\n"
        "    report = check_manifests([ManifestPair(Path(sys.argv[1]), Path(sys.argv[2]))], Path(sys.argv[3]))\n"
        "    write_plan(locate(sys.argv[4]), plan_nodes(report.checked()), before_commit=hold)\n"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            str(edrixs.pair.hamiltonians),
            str(edrixs.pair.artifacts),
            str(edrixs.base_dir),
            catalog,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    deadline = time.monotonic() + 60
    while "holding the transaction open" not in line and time.monotonic() < deadline:
        line = process.stdout.readline().decode()
        if not line and process.poll() is not None:
            break
    assert "holding the transaction open" in line
    process.send_signal(signal.SIGKILL)  # mid-transaction: triggers dropped, rows inserted
    process.wait()
    assert dump(catalog) == before  # triggers included
    result = runner.invoke(app, _args(edrixs, catalog, "--json"))
    assert result.exit_code == 0 and json.loads(result.stdout)["created_nodes"] == 18
    after = dump(catalog)
    assert after["triggers"] == before["triggers"]
    assert len(after["closure"]) == 1 + 6 * 2 + 12 * 3
