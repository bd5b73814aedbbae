"""Confinement through a real `tiled serve`: every name the contract accepts is
reachable, hostile files never reach the catalog, `broker verify` catches a data
directory changed after the ingest, and the API key stays off command lines."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import h5py
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.serve import free_port, running_server, wait_ready
from manifest_broker.catalog.verify import confinement_problems
from manifest_broker.commandline.main import app
from tests.integration.catalog_dump import dump

pytestmark = pytest.mark.integration
runner = CliRunner()
SECRET = b"TOP SECRET: outside the data directory\n"

# One name per character class the contract accepts (macro name_problem).
ACCEPTED_NAMES = [
    "plain",
    "with space",
    "dash-under_score",
    "dot.tilde~",
    "...",
    ".hidden",
    "100%",
    "a%zz",
    "sub!$&'()*+,;=:@delims",
    'br[a]c{e}s|\\"<>^`',
    "caf\u00e9",
    "\u65e5\u672c\u8a9e",
    "emoji\U0001f600",
    "k" * 1000,
]


def _write_pair(folder: Path, keys: list[str], types: list[str], files: list[str]) -> ManifestPair:
    n = len(keys)
    pair = ManifestPair(folder / "m_hamiltonians.parquet", folder / "m_artifacts.parquet")
    pq.write_table(
        pa.table({"huid": [f"h{i}" for i in range(n)], "key": keys, "J": [float(i) for i in range(n)]}),
        pair.hamiltonians,
    )
    pq.write_table(
        pa.table({"huid": [f"h{i}" for i in range(n)], "type": types, "file": files, "dataset": ["/x"] * n}),
        pair.artifacts,
    )
    return pair


def _ingest(pair: ManifestPair, base: Path, catalog: str) -> None:
    result = runner.invoke(
        app, ["ingest", str(pair.hamiltonians), str(pair.artifacts), "--base-dir", str(base), "--catalog", catalog]
    )
    assert result.exit_code == 0, result.output


def _verify(pair: ManifestPair, base: Path, url: str, sample: int) -> tuple[int, str]:
    result = runner.invoke(
        app,
        [
            "verify",
            str(pair.hamiltonians),
            str(pair.artifacts),
            "--base-dir",
            str(base),
            "--url",
            url,
            "--sample",
            str(sample),
        ],
        env={"COLUMNS": "400", "TILED_API_KEY": "secret"},
    )
    return result.exit_code, result.output


def test_every_accepted_name_class_is_served(tmp_path: Path, catalog_uri: str) -> None:
    from tiled.client import from_uri

    base = tmp_path / "data"
    base.mkdir()
    with h5py.File(base / "f.h5", "w") as f:
        f["x"] = np.arange(3.0)
    n = len(ACCEPTED_NAMES)
    # each name once as a Hamiltonian key and once as an artifact type
    pair = _write_pair(tmp_path, ACCEPTED_NAMES, ACCEPTED_NAMES[::-1], ["f.h5"] * n)
    _ingest(pair, base, catalog_uri)
    with running_server(catalog_uri, base) as url:
        client = from_uri(url, api_key="secret")
        assert set(client) == set(ACCEPTED_NAMES)
        for key, type_ in zip(ACCEPTED_NAMES, ACCEPTED_NAMES[::-1]):
            node = client[key]
            assert node.metadata["huid"] == f"h{ACCEPTED_NAMES.index(key)}"
            assert node[type_].read().tolist() == [0.0, 1.0, 2.0]
            path = "/".join(urllib.parse.quote(part, safe="") for part in (key, type_))
            answer = httpx.get(f"{url}/api/v1/metadata/{path}", headers={"Authorization": "Apikey secret"})
            assert answer.status_code == 200 and answer.json()["data"]["id"] == type_
        code, output = _verify(pair, base, url, sample=n)
    assert code == 0, output
    flat = " ".join(output.split())
    assert f"{n} arrays compared" in flat and f"{n} served assets re-checked" in flat


def _two_files(base: Path) -> None:
    (base / "sub").mkdir(parents=True)
    for name in ("sub/a.h5", "b.h5"):
        with h5py.File(base / name, "w") as f:
            f["x"] = np.arange(len(SECRET), dtype="u1")


def test_hostile_files_never_reach_the_catalog(tmp_path: Path) -> None:
    base, outside = tmp_path / "data", tmp_path / "outside"
    _two_files(base)
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    with h5py.File(base / "hostile.h5", "w") as f:
        f.create_dataset(
            "x", shape=(len(SECRET),), dtype="u1", external=[(str(outside / "secret.txt"), 0, len(SECRET))]
        )
    catalog = str(tmp_path / "catalog.db")
    good = _write_pair(tmp_path, ["A", "B"], ["t", "t"], ["sub/a.h5", "b.h5"])
    _ingest(good, base, catalog)
    before = dump(catalog)
    hostile_dir = tmp_path / "hostile"
    hostile_dir.mkdir()
    hostile = _write_pair(hostile_dir, ["C"], ["t"], ["hostile.h5"])
    refused = runner.invoke(
        app,
        ["ingest", str(hostile.hamiltonians), str(hostile.artifacts), "--base-dir", str(base), "--catalog", catalog],
    )
    assert refused.exit_code == 1 and "nothing was written" in refused.output
    assert dump(catalog) == before
    from tiled.client import from_uri

    with running_server(catalog, base) as url:
        client = from_uri(url, api_key="secret")
        assert sorted(client) == ["A", "B"]
        for key in client:
            assert client[key]["t"].read().tobytes() != SECRET


def test_verify_catches_a_data_directory_changed_after_ingest(tmp_path: Path) -> None:
    """Tiled confines only the asset path at read time; `verify` re-checks it all."""
    from tiled.client import from_uri

    base, outside = tmp_path / "data", tmp_path / "outside"
    _two_files(base)
    catalog = str(tmp_path / "catalog.db")
    pair = _write_pair(tmp_path, ["A", "B"], ["t", "t"], ["sub/a.h5", "b.h5"])
    _ingest(pair, base, catalog)
    with running_server(catalog, base) as url:
        code, output = _verify(pair, base, url, sample=2)
        assert code == 0, output
        # 1. a directory replaced by a symlink to elsewhere
        outside.mkdir()
        with h5py.File(outside / "a.h5", "w") as f:
            f["x"] = np.frombuffer(SECRET, dtype="u1")
        shutil.rmtree(base / "sub")
        (base / "sub").symlink_to(outside, target_is_directory=True)
        # 2. a file rewritten with external raw storage pointing outside
        (outside / "secret.txt").write_bytes(SECRET)
        (base / "b.h5").unlink()
        with h5py.File(base / "b.h5", "w") as f:
            f.create_dataset(
                "x", shape=(len(SECRET),), dtype="u1", external=[(str(outside / "secret.txt"), 0, len(SECRET))]
            )
        # Tiled itself serves both (what the README warns about) ...
        client = from_uri(url, api_key="secret")
        assert client["A"]["t"].read().tobytes() == SECRET
        assert client["B"]["t"].read().tobytes() == SECRET
        # ... and verify names both, exit 1 (its contract check re-probes the files) ...
        code, output = _verify(pair, base, url, sample=0)
        # ... as does its re-check of what the server itself says it reads
        client = from_uri(url, api_key="secret", include_data_sources=True)
        served = [(f"{k}/t", client[k]["t"].data_sources()[0].assets[0].data_uri, "/x") for k in ("A", "B")]
        problems = confinement_problems(served, base)
    assert code == 1
    flat = " ".join(output.split())
    assert "file_outside_base" in flat and "sub/a.h5" in flat
    assert "dataset_external_storage" in flat and str(outside / "secret.txt") in flat
    assert len(problems) == 2
    assert problems[0].startswith(f"A/t: served asset {base / 'sub' / 'a.h5'} resolves to {outside / 'a.h5'}")
    assert problems[1].startswith("B/t: served dataset /x of") and "external file(s)" in problems[1]


def test_serve_keeps_the_api_key_off_the_command_line(tmp_path: Path) -> None:
    base = tmp_path / "data"
    _two_files(base)
    catalog = str(tmp_path / "catalog.db")
    _ingest(_write_pair(tmp_path, ["A", "B"], ["t", "t"], ["sub/a.h5", "b.h5"]), base, catalog)
    key = "keyfromtheenvironment42"
    port = free_port()
    broker = Path(sys.executable).parent / "broker"
    process = subprocess.Popen(
        [str(broker), "serve", "--catalog", catalog, "--base-dir", str(base), "--port", str(port)],
        env={**os.environ, "TILED_API_KEY": key},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        # what `ps` shows of broker and of the tiled server it runs
        import psutil

        processes = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        cmdlines = [" ".join(p.cmdline()) for p in processes]
        assert any("tiled serve catalog" in c for c in cmdlines[1:]), cmdlines
        assert all(key not in c and "--api-key" not in c for c in cmdlines)
        assert httpx.get(f"{url}/api/v1/metadata/A").status_code == 401
        answer = httpx.get(f"{url}/api/v1/metadata/A", headers={"Authorization": f"Apikey {key}"})
        assert answer.status_code == 200 and json.loads(answer.text)["data"]["id"] == "A"
    finally:
        process.terminate()  # forwarded to the server, whose exit code broker returns
        process.wait(timeout=15)
    assert process.stderr is not None
    printed = process.stderr.read().decode()
    assert "api_key=***" in printed and key not in printed
    assert not [p for p in processes[1:] if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_percent_signs_and_spaces_in_paths_are_served(tmp_path: Path) -> None:
    """What file_uri_unsafe lets through ('%', spaces) round-trips through Tiled's file:// URIs."""
    from tiled.client import from_uri

    base = tmp_path / "data"
    (base / "a%41 dir").mkdir(parents=True)
    names = ["100% ok.h5", "a%41 dir/b%20c.h5"]
    for i, name in enumerate(names):
        with h5py.File(base / name, "w") as f:
            f["x"] = np.arange(3.0) + 10 * i
    pair = _write_pair(tmp_path, ["K0", "K1"], ["t", "t"], names)
    catalog = str(tmp_path / "catalog.db")
    _ingest(pair, base, catalog)
    with running_server(catalog, base) as url:
        client = from_uri(url, api_key="secret")
        assert client["K0"]["t"].read().tolist() == [0.0, 1.0, 2.0]
        assert client["K1"]["t"].read().tolist() == [10.0, 11.0, 12.0]
