"""`broker explore`: the guide's Step 1 on each layout."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from manifest_broker.commandline.main import app
from manifest_broker.provider.explore import explore

runner = CliRunner()


@pytest.mark.parametrize(("folder", "pattern"), [("vdp", "A"), ("edrixs", "B"), ("multimodal", "C")])
def test_pattern_is_recognised(_pristine: Path, folder: str, pattern: str) -> None:
    report = explore(_pristine / "data" / folder, sample=4)
    assert report.pattern == pattern, report.reason
    compile(report.generator, "generator.py", "exec")  # the starting generator is valid Python


def test_spinwave_root_is_pattern_c_and_flags_nan(_pristine: Path, tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    for i in range(3):
        with h5py.File(data / f"sw_{i}.h5", "w") as f:
            f["dispersion"] = np.full((4, 4), np.nan) if i == 0 else np.ones((4, 4))
            f["dos"] = np.ones(5)
            f.create_group("params")["J1"] = 1.0
    (data / "notes.npz").write_bytes(b"x")
    result = runner.invoke(app, ["explore", str(data), "--sample", "3", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["pattern"] == "C" and report["n_files"] == 3
    assert any("all NaN" in flag for flag in report["flags"])
    assert any(".npz" in flag for flag in report["flags"])


def test_explore_text_output(_pristine: Path) -> None:
    result = runner.invoke(app, ["explore", str(_pristine / "data" / "edrixs"), "--sample", "1"])
    assert result.exit_code == 0
    assert "/spectra: shape=(6, 151, 40), dtype=<f4" in result.output
    assert "likely pattern: B" in result.output and "def generate(output_dir" in result.output


def test_the_pattern_b_generator_reads_the_batched_dataset(_pristine: Path, tmp_path: Path) -> None:
    """Saved and run as printed, it yields one Hamiltonian per row of the batched axis."""
    data = _pristine / "data" / "edrixs"
    report = explore(data, sample=1)
    script = tmp_path / "gen_edrixs_manifest.py"
    script.write_text(report.generator)
    out = tmp_path / "manifests"
    result = runner.invoke(app, ["generate", str(script), str(data), str(out)])
    assert result.exit_code == 0, result.output
    import pyarrow.parquet as pq

    [ham_file] = out.glob("*hamiltonians.parquet")
    [art_file] = out.glob("*artifacts.parquet")
    artifacts = pq.read_table(art_file)
    assert pq.read_table(ham_file).num_rows == 6  # the file's batched axis, not /eloss's 151 points
    assert set(artifacts["dataset"].to_pylist()) <= {"/spectra", "/xas"} and artifacts["index"].to_pylist() == list(
        range(6)
    )
    checked = runner.invoke(app, ["check", str(ham_file), str(art_file), "--base-dir", str(data)])
    assert checked.exit_code == 0, checked.output


def test_external_links_are_named_and_never_followed(tmp_path: Path) -> None:
    """An external link (in a plain file, or a NeXus field) was silently left out of
    what explore shows; it is named as a link to another file, and not followed."""
    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as f:
        f["secret"] = np.arange(3.0)
    data = tmp_path / "data"
    data.mkdir()
    with h5py.File(data / "plain.h5", "w") as f:
        f["g/y"] = np.arange(4.0)
        f["x"] = h5py.ExternalLink(str(outside), "/secret")
    report = explore(data)
    (info,) = report.sample
    assert [d.path for d in info.datasets] == ["/g/y"]
    assert any("external link /x -> /secret in" in flag and "never followed" in flag for flag in report.flags)
