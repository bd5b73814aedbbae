"""The contract is the only gate between a provider's files and what the server reads.

Built by hand here (not with generators/): the tab-directory escape (Tiled's own
register() serves a file outside the data directory through it), a directory
swapped for a symlink while `ingest` runs, and a property over path components
drawn from all of Unicode, served through one real `tiled serve`: accepted means
served from exactly that file, refused means a rule names the row.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.database import locate
from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.plan import plan_nodes
from manifest_broker.catalog.serve import running_server
from manifest_broker.catalog.write import IngestError, init_catalog, write_plan
from tests.integration.catalog_dump import dump

pytestmark = pytest.mark.integration
SECRET = np.frombuffer(b"TOP SECRET: outside the data directory", dtype="u1")


def _h5(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["x"] = values


def _pair(folder: Path, files: list[str], name: str = "m") -> ManifestPair:
    folder.mkdir(parents=True, exist_ok=True)
    n = len(files)
    pair = ManifestPair(folder / f"{name}_hamiltonians.parquet", folder / f"{name}_artifacts.parquet")
    pq.write_table(
        pa.table(
            {"huid": [f"h{i}" for i in range(n)], "key": [f"K{i}" for i in range(n)], "J": [float(i) for i in range(n)]}
        ),
        pair.hamiltonians,
    )
    pq.write_table(
        pa.table({"huid": [f"h{i}" for i in range(n)], "type": ["t"] * n, "file": files, "dataset": ["/x"] * n}),
        pair.artifacts,
    )
    return pair


def _errors(report) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    return [(f["rule"], f["row"]) for f in report.findings.to_pylist() if f["severity"] == "error"]


@pytest.mark.parametrize("character", ["\t", "\n", "\r"])
def test_a_control_character_folder_cannot_escape(tmp_path: Path, character: str) -> None:
    """A folder named "<tab>.." inside the data directory: URL parsing drops the tab,
    the asset path becomes "..", and Tiled's text-only storage check lets it by."""
    from tiled.client import from_uri

    base = tmp_path / "data"
    _h5(base / f"{character}.." / "x.h5", np.arange(len(SECRET), dtype="u1"))  # what the check would open
    _h5(tmp_path / "x.h5", SECRET)  # what the server would open: outside the data directory
    (base / "link").symlink_to(base / f"{character}..", target_is_directory=True)

    # Tiled's own registration has the hole: its server serves the outside file.
    catalog = str(tmp_path / "tiled.db")
    init_catalog(locate(catalog))
    with running_server(catalog, base) as url:
        client = from_uri(url, api_key="secret")
        client.register(str(base / f"{character}.." / "x.h5"), key="escape", parameters={"dataset": "/x"})
        assert np.array_equal(client["escape"].read(), SECRET)

    # The contract refuses it by every route: in the manifest's text, through a
    # symlink inside the data directory, and in the data directory's own name.
    text = check_manifests([_pair(tmp_path / "m1", [f"{character}../x.h5"])], base, use_cache=False)
    assert _errors(text) == [("file_invalid", 0)]
    assert "control characters" in text.findings.to_pylist()[0]["message"]
    linked = check_manifests([_pair(tmp_path / "m2", ["link/x.h5"])], base, use_cache=False)
    assert _errors(linked) == [("file_uri_unsafe", 0)]
    message = linked.findings.to_pylist()[0]["message"]
    assert "control character" in message and character not in message  # one printable line
    named = tmp_path / f"da{character}ta"
    shutil.copytree(base / f"{character}..", named / "sub")
    assert _errors(check_manifests([_pair(tmp_path / "m3", ["sub/x.h5"])], named, use_cache=False)) == [
        ("file_uri_unsafe", 0)
    ]


@pytest.mark.parametrize("name", ["a#b", "run?1", "x;y", "a%2Fb", " lead", "trail "])
def test_what_the_asset_uri_cannot_carry_is_refused_and_the_rest_is_served(tmp_path: Path, name: str) -> None:
    from tiled.client import from_uri
    from tiled.utils import ensure_uri, path_from_uri

    base = tmp_path / "data"
    _h5(base / name / "x.h5", np.arange(3.0))
    pair = _pair(tmp_path / "m", [f"{name}/x.h5"])
    report = check_manifests([pair], base, use_cache=False)
    survives = str(path_from_uri(ensure_uri(str(base / name / "x.h5")))) == str(base / name / "x.h5")
    if not survives:
        assert _errors(report) == [("file_uri_unsafe", 0)]
        return
    assert report.ok, report.findings.to_pylist()
    catalog = str(tmp_path / "catalog.db")
    ingest([pair], base, catalog)
    with running_server(catalog, base) as url:
        assert from_uri(url, api_key="secret")["K0"]["t"].read().tolist() == [0.0, 1.0, 2.0]


