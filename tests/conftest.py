"""Shared fixtures: small synthetic datasets on disk, real files only."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.generators.generate import synthesize
from tests.pg import catalog_uri, postgres_server  # noqa: F401  (fixtures, one PostgreSQL server per session)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fast tier (`pytest -m "not slow"`) leaves out whatever starts a real server or
    cluster, the reliability suite, and the tests marked slow by hand."""
    for item in items:
        if item.get_closest_marker("integration") or "/reliability/" in str(item.path):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests never touch the user's ~/.cache.
    monkeypatch.setenv("BROKER_CACHE_DIR", str(tmp_path_factory.mktemp("probe-cache")))


@dataclass
class Dataset:
    root: Path
    base_dir: Path
    pair: ManifestPair

    @property
    def hamiltonians(self) -> pa.Table:
        return pq.read_table(self.pair.hamiltonians)

    @property
    def artifacts(self) -> pa.Table:
        return pq.read_table(self.pair.artifacts)

    def write(self, hamiltonians: pa.Table | None = None, artifacts: pa.Table | None = None) -> ManifestPair:
        if hamiltonians is not None:
            pq.write_table(hamiltonians, self.pair.hamiltonians)
        if artifacts is not None:
            pq.write_table(artifacts, self.pair.artifacts)
        return self.pair


@pytest.fixture(scope="session")
def _pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    for layout, n in (("spinwave", 4), ("edrixs", 6), ("vdp", 2), ("multimodal", 3)):
        synthesize(layout, root, n, seed=7)
    return root


def _copy(pristine: Path, tmp_path: Path, layout: str) -> Dataset:
    root = tmp_path / "ds"
    if not root.exists():
        shutil.copytree(pristine, root, symlinks=True)
    pair = ManifestPair(
        root / "manifests" / f"{layout}_hamiltonians.parquet", root / "manifests" / f"{layout}_artifacts.parquet"
    )
    return Dataset(root, root / "data", pair)


@pytest.fixture
def spinwave(_pristine: Path, tmp_path: Path) -> Dataset:
    """Four SpinWave Hamiltonians (pattern C), a private copy per test."""
    return _copy(_pristine, tmp_path, "spinwave")


@pytest.fixture
def edrixs(_pristine: Path, tmp_path: Path) -> Dataset:
    """Six EDRIXS Hamiltonians batched in one file (pattern B), a private copy per test."""
    return _copy(_pristine, tmp_path, "edrixs")


@pytest.fixture
def vdp(_pristine: Path, tmp_path: Path) -> Dataset:
    """Two VDP Hamiltonians, one file per artifact (pattern A)."""
    return _copy(_pristine, tmp_path, "vdp")


@pytest.fixture
def multimodal(_pristine: Path, tmp_path: Path) -> Dataset:
    return _copy(_pristine, tmp_path, "multimodal")


def tree_state(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file under the roots with its size and mtime: 'nothing was written' made checkable."""
    state = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if path.is_file() and not path.is_symlink():
                st = path.stat()
                state[str(path)] = (st.st_size, st.st_mtime_ns)
    return state
