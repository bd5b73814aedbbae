"""A real NeXus file (the `chopper.nxs` example the nexusformat package ships: LRMECS
at IPNS, an NXdirecttof measurement) through the guide's whole walk, unedited:
explore -> its generator -> check --card -> ingest -> a real `tiled serve`, every
array equal to h5py's; and a folder of mixed files through the same generator."""

from __future__ import annotations

import importlib.resources
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from manifest_broker.catalog.serve import running_server
from tests.reliability.conftest import BROKER

pytestmark = pytest.mark.integration


def _chopper() -> Path:
    return Path(str(importlib.resources.files("nexusformat") / "examples" / "chopper.nxs"))


def _run(*args: str) -> str:
    done = subprocess.run([*BROKER, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_chopper_example_explored_generated_checked_ingested_and_served(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(_chopper(), data / "chopper.nxs")
    explored = _run(
        "explore", str(data), "--generator", str(tmp_path / "gen.py"), "--card", str(tmp_path / "card.yaml")
    )
    assert "NeXus" in explored
    _run("generate", str(tmp_path / "gen.py"), str(data), str(tmp_path / "m"))
    (ham,) = pq.read_table(tmp_path / "m" / "data_hamiltonians.parquet").to_pylist()
    # Scalars of every group below the entry: the Fermi chopper (NXchopper) named
    # monochromator holds the incident energy; the source, detector and monitors too.
    assert ham["instrument_monochromator_energy"] == 130.0 and ham["instrument_monochromator_energy_units"] == "meV"
    assert ham["sample_temperature"] == 8.0 and ham["sample_temperature_units"] == "K"
    assert ham["instrument_detector_gas_pressure"] == 6.0 and ham["monitor1_distance_units"] == "m"
    assert ham["run_number"] == 3701 and isinstance(ham["run_number"], int)
    assert ham["sample_chemical_formula"] == "MgB2" and ham["instrument_source_name"] == "IPNS"
    arts = pq.read_table(tmp_path / "m" / "data_artifacts.parquet").to_pylist()
    assert {a["dataset"] for a in arts} == {"/entry/data/data", "/entry/data/polar_angle", "/entry/data/time_of_flight"}
    _run("check", str(tmp_path / "m"), "--base-dir", str(data), "--card", str(tmp_path / "card.yaml"))
    catalog = tmp_path / "c.db"
    _run("ingest", str(tmp_path / "m"), "--base-dir", str(data), "--catalog", str(catalog), "--parent", "lrmecs")
    from tiled.client import from_uri
    from tiled.queries import Key

    with running_server(str(catalog), data) as url:
        node = from_uri(url, api_key="secret")["lrmecs"]
        (served,) = [h for _, h in node.items()]
        with h5py.File(data / "chopper.nxs", "r") as f:
            for art in arts:
                values = served[art["type"]].read()
                want = f[art["dataset"]][()]
                assert values.dtype == want.dtype and np.array_equal(values, want), art
        assert served.metadata["instrument_monochromator_energy"] == 130.0
        assert len(node.search(Key("instrument_monochromator_energy") > 100)) == 1
        assert len(node.search(Key("instrument_monochromator_energy") > 200)) == 0


def _mixed(data: Path) -> None:
    """Two hand-written NeXus files that differ: the second has no run_number and an
    errors array the first lacks, and its sample sits in an NXcollection."""
    for i, (run, errors) in enumerate([(11, False), (None, True)]):
        with h5py.File(data / f"m{i}.nxs", "w") as f:
            entry = f.create_group("entry")
            entry.attrs["NX_class"] = "NXentry"
            if run is not None:
                entry["run_number"] = np.int32(run)
            sample = entry.create_group("sample")
            sample.attrs["NX_class"] = "NXsample"
            sample["temperature"] = 10.0 + i
            group = entry.create_group("data")
            group.attrs["NX_class"] = "NXdata"
            group.attrs["signal"] = "S"
            group["S"] = np.arange(6.0).reshape(2, 3) + i
            if errors:
                group["S_errors"] = np.ones((2, 3))
            extra = entry.create_group("extra")
            extra.attrs["NX_class"] = "NXcollection"
            extra["voltage"] = 1.5 * (i + 1)


def test_a_folder_of_mixed_files_passes_its_own_card(tmp_path: Path) -> None:
    """The generator, unedited, lists each file's own arrays (not every file's) and
    keeps an integer column integer where a file lacks it: check --card passes."""
    data = tmp_path / "data"
    data.mkdir()
    _mixed(data)
    _run("explore", str(data), "--generator", str(tmp_path / "gen.py"), "--card", str(tmp_path / "card.yaml"))
    _run("generate", str(tmp_path / "gen.py"), str(data), str(tmp_path / "m"))
    hams = pq.read_table(tmp_path / "m" / "data_hamiltonians.parquet")
    assert str(hams.schema.field("run_number").type) in ("int64", "int32") and hams["run_number"].to_pylist() == [
        11,
        None,
    ]
    assert hams["extra_voltage"].to_pylist() == [1.5, 3.0]
    arts = pq.read_table(tmp_path / "m" / "data_artifacts.parquet").to_pylist()
    assert sorted((a["file"], a["type"]) for a in arts) == [("m0.nxs", "S"), ("m1.nxs", "S"), ("m1.nxs", "S_errors")]
    _run("check", str(tmp_path / "m"), "--base-dir", str(data), "--card", str(tmp_path / "card.yaml"))
