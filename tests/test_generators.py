"""Generators: deterministic synthetic data, the guide's interface, user scripts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.commandline.main import app
from manifest_broker.generators import LAYOUTS
from manifest_broker.generators.generate import GeneratorError, run_generator, synthesize

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures"


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.suffix in (".h5", ".nxs")):
        with h5py.File(path, "r") as f:

            def visit(name: str, obj: object) -> None:
                if isinstance(obj, h5py.Dataset):
                    h.update(name.encode())
                    data = obj[()]
                    h.update(data if isinstance(data, bytes) else np.asarray(data).tobytes())

            f.visititems(visit)
    return h.hexdigest()


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_synth_is_deterministic_and_passes_the_contract(layout: str, tmp_path: Path) -> None:
    a = synthesize(layout, tmp_path / "a", 3, seed=11)
    b = synthesize(layout, tmp_path / "b", 3, seed=11)
    synthesize(layout, tmp_path / "c", 3, seed=12)
    assert _digest(tmp_path / "a" / "data") == _digest(tmp_path / "b" / "data") != _digest(tmp_path / "c" / "data")
    assert a.hamiltonians.equals(b.hamiltonians) and a.artifacts.equals(b.artifacts)
    assert isinstance(a.hamiltonians, pa.Table) and {"huid", "key"} <= set(a.hamiltonians.column_names)
    names = sorted(p.name for p in a.written)
    assert names == [f"{layout}_artifacts.parquet", f"{layout}_hamiltonians.parquet"]
    pair = ManifestPair(tmp_path / "a" / "manifests" / names[1], tmp_path / "a" / "manifests" / names[0])
    report = check_manifests([pair], tmp_path / "a" / "data")
    assert report.ok and report.findings.num_rows == 0, report.findings.to_pylist()


def test_layout_shapes_match_the_issue(tmp_path: Path) -> None:
    vdp = synthesize("vdp", tmp_path, 2)
    assert vdp.artifacts.num_rows == 22 and len(set(vdp.artifacts["type"].to_pylist())) == 11
    assert (tmp_path / "data" / "vdp" / "parameters.parquet").is_file()
    edrixs = synthesize("edrixs", tmp_path, 5)
    assert edrixs.artifacts["index"].to_pylist() == list(range(5)) * 2
    with h5py.File(tmp_path / "data" / "edrixs" / "edrixs_spectra.h5") as f:
        assert f["spectra"].shape == (5, 151, 40) and f["spectra"].dtype == "float32"
        assert f["xas"].dtype == "float64"
    synthesize("multimodal", tmp_path, 2)
    with h5py.File(tmp_path / "data" / "multimodal" / "mm_00001.h5") as f:
        assert {"powder", "hisym", "Ma", "Mb", "params"} <= set(f)


def test_guides_spinwave_example_runs_with_only_data_dir_changed(tmp_path: Path) -> None:
    synthesize("spinwave", tmp_path, 4, seed=3)
    data = tmp_path / "data"
    script = tmp_path / "gen_spinwave_manifest.py"
    original = (FIXTURES / "gen_spinwave_manifest.py").read_text()
    edited = original.replace('DATA_DIR = "/sdf/data/.../spinwave/results"', f'DATA_DIR = "{data}"')
    assert edited.count("\n") == original.count("\n") and edited != original
    script.write_text(edited)
    out = tmp_path / "from-guide"
    result = runner.invoke(app, ["generate", str(script), str(data), str(out)])
    assert result.exit_code == 0, result.output
    assert "4 Hamiltonians" in result.output
    ham = pq.read_table(out / "spinwave_hamiltonians.parquet")
    builtin = pq.read_table(tmp_path / "manifests" / "spinwave_hamiltonians.parquet")
    columns = ["huid", "key", "J1", "J2", "K", "D"]
    assert ham.select(columns).to_pylist() == builtin.select(columns).to_pylist()
    pair = ManifestPair(out / "spinwave_hamiltonians.parquet", out / "spinwave_artifacts.parquet")
    assert check_manifests([pair], data).ok


def test_generate_cli_with_builtin_layout_and_limit(tmp_path: Path) -> None:
    synthesize("multimodal", tmp_path, 5)
    result = runner.invoke(app, ["generate", "multimodal", str(tmp_path / "data"), str(tmp_path / "m"), "-n", "2"])
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "m" / "multimodal_hamiltonians.parquet").num_rows == 2


def test_generator_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    with pytest.raises(GeneratorError, match="no generate"):
        run_generator(str(bad), tmp_path, tmp_path)
    with pytest.raises(GeneratorError, match="cannot import"):
        run_generator("no_such_module_here", tmp_path, tmp_path)
    with pytest.raises(GeneratorError, match="unknown layout"):
        synthesize("nope", tmp_path, 1)
    result = runner.invoke(app, ["generate", str(bad), str(tmp_path), str(tmp_path)])
    assert result.exit_code == 1 and "no generate" in result.output


def test_a_generator_that_prints_leaves_json_one_document(tmp_path: Path) -> None:
    """The guide's generator prints a line of its own; under --json stdout holds only the answer."""
    import json
    import subprocess
    import sys

    synthesize("spinwave", tmp_path, 4)
    script = Path(__file__).parent / "fixtures" / "gen_spinwave_manifest.py"
    command = [sys.executable, "-m", "manifest_broker.commandline.main", "generate", str(script)]
    done = subprocess.run(
        [*command, str(tmp_path / "data"), str(tmp_path / "g"), "-n", "3", "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hamiltonians"] == 3
    assert "Wrote 3 Hamiltonians" in done.stderr