def _swap_directory(base: Path, outside: Path) -> None:
    """From another process: base/sub becomes a symlink to a folder outside holding
    a copy of sub/a.h5 with the same size and mtime."""
    script = (
        "import os, shutil, sys\n"
        "base, outside = sys.argv[1], sys.argv[2]\n"
        "os.makedirs(outside)\n"
        "shutil.copy2(os.path.join(base, 'sub', 'a.h5'), os.path.join(outside, 'a.h5'))\n"
        "os.rename(os.path.join(base, 'sub'), os.path.join(base, 'sub.orig'))\n"
        "os.symlink(outside, os.path.join(base, 'sub'))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(base), str(outside)], check=True)


def _swap_file(base: Path, outside: Path) -> None:
    """From another process: sub/a.h5 replaced by a copy (same size and mtime, another inode)."""
    script = (
        "import os, shutil, sys\n"
        "path = os.path.join(sys.argv[1], 'sub', 'a.h5')\n"
        "shutil.copy2(path, path + '.new')\n"
        "os.replace(path + '.new', path)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(base)], check=True)


@pytest.mark.parametrize("swap", [_swap_directory, _swap_file], ids=["directory-to-symlink", "file-replaced"])
def test_a_swap_while_ingesting_aborts_with_nothing_written(tmp_path: Path, catalog_uri: str, swap) -> None:  # type: ignore[no-untyped-def]
    base, outside = tmp_path / "data", tmp_path / "outside"
    _h5(base / "sub" / "a.h5", np.arange(len(SECRET), dtype="u1"))
    _h5(base / "b.h5", np.arange(4.0))
    pair = _pair(tmp_path / "m", ["sub/a.h5", "b.h5"])
    report = check_manifests([pair], base, use_cache=False)
    plan = plan_nodes(report.checked())
    location = locate(catalog_uri)
    init_catalog(location)
    before = dump(catalog_uri)
    seen = os.stat(base / "sub" / "a.h5")

    with pytest.raises(IngestError, match="nothing was written") as refused:
        write_plan(location, plan, before_commit=lambda: swap(base, outside))
    # What the old re-check compared (size, mtime) would have let it through.
    now = os.stat(base / "sub" / "a.h5")
    assert (now.st_size, now.st_mtime_ns) == (seen.st_size, seen.st_mtime_ns)
    assert "sub/a.h5" in str(refused.value)
    assert dump(catalog_uri) == before


# ---------------------------------------------------------------------------------
# A property over path components from all of Unicode, through one real server.

_SPECIAL = [
    "\t..",
    "\n..",
    "\r..",
    "a#b",
    "a?b",
    "x\x85y",
    "\u2028",
    " lead",
    "trail ",
    "%41",
    "a;b",
    "~",
    "\\",
    "caf\u00e9",
    "cafe\u0301",
    "\u65e5\u672c",
    "\U0001f600",
    "-",
    "...",
    ".hidden",
    "a\u200bb",
]
COMPONENTS = st.one_of(
    st.sampled_from(_SPECIAL),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=8),
).filter(lambda c: c not in (".", "..") and len(c.encode()) <= 120)
ALLOWED_REFUSALS = {"file_invalid", "file_uri_unsafe"}
counter = itertools.count()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    root = tmp_path_factory.mktemp("unicode")
    base = root / "data"
    base.mkdir()
    catalog = str(root / "catalog.db")
    init_catalog(locate(catalog))
    with running_server(catalog, base) as url:
        yield base, catalog, url


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(directory=COMPONENTS, stem=COMPONENTS)
@example(directory="\t..", stem="x").via("the tab-directory escape")
@example(directory="a#b", stem="c?d").via("URL delimiters")
def test_accepted_paths_are_served_from_exactly_that_file(
    live: tuple[Path, str, str], directory: str, stem: str
) -> None:
    from tiled.client import from_uri

    base, catalog, url = live
    i = next(counter)
    relative = f"ex{i}/{directory}/{stem}.h5"
    values = np.arange(3.0) + 10 * i  # this file's own values
    try:
        _h5(base / relative, values)
    except (OSError, ValueError):  # a name the filesystem itself refuses (too long...)
        return
    pair = _pair(base.parent / "manifests" / f"ex{i}", [relative])
    report = check_manifests([pair], base, use_cache=False)
    if not report.ok:
        errors = _errors(report)
        assert errors and all(row == 0 and rule in ALLOWED_REFUSALS for rule, row in errors), errors
        return
    ingest([pair], base, catalog, parent=f"ex{i}")
    served = from_uri(url, api_key="secret")[f"ex{i}"]["K0"]["t"].read()
    assert np.array_equal(served, values), (relative, served)
