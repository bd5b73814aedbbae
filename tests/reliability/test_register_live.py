"""`broker register` through a real `tiled serve`: concurrent, retried through a
fault-injecting proxy, interrupted and re-run, and equal to the bulk writer's catalog."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.database import locate
from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.plan import plan_nodes
from manifest_broker.catalog.register import KEY_SCHEMA, ServerState, register_plan
from manifest_broker.catalog.serve import running_server
from manifest_broker.catalog.write import init_catalog
from tests.integration.catalog_dump import dump
from tests.pg import new_database
from tests.reliability.conftest import BROKER, batched_dataset
from tests.reliability.fault_proxy import fault_proxy

pytestmark = pytest.mark.integration
N = 30  # Hamiltonians x 2 artifacts


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ManifestPair]:
    root = tmp_path_factory.mktemp("reg")
    base = root / "data"
    base.mkdir()
    return base, ManifestPair(*batched_dataset(base, root / "m", "reg", N))


def _catalog(backend: str, tmp_path: Path, request: pytest.FixtureRequest, name: str) -> str:
    if backend == "sqlite":
        return str(tmp_path / f"{name}.db")
    return new_database(request.getfixturevalue("postgres_server"))


def _register(
    url: str, base: Path, pair: ManifestPair, *extra: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *BROKER,
            "register",
            str(pair.hamiltonians),
            str(pair.artifacts),
            "--base-dir",
            str(base),
            "--url",
            url,
            "--parent",
            "lab",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TILED_API_KEY": "secret", "COLUMNS": "250", **(env or {})},
    )


def _bulk(base: Path, pair: ManifestPair, catalog: str) -> dict:
    ingest([pair], base, catalog, parent="lab")
    return dump(catalog)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_retried_through_faults_equals_the_bulk_writer(
    dataset: tuple[Path, ManifestPair], backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    base, pair = dataset
    served, reference = (_catalog(backend, tmp_path, request, n) for n in ("served", "bulk"))
    init_catalog(locate(served))
    with running_server(served, base, log=tmp_path / "serve.log") as url:
        with fault_proxy(url, share=0.25, seed=7) as (proxy, counts):
            done = _register(proxy, base, pair, "--workers", "6")
            assert done.returncode == 0, done.stdout + done.stderr
            assert f"created {N} Hamiltonians and {2 * N} artifacts" in done.stdout
            assert all(counts[f] > 0 for f in ("500", "429", "drop", "forward_then_drop")), counts
            # the 5xx and 429 answers lowered the requests in flight (and it says so)
            assert "the server was overloaded" in done.stdout and "of 6" in done.stdout, done.stdout
            again = _register(proxy, base, pair)
        assert again.returncode == 0 and f"{N} Hamiltonians and {2 * N} artifacts were already there" in again.stdout
        assert "secret" not in done.stdout + done.stderr + again.stdout + again.stderr
    assert dump(served) == _bulk(base, pair, reference)


def test_interrupted_then_rerun_completes_without_duplicates(
    dataset: tuple[Path, ManifestPair], tmp_path: Path
) -> None:
    base, pair = dataset
    served, reference = str(tmp_path / "served.db"), str(tmp_path / "bulk.db")
    init_catalog(locate(served))
    with running_server(served, base, log=tmp_path / "serve.log") as url:
        for sig in (signal.SIGINT, signal.SIGKILL):
            process = subprocess.Popen(
                [
                    *BROKER,
                    "register",
                    str(pair.hamiltonians),
                    str(pair.artifacts),
                    "--base-dir",
                    str(base),
                    "--url",
                    url,
                    "--parent",
                    "lab",
                    "--workers",
                    "2",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "TILED_API_KEY": "secret"},
            )
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # wait until some, not all, Hamiltonians are there
                answer = httpx.get(
                    f"{url}/api/v1/search/lab", params={"page[limit]": "0"}, headers={"Authorization": "Apikey secret"}
                )
                count = answer.json()["meta"]["count"] if answer.status_code == 200 else 0
                if count >= (5 if sig == signal.SIGINT else 20):
                    break
                time.sleep(0.05)
            process.send_signal(sig)
            out, err = process.communicate(timeout=120)
            assert process.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), (
                out,
                err,
            )  # the README's 130
            if sig == signal.SIGINT:
                assert "interrupted" in err and "re-run to finish" in err, out + err
        done = _register(url, base, pair)
        assert done.returncode == 0, done.stdout + done.stderr
    assert dump(served) == _bulk(base, pair, reference)


def test_key_taken_between_check_and_write_is_a_counted_failure(
    dataset: tuple[Path, ManifestPair], tmp_path: Path
) -> None:
    base, pair = dataset
    served = str(tmp_path / "served.db")
    init_catalog(locate(served))
    plan = plan_nodes(check_manifests([pair], base).checked())
    taken = plan.hamiltonians["key"][3].as_py()
    with running_server(served, base, log=tmp_path / "serve.log") as url:
        from tiled.client import from_uri

        client = from_uri(url, api_key="secret")
        client.create_container("lab").create_container(taken, metadata={"huid": "somebody-else"})
        stale = ServerState(KEY_SCHEMA.empty_table(), {}, {})  # listed before somebody took the key
        result = register_plan(lambda: from_uri(url, api_key="secret"), plan, parent="lab", workers=4, existing=stale)
        assert result.failed == [
            (
                f"lab/{taken}",
                f"key exists on the server for huid somebody-else, not {plan.hamiltonians['huid'][3].as_py()}",
            )
        ]
        assert result.created_hamiltonians == N - 1 and result.created_arrays == 2 * (N - 1)
        # through the CLI the contract sees the server's key first
        done = _register(url, base, pair)
        assert done.returncode == 1 and "key_in_catalog" in done.stdout and taken in done.stdout
        assert client["lab"][taken].metadata["huid"] == "somebody-else"


def test_one_line_errors(dataset: tuple[Path, ManifestPair], tmp_path: Path) -> None:
    from manifest_broker.catalog.serve import free_port

    base, pair = dataset
    down = _register(f"http://127.0.0.1:{free_port()}", base, pair)
    assert down.returncode == 1 and down.stderr.startswith("error:") and "cannot reach" in down.stderr
    assert "Traceback" not in down.stderr
    served = str(tmp_path / "served.db")
    init_catalog(locate(served))
    with running_server(served, base, log=tmp_path / "serve.log") as url:
        wrong = _register(url, base, pair, env={"TILED_API_KEY": "not-the-key"})
        assert wrong.returncode == 1 and wrong.stderr.startswith("error:") and "API key" in wrong.stderr
        assert "Traceback" not in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
        assert "not-the-key" not in wrong.stdout + wrong.stderr
        # a 500 storm longer than tiled.client's retries: failures counted, exit 1, then a re-run completes
        with fault_proxy(url, share=1.0, faults=("500",)) as (proxy, _):
            storm = _register(proxy, base, pair, env={"TILED_RETRY_TIMEOUT": "1", "TILED_RETRY_ATTEMPTS": "2"})
        assert storm.returncode == 1 and "Traceback" not in storm.stderr, storm.stderr
        done = _register(url, base, pair)
        assert done.returncode == 0 and f"created {N} Hamiltonians" in done.stdout
