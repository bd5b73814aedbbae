"""`broker delete`: on a catalog database (SQLite and PostgreSQL) and through a real
server; nothing of the deleted nodes is left behind, files are never touched, and a
re-ingest gives back the catalog as it was."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.serve import running_server
from tests.integration.catalog_dump import dump, integrity_problems
from tests.integration.small_datasets import per_file_pair
from tests.pg import new_database
from tests.reliability.conftest import BROKER, batched_dataset

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ManifestPair]]:
    root = tmp_path_factory.mktemp("delete")
    base, manifests = root / "data", root / "m"
    base.mkdir()
    manifests.mkdir()
    return base, [ManifestPair(*batched_dataset(base, manifests, "bt", 5)), per_file_pair(base, manifests)]


def _fresh(backend: str, tmp_path: Path, request: pytest.FixtureRequest, name: str) -> str:
    return (
        str(tmp_path / f"{name}.db")
        if backend == "sqlite"
        else new_database(request.getfixturevalue("postgres_server"))
    )


def _broker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*BROKER, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TILED_API_KEY": "secret", "COLUMNS": "250"},
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_delete_then_reingest_gives_the_original(
    data: tuple[Path, list[ManifestPair]], backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    base, pairs = data
    catalog = _fresh(backend, tmp_path, request, "c")
    ingest(pairs, base, catalog, parent="lab")
    original = dump(catalog)
    files = {p: p.stat().st_mtime_ns for p in base.iterdir()}

    preview = _broker("delete", "lab/P0", "lab/H_bt-0000002", "--catalog", catalog, "--dry-run")
    assert (
        preview.returncode == 0
        and "would delete 4 array node(s), 2 container node(s) and 2 asset row(s)" in preview.stdout
    ), preview.stderr
    assert dump(catalog) == original

    done = _broker("delete", "lab/P0", "lab/H_bt-0000002", "--catalog", catalog, "--yes")
    assert done.returncode == 0 and "deleted 4 array node(s), 2 container node(s) and 2 asset row(s)" in done.stdout, (
        done.stdout
    )
    after = dump(catalog)
    assert len(after["nodes"]) == len(original["nodes"]) - 6
    assert not any(n[0].startswith(("/lab/P0", "/lab/H_bt-0000002")) for n in after["nodes"])
    # the shared batched file keeps its asset, P0's own files lose theirs
    assert len(after["assets"]) == len(original["assets"]) - 2
    assert all(v == 0 for v in integrity_problems(catalog).values()), integrity_problems(catalog)
    assert {p: p.stat().st_mtime_ns for p in base.iterdir()} == files  # files untouched

    ingest(pairs, base, catalog, parent="lab")
    assert dump(catalog) == original


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_deleting_an_artifact_trims_its_locators_with_a_revision(
    data: tuple[Path, list[ManifestPair]], backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    base, pairs = data
    catalog = _fresh(backend, tmp_path, request, "c")
    ingest(pairs, base, catalog, parent="lab")
    original = dump(catalog)
    done = _broker("delete", "lab/P1/dos", "--catalog", catalog, "--yes")
    assert done.returncode == 0 and "removed the Mode A locators of dos from lab/P1" in done.stdout, done.stdout
    after = dump(catalog)
    meta = {n[0]: json.loads(n[2]) for n in after["nodes"]}
    assert "/lab/P1/dos" not in meta and "path_dos" not in meta["/lab/P1"] and "path_sqw" in meta["/lab/P1"]
    [revision] = after["revisions"]
    assert revision[0] == "/lab/P1" and "path_dos" in json.loads(revision[2])
    assert all(v == 0 for v in integrity_problems(catalog).values())
    # re-ingest restores the node and its locators (a second revision row records that)
    ingest(pairs, base, catalog, parent="lab")
    again = dump(catalog)
    assert {k: v for k, v in again.items() if k != "revisions"} == {
        k: v for k, v in original.items() if k != "revisions"
    }
    assert [r[1] for r in again["revisions"]] == [1, 2]


def test_through_the_server_equals_the_catalog_path(data: tuple[Path, list[ManifestPair]], tmp_path: Path) -> None:
    base, pairs = data
    direct, served = str(tmp_path / "direct.db"), str(tmp_path / "served.db")
    for catalog in (direct, served):
        ingest(pairs, base, catalog, parent="lab")
    targets = ["lab/P0", "lab/H_bt-0000001/xas"]
    assert _broker("delete", *targets, "--catalog", direct, "--yes").returncode == 0
    with running_server(served, base, log=tmp_path / "serve.log") as url:
        preview = _broker("delete", *targets, "--url", url, "--dry-run")
        assert preview.returncode == 0 and "would delete 3 array node(s), 1 container node(s)" in preview.stdout, (
            preview.stdout
        )
        done = _broker("delete", *targets, "--url", url, "--yes")
        assert done.returncode == 0, done.stderr
        from tiled.client import from_uri

        assert "P0" not in from_uri(url, api_key="secret")["lab"]
    a, b = dump(direct), dump(served)
    # revisions: same rows; Tiled's patch may store the old metadata with different key spacing
    assert {k: v for k, v in a.items() if k != "revisions"} == {k: v for k, v in b.items() if k != "revisions"}
    assert [(r[0], r[1], json.loads(r[2])) for r in a["revisions"]] == [
        (r[0], r[1], json.loads(r[2])) for r in b["revisions"]
    ]


def test_wrong_use_is_refused_and_deletes_nothing(data: tuple[Path, list[ManifestPair]], tmp_path: Path) -> None:
    base, pairs = data
    catalog = str(tmp_path / "c.db")
    ingest(pairs, base, catalog, parent="lab")
    before = dump(catalog)
    cases = [
        (["lab/P0", "lab/nope", "--catalog", catalog, "--yes"], 1, "not in the catalog: lab/nope; nothing was deleted"),
        (["/", "--catalog", catalog, "--yes"], 1, "catalog's root"),
        (["lab/P0", "--catalog", catalog], 2, "without --yes"),
        (["lab/P0", "--yes"], 2, "exactly one of --url"),
        (["lab/P0", "--catalog", catalog, "--url", "http://127.0.0.1:9", "--yes"], 2, "exactly one of --url"),
        (["lab/P0", "--catalog", str(tmp_path / "absent.db"), "--yes"], 1, "absent.db"),
    ]
    for args, code, message in cases:
        result = _broker("delete", *args)
        assert result.returncode == code and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert dump(catalog) == before
