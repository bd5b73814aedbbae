"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from manifest_broker.cache import default_cache_dir
from manifest_broker.catalog.database import locate
from manifest_broker.catalog.serve import running_server
from manifest_broker.catalog.write import init_catalog


@pytest.fixture(scope="module")
def upload_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server that cannot read the provider's files: an empty readable directory,
    writable storage of its own (one per module: each test registers under its own
    parent). Yields its URL and its storage folder."""
    tmp_path = tmp_path_factory.mktemp("upload-server")
    catalog = tmp_path / "server.db"
    init_catalog(locate(str(catalog)), template_dir=default_cache_dir())
    (tmp_path / "nothing").mkdir()
    storage = tmp_path / "storage"
    storage.mkdir()
    with running_server(str(catalog), tmp_path / "nothing", storage=storage, log=tmp_path / "serve.log") as url:
        yield url, storage
