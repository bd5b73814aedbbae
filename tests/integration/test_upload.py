"""`register --upload`: a provider whose files the server cannot read. A real
`tiled serve` with writable storage and an empty readable directory gets every
array's data through Tiled's own client, in blocks; the served arrays equal the
provider's files (also `broker verify`); a run killed anywhere is finished by a
re-run, each array exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifest_broker.catalog import upload as upload_module
from manifest_broker.catalog.client import Server
from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.register import ServerTarget
from manifest_broker.catalog.serve import running_server
from tests.reliability.conftest import BROKER

pytestmark = pytest.mark.integration
ENV = {**os.environ, "TILED_API_KEY": "secret"}


def _provider(root: Path) -> tuple[Path, Path, dict[tuple[str, str], np.ndarray]]:
    """Hand-written files of every shape class: one file per Hamiltonian (a chunked
    2-D float array, a scalar, a zero-length array, an integer image) and one
    batched file whose rows are Hamiltonians."""
    data, manifests = root / "provider", root / "manifests"
    data.mkdir()
    manifests.mkdir()
    rng = np.random.default_rng(7)
    expected: dict[tuple[str, str], np.ndarray] = {}
    hams, arts = [], []
    for i in range(3):
        huid = f"run{i}"
        arrays = {
            "sqe": rng.random((40, 30)),
            "energy": np.float64(12.5 + i),
            "empty": np.zeros((0, 3), np.float32),
            "image": rng.integers(0, 2**16, (16, 16), dtype=np.uint16),
        }
        with h5py.File(data / f"{huid}.h5", "w") as f:
            f.create_dataset("sqe", data=arrays["sqe"], chunks=(8, 30), compression="gzip")
            f["energy"] = arrays["energy"]
            f["empty"] = arrays["empty"]
            f["image"] = arrays["image"]
        hams.append({"huid": huid, "key": f"H_{huid}", "T": 10.0 * (i + 1)})
        for name, values in arrays.items():
            arts.append({"huid": huid, "type": name, "file": f"{huid}.h5", "dataset": f"/{name}", "index": None})
            # served as Tiled serves the file: a whole scalar or zero-length dataset with a leading axis of one
            value = np.asarray(values)
            expected[(f"H_{huid}", name)] = value[np.newaxis] if value.ndim == 0 or 0 in value.shape else value
    batch = rng.random((4, 5, 6)).astype(np.float32)
    with h5py.File(data / "batch.h5", "w") as f:
        f.create_dataset("spectra", data=batch, chunks=(1, 5, 6))
    for i in range(4):
        huid = f"b{i}"
        hams.append({"huid": huid, "key": f"H_{huid}", "T": 1.0 + i})
        arts.append({"huid": huid, "type": "spectra", "file": "batch.h5", "dataset": "/spectra", "index": i})
        expected[(f"H_{huid}", "spectra")] = batch[i]
    pq.write_table(pa.Table.from_pylist(hams), manifests / "up_hamiltonians.parquet")
    pq.write_table(
        pa.Table.from_pylist(
            arts,
            schema=pa.schema(
                [
                    ("huid", pa.string()),
                    ("type", pa.string()),
                    ("file", pa.string()),
                    ("dataset", pa.string()),
                    ("index", pa.int64()),
                ]
            ),
        ),
        manifests / "up_artifacts.parquet",
    )
    return data, manifests, expected


def _served(url: str, parent: str) -> dict[tuple[str, str], tuple[np.ndarray, dict]]:
    from tiled.client import from_uri

    node = from_uri(url, api_key="secret")[parent]
    return {(key, art): (child.read(), dict(child.metadata)) for key, ham in node.items() for art, child in ham.items()}


def test_uploaded_arrays_equal_the_files_in_many_blocks(tmp_path: Path, upload_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url, storage = upload_server
    data, manifests, expected = _provider(tmp_path)
    # Blocks of at most 1 kB: the 40 x 30 float array goes out as several write_block requests.
    monkeypatch.setattr(upload_module, "UPLOAD_BLOCK_BYTES", 1024)
    pair = ManifestPair(manifests / "up_hamiltonians.parquet", manifests / "up_artifacts.parquet")
    run = ingest([pair], data, ServerTarget(Server(url, "secret"), workers=4, upload=True), parent="blocks")
    assert run.result.failed == [] and run.result.created_arrays == len(expected) and run.missing == 0
    served = _served(url, "blocks")
    assert set(served) == set(expected)
    for where, (values, metadata) in served.items():
        want = expected[where]
        assert values.dtype == want.dtype and values.shape == want.shape and np.array_equal(values, want), where
        assert upload_module.UPLOAD_MARK not in metadata
    from tiled.client import from_uri

    sqe = from_uri(url, api_key="secret")["blocks"]["H_run0"]["sqe"]
    assert len(sqe.structure().chunks[0]) > 1  # uploaded in blocks, served as such
    # Mode A still points at the provider's file; Mode B is the server's own copy
    ham = from_uri(url, api_key="secret")["blocks"]["H_run0"]
    assert Path(ham.metadata["path_sqe"]) == (data / "run0.h5").resolve() and ham.metadata["T"] == 10.0
    assert any(storage.rglob("*")), "nothing in the server's writable storage"
    verified = subprocess.run(
        [
            *BROKER,
            "verify",
            str(manifests),
            "--base-dir",
            str(data),
            "--url",
            url,
            "--parent",
            "blocks",
            "--sample",
            "100",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=ENV,
    )
    report = json.loads(verified.stdout)
    assert verified.returncode == 0 and report["problems"] == [], verified.stdout
    assert report["arrays_compared"] == len(expected) and report["uploaded"] == len(expected)
    again = subprocess.run(
        [
            *BROKER,
            "register",
            str(manifests),
            "--base-dir",
            str(data),
            "--url",
            url,
            "--parent",
            "blocks",
            "--upload",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=ENV,
    )
    out = json.loads(again.stdout)
    assert again.returncode == 0 and out["created_arrays"] == 0 and out["existing_arrays"] == len(expected)


def test_an_upload_cut_short_is_redone_once(tmp_path: Path, upload_server) -> None:  # type: ignore[no-untyped-def]
    """What a killed run leaves (an array created, its marker still on, its blocks
    unwritten) is deleted and uploaded again; the rest is kept."""
    from tiled.client import from_uri

    url, _ = upload_server
    data, manifests, expected = _provider(tmp_path)
    args = [*BROKER, "register", str(manifests), "--base-dir", str(data), "--url", url, "--parent", "cut", "--upload"]
    assert subprocess.run(args, capture_output=True, env=ENV).returncode == 0
    ham = from_uri(url, api_key="secret")["cut"]["H_run1"]
    ham["sqe"].delete(external_only=False)
    from tiled.structures.array import ArrayStructure
    from tiled.structures.core import StructureFamily
    from tiled.structures.data_source import DataSource

    ham.new(
        StructureFamily.array,
        [DataSource(structure=ArrayStructure.from_array(np.zeros((40, 30))), structure_family=StructureFamily.array)],
        key="sqe",
        metadata={upload_module.UPLOAD_MARK: "incomplete"},
    )  # no block written
    broken = subprocess.run(
        [*BROKER, "verify", str(manifests), "--base-dir", str(data), "--url", url, "--parent", "cut", "--json"],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert broken.returncode == 1 and any("cut short" in p for p in json.loads(broken.stdout)["problems"])
    rerun = subprocess.run([*args, "--json"], capture_output=True, text=True, env=ENV)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["created_arrays"] == 1
    served = _served(url, "cut")
    assert set(served) == set(expected)
    assert np.array_equal(served[("H_run1", "sqe")][0], expected[("H_run1", "sqe")])


def test_a_register_upload_killed_anywhere_is_finished_by_a_rerun(tmp_path: Path, upload_server) -> None:  # type: ignore[no-untyped-def]
    from tiled.client import from_uri

    url, _ = upload_server
    data, manifests, expected = _provider(tmp_path)
    args = [
        *BROKER,
        "register",
        str(manifests),
        "--base-dir",
        str(data),
        "--url",
        url,
        "--parent",
        "killed",
        "--upload",
        "--workers",
        "2",
    ]
    process = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    client = from_uri(url, api_key="secret")
    while time.monotonic() < deadline and process.poll() is None:  # kill once the first arrays are going up
        if "killed" in client and sum(len(h) for _, h in client["killed"].items()) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    rerun = subprocess.run([*args, "--json"], capture_output=True, text=True, env=ENV)
    assert rerun.returncode == 0, rerun.stderr
    out = json.loads(rerun.stdout)
    assert out["created_arrays"] + out["existing_arrays"] == len(expected) and out["missing"] == 0
    served = _served(url, "killed")
    assert set(served) == set(expected)
    for where, (values, metadata) in served.items():
        assert np.array_equal(values, expected[where]) and upload_module.UPLOAD_MARK not in metadata


def test_ingest_upload_fills_the_catalogs_own_storage_served_without_the_files(tmp_path: Path) -> None:
    """`ingest --upload DIR` (Tiled's app in process): a stock server whose readable
    storage is an empty folder serves every array from DIR, equal to the files."""
    data, manifests, expected = _provider(tmp_path)
    catalog, storage = tmp_path / "c.db", tmp_path / "storage"
    args = [
        *BROKER,
        "ingest",
        str(manifests),
        "--base-dir",
        str(data),
        "--catalog",
        str(catalog),
        "--parent",
        "lab",
        "--upload",
        str(storage),
        "--json",
    ]
    first = subprocess.run(args, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["created_arrays"] == len(expected) and out["created_hamiltonians"] == 7
    again = subprocess.run(args, capture_output=True, text=True)
    assert again.returncode == 0 and json.loads(again.stdout)["created_arrays"] == 0
    assert "Traceback" not in first.stderr + again.stderr and "Tiled version" not in first.stderr
    (tmp_path / "nothing").mkdir()
    with running_server(str(catalog), tmp_path / "nothing", storage=storage) as url:
        served = _served(url, "lab")
    assert set(served) == set(expected)
    for where, (values, _) in served.items():
        assert values.dtype == expected[where].dtype and np.array_equal(values, expected[where]), where
