"""ORSO ``.ort`` reduced files (a third format): the example files ``orsopy`` itself
ships, packaged into the lake and read back bit for bit as orsopy reads them."""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

import numpy as np
import pytest
from orsopy.fileio import load_orso

from manifest_broker.tnr.lake import scan, write_run
from manifest_broker.tnr.package import package_run
from manifest_broker.tnr.reduced import ReducedFileError, read_reduced_files
from tests.tnr.spec_run import FILES, RUN, spec_run

EXAMPLES = importlib.resources.files("orsopy.fileio.tests")


def _example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


def test_an_orso_run_packages_and_reads_back_bit_for_bit(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path / "run")
    example = _example("test_example.ort")
    for name in FILES:  # every slice an ORSO file (the same example: the values are orsopy's)
        (reduced / f"r{RUN}_{name}.txt").unlink()
        (reduced / f"r{RUN}_{name}.ort").write_bytes(example)
    package = package_run(split, reduced, xml)
    assert package.reflectivity.num_rows == len(FILES)
    assert not [w for w in package.warnings if ".ort" in w]  # every ORSO file matched, none left out
    write_run(tmp_path / "lake", package, "tnr")
    rows = scan(tmp_path / "lake", "reflectivity").to_pylist()
    [expected] = load_orso(str(EXAMPLES / "test_example.ort"))
    for row in rows:
        assert row["filename"].endswith(".ort")
        for i, column in enumerate(("Q", "R", "dR", "dQ")):
            assert np.asarray(row[column], np.float64).tobytes() == expected.data[:, i].tobytes()
        header = json.loads(row["header_json"])
        assert header["format"] == "ORSO" and header["dQ_is"] == "sigma"
        assert header["orso"]["data_source"]["experiment"]["instrument"] == "Amor"
        assert header["orso"]["columns"][0] == {"name": "Qz", "unit": "1/angstrom", "dimension": "WW transfer"}


def test_several_datasets_in_one_file_are_refused_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "r1_two.ort"
    path.write_bytes(_example("test_example2.ort"))
    with pytest.raises(ReducedFileError, match=r"r1_two\.ort: 2 ORSO datasets \(spin_up, spin_down\)"):
        read_reduced_files([path])


def test_an_ort_file_that_is_not_orso_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r1_not.ort"
    path.write_bytes(_example("not_orso.ort"))
    with pytest.raises(ReducedFileError, match=r"r1_not\.ort:1: an \.ort file without the ORSO first line"):
        read_reduced_files([path])


def test_units_and_conventions_are_checked(tmp_path: Path) -> None:
    text = _example("test_example.ort").decode()
    fwhm = tmp_path / "r1_fwhm.ort"
    fwhm.write_text(
        text.replace("{error_of: Qz, error_type: resolution}", "{error_of: Qz, error_type: resolution, value_is: FWHM}")
    )
    nm = tmp_path / "r1_nm.ort"
    nm.write_text(text.replace("unit: 1/angstrom", "unit: 1/nm"))
    frame, warnings = read_reduced_files([fwhm, nm])
    assert json.loads(frame["header_json"][0])["dQ_is"] == "FWHM"
    [expected] = load_orso(str(EXAMPLES / "test_example.ort"))
    assert frame["Q"][1].to_list() == (expected.data[:, 0] * 0.1).tolist()
    assert warnings == [f"{nm}: Q and dQ in 1/nm, converted to 1/angstrom"]
    bad = tmp_path / "r1_bad.ort"
    bad.write_text(text.replace("unit: 1/angstrom", "unit: 1/m"))
    with pytest.raises(ReducedFileError, match=r"Qz unit '1/m'"):
        read_reduced_files([bad])


def test_orso_files_mixed_with_text_files_keep_their_order(tmp_path: Path) -> None:
    plain = tmp_path / "r1_a.txt"
    plain.write_text("0.1 1 0.1 0.001\n")
    ort = tmp_path / "r1_b.ort"
    ort.write_bytes(_example("test_example.ort"))
    frame, _ = read_reduced_files([ort, plain, ort])
    assert frame["filename"].to_list() == ["r1_b.ort", "r1_a.txt", "r1_b.ort"]
    assert frame["n_points"].to_list() == [2, 1, 2]
