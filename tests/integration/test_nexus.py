"""NeXus files, written by hand from the NeXus standard (not by the broker's own
synthesizer), through the guide's whole path: explore -> the printed generator ->
check -> ingest -> a real `tiled serve` -> arrays read back equal to h5py's, and
metadata searches (units kept as ``<column>_units``) find every measurement."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from manifest_broker.catalog.serve import running_server
from manifest_broker.commandline.main import app
from manifest_broker.provider import nexus
from manifest_broker.provider.explore import explore
from tests.reliability.conftest import BROKER

pytestmark = pytest.mark.integration
runner = CliRunner()


def _current(path: Path, seed: int) -> dict[str, np.ndarray]:
    """The NeXus convention of today (NIAC 2014): @default chain from the root, the
    NXdata group names its signal and axes, ``<signal>_errors`` beside the signal."""
    rng = np.random.default_rng(seed)
    arrays = {
        "S": rng.random((5, 7), dtype=np.float32),
        "S_errors": rng.random((5, 7), dtype=np.float32),
        "Q": np.linspace(0.5, 2.5, 5),
        "E": np.linspace(-1.0, 5.0, 7),
    }
    with h5py.File(path, "w") as f:
        f.attrs["NX_class"] = "NXroot"
        f.attrs["default"] = "entry"
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "data"
        entry["title"] = f"hand-written {seed}"
        entry["start_time"] = "2026-11-30T10:00:00+00:00"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "S"
        data.attrs["axes"] = np.array([b"Q", b"E"])
        data.attrs["Q_indices"] = np.int32(0)
        data.attrs["E_indices"] = np.int32(1)
        for name, values in arrays.items():
            data[name] = values
        data["Q"].attrs["units"] = "1/angstrom"
        data["E"].attrs["units"] = "meV"
        sample = entry.create_group("sample")
        sample.attrs["NX_class"] = "NXsample"
        sample["name"] = "MnF2"
        sample.create_dataset("temperature", data=10.0 + seed).attrs["units"] = "K"
        log = sample.create_group("temperature_log")
        log.attrs["NX_class"] = "NXlog"
        log["time"] = np.arange(3.0)
        log.create_dataset("value", data=np.array([9.0, 10.0, 11.0]) + seed).attrs["units"] = "K"
        instrument = entry.create_group("instrument")
        instrument.attrs["NX_class"] = "NXinstrument"
        instrument["name"] = "HYSPEC"
        mono = instrument.create_group("monochromator")
        mono.attrs["NX_class"] = "NXmonochromator"
        mono.create_dataset("energy", data=np.float32(15.0)).attrs["units"] = "meV"
        detector = instrument.create_group("detector")  # an array outside NXdata: not an artifact
        detector.attrs["NX_class"] = "NXdetector"
        detector["polar_angle"] = np.linspace(0, 60, 12)
    return arrays


def _legacy(path: Path, seed: int) -> dict[str, np.ndarray]:
    """The older convention Mantid's processed files still write: ``signal=1`` and
    ``axes="Q,E"`` on the dataset, ``errors`` beside it, no @default."""
    rng = np.random.default_rng(100 + seed)
    arrays = {
        "counts": rng.integers(0, 1000, (4, 6)).astype(np.int32),
        "errors": rng.random((4, 6)),
        "Q": np.linspace(1, 4, 4),
        "E": np.linspace(0, 10, 6),
    }
    with h5py.File(path, "w") as f:
        entry = f.create_group("run")
        entry.attrs["NX_class"] = b"NXentry"  # fixed-length bytes, as older writers leave them
        data = entry.create_group("sqw")
        data.attrs["NX_class"] = b"NXdata"
        for name, values in arrays.items():
            data[name] = values
        data["counts"].attrs["signal"] = np.int32(1)
        data["counts"].attrs["axes"] = b"Q,E"
        sample = entry.create_group("sample")
        sample.attrs["NX_class"] = b"NXsample"
        sample.create_dataset("temperature", data=np.array([4.0 + seed])).attrs["units"] = b"K"
    return arrays


def test_read_entry_finds_signal_axes_errors_and_parameters_in_both_conventions(tmp_path: Path) -> None:
    _current(tmp_path / "a.nxs", 0)
    _legacy(tmp_path / "b.nxs", 0)
    with h5py.File(tmp_path / "a.nxs") as f:
        assert nexus.entries(f) == ["/entry"]
        entry = nexus.read_entry(f, "/entry")
        params = {p.column: p for p in entry.parameters}
        assert entry.data == "data" and entry.signal == "data/S" and entry.errors == "data/S_errors"
        assert entry.axes == ["data/Q", "data/E"]
        assert entry.artifacts == {"S": "data/S", "S_errors": "data/S_errors", "Q": "data/Q", "E": "data/E"}
        assert params["sample_temperature"].units == "K" and params["sample_temperature"].kind == "float"
        assert params["sample_temperature_log"].reduce == "mean"
        assert nexus.value(f["entry/sample/temperature_log/value"], "mean") == 10.0
        assert params["instrument_monochromator_energy"].units == "meV"
        assert params["sample_name"].kind == "string" and nexus.value(f["entry/sample/name"]) == "MnF2"
        assert "instrument/detector/polar_angle" in entry.other_arrays
    with h5py.File(tmp_path / "b.nxs") as f:
        entry = nexus.read_entry(f, "/run")
        assert entry.signal == "sqw/counts" and entry.errors == "sqw/errors" and entry.axes == ["sqw/Q", "sqw/E"]
        assert [p.column for p in entry.parameters] == ["sample_temperature"]
        assert nexus.value(f["run/sample/temperature"]) == 4.0


@pytest.mark.parametrize("convention", ["current", "legacy"])
def test_hand_written_nexus_explore_generate_check_ingest_serve(tmp_path: Path, convention: str) -> None:
    data, manifests = tmp_path / "sqe", tmp_path / "manifests"
    data.mkdir()
    write, entry = (_current, "entry") if convention == "current" else (_legacy, "run")
    expected = {f"m{i}": write(data / f"m{i}.nxs", i) for i in range(3)}
    report = explore(data, sample=3)
    assert report.pattern == "NeXus", report.reason
    script = tmp_path / "gen_sqe_manifest.py"
    script.write_text(report.generator)
    made = runner.invoke(app, ["generate", str(script), str(data), str(manifests)])
    assert made.exit_code == 0, made.output
    hams = pq.read_table(manifests / "sqe_hamiltonians.parquet").to_pylist()
    assert sorted(h["huid"] for h in hams) == ["m0", "m1", "m2"]
    assert all(h["sample_temperature_units"] == "K" for h in hams)
    checked = runner.invoke(app, ["check", str(manifests), "--base-dir", str(data)])
    assert checked.exit_code == 0 and "OK" in checked.output, checked.output
    catalog = str(tmp_path / "catalog.db")
    ingested = runner.invoke(app, ["ingest", str(manifests), "--base-dir", str(data), "--catalog", catalog, "--json"])
    assert ingested.exit_code == 0, ingested.output
    n_types = 4
    assert json.loads(ingested.stdout)["created_arrays"] == 3 * n_types
    from tiled.client import from_uri
    from tiled.queries import Key

    with running_server(catalog, data, log=tmp_path / "serve.log") as url:
        client = from_uri(url, api_key="secret")
        for huid, arrays in expected.items():
            node = client[f"H_{huid}"]
            assert node.metadata["sample_temperature_units"] == "K"
            for name, values in arrays.items():
                with h5py.File(data / f"{huid}.nxs") as f:
                    group = "data" if convention == "current" else "sqw"
                    want = f[f"{entry}/{group}/{name}"][()]
                served = node[name].read()
                assert served.dtype == want.dtype and np.array_equal(served, want)
                assert np.array_equal(served, values)
        found = client.search(Key("sample_temperature") >= 1 + (10 if convention == "current" else 4))
        assert sorted(found) == ["H_m1", "H_m2"]


def test_synth_nexus_end_to_end_through_the_cli(tmp_path: Path) -> None:
    """The built-in S(Q,E) layout: synth, explore, the layout's generator, ingest, serve."""
    root = tmp_path / "nx"
    made = subprocess.run([*BROKER, "synth", "nexus", str(root), "-n", "4", "--json"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    shown = subprocess.run([*BROKER, "explore", str(root / "data"), "--json"], capture_output=True, text=True)
    report = json.loads(shown.stdout)
    assert report["pattern"] == "NeXus" and "values" in report["generator"]
    catalog = str(tmp_path / "c.db")
    done = subprocess.run(
        [*BROKER, "ingest", str(root / "manifests"), "--base-dir", str(root / "data"), "--catalog", catalog, "--json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    from tiled.client import from_uri

    files = sorted((root / "data").glob("*.nxs"))
    assert len(files) == 4
    with running_server(catalog, root / "data") as url:
        client = from_uri(url, api_key="secret")
        assert len(client) == 4
        for path in files:
            node = client[f"H_{path.stem}"]
            with h5py.File(path) as f:
                assert np.array_equal(node["values"].read(), f["mantid_workspace_1/workspace/values"][()])
                assert node.metadata["sample_temperature"] == f["mantid_workspace_1/sample/temperature"][()]
            assert node.metadata["sample_temperature_units"] == "K"
    assert os.path.exists(catalog)
