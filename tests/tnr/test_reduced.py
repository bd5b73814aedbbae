"""The reduced-file reader: both flavours, ragged rows, clear errors naming file and line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from manifest_broker.generators.tnr import _reduced_text
from manifest_broker.tnr.reduced import ReducedFileError, read_reduced_files


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_both_flavours_match_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    plain = _write(tmp_path, "r1_a.txt", _reduced_text(120, 1, 1, "a", "2025-05-02T09:01:00", rng))
    headed = _write(tmp_path, "r1_b.txt", _reduced_text(333, 2, 1, "b", "2025-05-02T09:02:00", rng))
    frame, warnings = read_reduced_files([plain, headed])
    assert warnings == []
    assert frame["n_points"].to_list() == [120, 333]
    for path, row in zip((plain, headed), frame.iter_rows(named=True)):
        expected = np.loadtxt(path)
        for i, column in enumerate(("Q", "R", "dR", "dQ")):
            np.testing.assert_array_equal(np.asarray(row[column]), expected[:, i])
        assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert row["n_negative_R"] == int((expected[:, 1] < 0).sum()) >= 1
        assert row["n_nan"] == int(np.isnan(expected[:, 1]).sum())
    assert frame["header_json"][0] is None
    header = json.loads(frame["header_json"][1])
    assert (header["reduction_version"], header["run_title"], header["theta_offset"]) == ("2.1.14", "sample 6 tNR", "0")
    assert json.loads(header["meta_json"])["run_number"] == "1"
    assert json.loads(header["angles_json"])[0]["DataRun"] == "1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.1 1 0.1 0.001\n0.2 1 0.1\n", "r9_x.txt:2: expected 4 values (Q R dR dQ), found 3"),
        ("0.1 1 0.1 0.001 7\n", "r9_x.txt:1: expected 4 values (Q R dR dQ), found 5"),
        ("# h\n0.1 1 0.1 0.001\n0.2 abc 0.1 0.001\n", "r9_x.txt:3: not a number: 'abc'"),
        ("# Meta:{broken\n0.1 1 0.1 0.001\n", "r9_x.txt:1: malformed # Meta JSON"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    good = _write(tmp_path, "r9_ok.txt", "0.1 1 0.1 0.001\n")
    bad = _write(tmp_path, "r9_x.txt", text)
    with pytest.raises(ReducedFileError) as info:
        read_reduced_files([good, bad])
    assert message in str(info.value)


finite = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6), st.just(float("nan"))
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=arrays(np.float64, st.tuples(st.integers(1, 40), st.just(4)), elements=finite), flavour=st.sampled_from([1, 2])
)
def test_round_trip(tmp_path_factory: pytest.TempPathFactory, data: np.ndarray, flavour: int) -> None:
    folder = tmp_path_factory.mktemp("rt")
    if flavour == 1:
        text = "\n".join(" ".join(f"{v:.18e}" for v in row) for row in data) + "\n"
    else:
        text = (
            "# Experiment IPTS-1 Run 9\n# Q [1/Angstrom] R dR dQ [FWHM]\n"
            + "\n".join("  ".join(f"{v:20.16f}" for v in row) for row in data)
            + "\n"
        )
    path = _write(folder, "r9_p.txt", text)
    row = read_reduced_files([path])[0].row(0, named=True)
    expected = np.loadtxt(path, ndmin=2)
    assert row["n_points"] == len(data)
    for i, column in enumerate(("Q", "R", "dR", "dQ")):
        np.testing.assert_array_equal(np.asarray(row[column]), expected[:, i])


def test_many_files_keep_order_and_report_the_right_file(tmp_path: Path) -> None:
    """Above the threading threshold files are read in chunks; order and errors stay exact."""
    rng = np.random.default_rng(4)
    paths = [
        _write(tmp_path, f"r1_{i:03d}.txt", _reduced_text(5 + i % 7, 1 + i % 2, 1, str(i), "2025-05-02T09:01:00", rng))
        for i in range(450)
    ]
    frame, _ = read_reduced_files(paths)
    assert frame["filename"].to_list() == [p.name for p in paths]
    assert frame["n_points"].to_list() == [5 + i % 7 for i in range(450)]
    np.testing.assert_array_equal(np.asarray(frame["dQ"][449]), np.loadtxt(paths[449])[:, 3])
    paths[320].write_text(paths[320].read_text() + "0.1 0.2 0.3\n")
    with pytest.raises(ReducedFileError, match=r"r1_320\.txt:\d+: expected 4 values"):
        read_reduced_files(paths)


# Real files are not perfect (shared/notes/tnr-formats.md); written by hand here.
HEADED = (
    "# Experiment IPTS-34347 Run 218389\n# Reduction 2.1.14\n# Run title: sample 6 tNR\n"
    "# Run start time: 2025-05-02T09:02:00\n# Q summing: False\n# TOF weighted: False\n"
    "# Q [1/Angstrom] R dR dQ [FWHM]\n"
    "  0.0100000000000000  0.9000000000000000  0.0100000000000000  0.0002700000000000\n"
    "  0.0200000000000000 -0.0010000000000000  0.0100000000000000  0.0005400000000000\n"
)


def test_imperfect_files_are_read_with_warnings(tmp_path: Path) -> None:
    bom = tmp_path / "r9_bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf0.1 1 0.1 0.001\n")
    latin = tmp_path / "r9_latin.txt"
    latin.write_bytes(HEADED.replace("sample 6 tNR", "\u00e9chantillon").encode("latin-1"))
    trailing = _write(tmp_path, "r9_trailing.txt", HEADED + "# end of data\n")
    empty = _write(tmp_path, "r9_empty.txt", "")
    header_only = _write(tmp_path, "r9_header.txt", HEADED.split("  0.01")[0])
    frame, warnings = read_reduced_files([bom, latin, trailing, empty, header_only])
    assert frame["n_points"].to_list() == [1, 2, 2, 0, 0]
    assert frame["Q"].to_list()[0] == [0.1] and frame["Q"].to_list()[3] == [] and frame["R"].to_list()[4] == []
    assert frame["n_nan"].to_list()[3:] == [0, 0] and frame["n_negative_R"].to_list() == [0, 1, 1, 0, 0]
    assert frame["sha256"][0] == hashlib.sha256(bom.read_bytes()).hexdigest()
    assert warnings == [
        f"{latin}:3: not UTF-8 (invalid continuation byte at byte 67); decoded with replacement characters",
        f"{empty}: is empty; kept as a slice with no points",
        f"{header_only}: has a header but no data rows; kept as a slice with no points",
        f"{trailing}: rows are neither savetxt rows nor fixed-width columns; read line by line (slower)",
    ]
    header = json.loads(frame["header_json"][2])
    assert header["q_summing"] == "False" and header["tof_weighted"] == "False"
    assert header["column_line"] == "Q [1/Angstrom] R dR dQ [FWHM]"
    assert json.loads(frame["header_json"][1])["run_title"] == "\ufffdchantillon"


def test_a_bad_byte_in_a_data_row_is_still_an_error(tmp_path: Path) -> None:
    path = tmp_path / "r9_bad.txt"
    path.write_bytes(b"0.1 1 0.1 0.001\n0.2 1\xff 0.1 0.001\n")
    with pytest.raises(ReducedFileError, match=r"r9_bad\.txt:2: not a number"):
        read_reduced_files([path])


def test_the_csv_reader_and_the_line_reader_agree(tmp_path: Path) -> None:
    """savetxt-style chunks go through polars.read_csv; every other layout through the
    line reader. On what both can read, they must give the same frame."""
    from manifest_broker.tnr.reduced import _read_bytes, _read_chunk, _read_chunk_by_lines

    rng = np.random.default_rng(9)
    texts = [_reduced_text(30, 1, 1, "a", "2025-05-02T09:01:00", rng) for _ in range(3)]
    texts.append("# Experiment IPTS-1 Run 1\n# Q summing: False\n" + texts[0])  # header + plain rows
    texts.append(texts[1].replace("\n", "\r\n"))  # Windows line ends
    paths = [_write(tmp_path, f"r1_{i}.txt", text) for i, text in enumerate(texts)]
    bom = tmp_path / "r1_bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + texts[2].encode())
    paths.append(bom)
    fast, fast_warnings = _read_chunk(paths)
    lines, line_warnings = _read_chunk_by_lines(paths, *_read_bytes(paths))
    assert fast.equals(lines) and fast_warnings == [] and line_warnings == [[]] * len(paths)
    assert fast["n_points"].to_list() == [30] * 6


REFERENCE_FILES = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "reference_files").glob("REFL_*.txt"))


def test_the_reduction_librarys_own_files_parse_as_the_reference_parses_them() -> None:
    """The reference repository's real REFL_* files (fixed-width, headed): read by the
    columnar fixed-width path, bit for bit what numpy.loadtxt gives."""
    assert len(REFERENCE_FILES) == 2
    frame, warnings = read_reduced_files(REFERENCE_FILES)
    assert warnings == []
    for path, row in zip(REFERENCE_FILES, frame.iter_rows(named=True)):
        expected = np.loadtxt(path)
        assert row["n_points"] == len(expected) > 700
        for i, column in enumerate(("Q", "R", "dR", "dQ")):
            assert np.asarray(row[column]).tobytes() == expected[:, i].tobytes()
        header = json.loads(row["header_json"])
        assert header["reduction_version"].startswith("2.2.0") and len(json.loads(header["angles_json"])) == 3


def test_a_fixed_width_file_that_breaks_its_layout_is_read_line_by_line(tmp_path: Path) -> None:
    rows = ["  ".join(f"{v:20.16f}" for v in (0.01 * (i + 1), 0.5, 0.01, 0.0003)) for i in range(5)]
    rows[3] = "  ".join(f"{v:20.16f}" for v in (0.04, 12345.5, 0.01, 0.0003))  # a value wider than its column
    wide = _write(tmp_path, "r9_wide.txt", "# Q [1/Angstrom] R dR dQ\n" + "\n".join(rows) + "\n")
    fine = _write(tmp_path, "r9_fine.txt", "# Q [1/Angstrom] R dR dQ\n" + "\n".join(rows[:3]) + "\n")
    frame, warnings = read_reduced_files([fine, wide])
    assert frame["R"].to_list()[1][3] == 12345.5 and frame["n_points"].to_list() == [3, 5]
    assert warnings == [f"{wide}: rows are neither savetxt rows nor fixed-width columns; read line by line (slower)"]
