"""Inputs numpy reads (the reference's reader) and real files' line ends: read, on the
fast path where the layout allows it, with one summary warning for the slow path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from manifest_broker.tnr.reduced import ReducedFileError, _read_chunk_parts, read_reduced_files

# Written by hand from shared/notes/tnr-formats.md (the reduction library's fixed-width rows).
HEADER = "# Experiment IPTS-1 Run 9\n# Reduction 2.1.14\n# Q [1/Angstrom] R dR dQ [FWHM]\n"
FIXED_ROWS = [
    "  0.0100000000000000    0.9000000000000000    0.0100000000000000    0.0002700000000000",
    "  0.0200000000000000   -0.0010000000000000    0.0100000000000000    0.0005400000000000",
    "  0.0300000000000000    0.0000000020000000    0.0000000300000000    0.0008100000000000",
]
PLAIN_ROWS = ["1.0e-02 9.0e-01 1.0e-02 2.7e-04", "2.0e-02 -1.0e-03 1.0e-02 5.4e-04", "3.0e-02 2.0e-09 3.0e-08 8.1e-04"]
EXPECTED = np.array([[0.01, 0.9, 0.01, 0.00027], [0.02, -0.001, 0.01, 0.00054], [0.03, 2e-9, 3e-8, 0.00081]])


def _values(frame, index: int = 0) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.column_stack([np.asarray(frame[c][index]) for c in ("Q", "R", "dR", "dQ")])


@pytest.mark.parametrize("rows", [FIXED_ROWS, PLAIN_ROWS], ids=["fixed", "savetxt"])
@pytest.mark.parametrize(
    "ending",
    [("\n", ""), ("\r\n", ""), ("\n", "   "), ("\r\n", "  "), ("\r", "")],
    ids=["lf", "crlf", "trailing", "crlf+trailing", "cr"],
)
def test_line_ends_and_trailing_blanks_stay_on_the_fast_path(tmp_path: Path, rows: list[str], ending: tuple) -> None:
    newline, blanks = ending
    header = HEADER if rows is FIXED_ROWS else ""
    text = header.replace("\n", newline) + newline.join(row + blanks for row in rows) + newline
    paths = []
    for i in range(3):
        path = tmp_path / f"r9_{i}.txt"
        path.write_bytes(text.encode())
        paths.append(path)
    part = _read_chunk_parts(paths)
    assert part.slow == [] and part.warnings == []
    for i in range(3):
        assert _values(part.frame, i).tobytes() == EXPECTED.tobytes()
    if newline != "\r":  # numpy's reader, the reference's, agrees (it does not split on a lone CR)
        assert np.loadtxt(paths[0]).tobytes() == EXPECTED.tobytes()


def test_files_for_the_line_reader_are_one_warning_per_run(tmp_path: Path) -> None:
    paths = []
    for i in range(450):  # over the threading threshold: several chunks, still one warning
        path = tmp_path / f"r9_{i:03d}.txt"
        path.write_text("\t".join(PLAIN_ROWS[0].split()) + "\n" if i % 3 == 0 else PLAIN_ROWS[0] + "\n")
        paths.append(path)
    frame, warnings = read_reduced_files(paths)
    assert frame.height == 450
    assert warnings == [
        f"{paths[0]}: rows are neither savetxt rows nor fixed-width columns; read line by line "
        "(slower); so were 149 more of these 150 files"
    ]


def test_five_columns_named_by_the_header_are_taken_by_name(tmp_path: Path) -> None:
    path = tmp_path / "r9_five.txt"
    rows = [f"{q} {th} {r} {dr} {dq}" for (q, r, dr, dq), th in zip(EXPECTED.tolist(), (0.45, 0.45, 0.9))]
    path.write_text("# Q [1/A] theta [deg] R dR dQ [FWHM]\n" + "\n".join(rows) + "\n")
    frame, warnings = read_reduced_files([path])
    assert _values(frame).tobytes() == EXPECTED.tobytes()
    assert warnings[0] == f"{path}: 5 columns; Q R dR dQ taken by the header's names, theta left out"


def test_five_columns_without_names_are_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "r9_five.txt"
    path.write_text("0.1 1 0.1 0.001 7\n")
    with pytest.raises(ReducedFileError, match=r"r9_five\.txt:1: expected 4 values \(Q R dR dQ\), found 5"):
        read_reduced_files([path])


def test_inline_comments_end_the_row_as_in_numpy(tmp_path: Path) -> None:
    path = tmp_path / "r9_inline.txt"
    path.write_text("\n".join(f"{row}  # point {i}" for i, row in enumerate(PLAIN_ROWS)) + "\n")
    frame, _ = read_reduced_files([path])
    assert _values(frame).tobytes() == np.loadtxt(path).tobytes() == EXPECTED.tobytes()


def test_utf16_is_read_and_named(tmp_path: Path) -> None:
    path = tmp_path / "r9_utf16.txt"
    path.write_bytes(("\n".join(PLAIN_ROWS) + "\n").encode("utf-16"))
    frame, warnings = read_reduced_files([path])
    assert _values(frame).tobytes() == EXPECTED.tobytes()
    assert warnings == [f"{path}: UTF-16 text (byte-order mark); read as UTF-16"]
    bare = tmp_path / "r9_utf16le.txt"
    bare.write_bytes(("\n".join(PLAIN_ROWS) + "\n").encode("utf-16-le"))
    with pytest.raises(
        ReducedFileError, match=r"r9_utf16le\.txt:1: NUL byte at byte 1: UTF-16 without a byte-order mark"
    ):
        read_reduced_files([bare])


def test_a_symlink_out_of_the_run_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text(PLAIN_ROWS[0] + "\n")
    run = tmp_path / "reduced"
    run.mkdir()
    (run / "r9_a.txt").symlink_to(outside)
    with pytest.raises(ReducedFileError, match="outside"):
        read_reduced_files([run / "r9_a.txt"], root=run)


def test_line_ends_that_change_within_a_file_are_still_read(tmp_path: Path) -> None:
    """The fast path judges line ends from a file's head; a file whose later lines
    differ (a CR, trailing blanks) is read by the line reader, values intact."""
    path = tmp_path / "r9_mixed.txt"
    filler = "\n".join(PLAIN_ROWS[0] for _ in range(300))  # past the head the fast path looks at
    path.write_bytes((filler + "\n" + PLAIN_ROWS[1] + "  \r\n" + PLAIN_ROWS[2] + "\r").encode())
    frame, warnings = read_reduced_files([path])
    values = _values(frame)
    assert values.shape == (302, 4) and values[-2:].tobytes() == EXPECTED[1:].tobytes()
    assert warnings == [f"{path}: rows are neither savetxt rows nor fixed-width columns; read line by line (slower)"]


def test_a_fifo_among_the_reduced_files_is_refused_without_blocking(tmp_path: Path) -> None:
    good = tmp_path / "r9_a.txt"
    good.write_text(PLAIN_ROWS[0] + "\n")
    os.mkfifo(tmp_path / "r9_fifo.txt")  # nobody writes it: opening it for reading would block
    with pytest.raises(ReducedFileError, match=r"r9_fifo\.txt.*FIFO"):
        read_reduced_files([good, tmp_path / "r9_fifo.txt"])


def test_a_symlink_that_stays_in_the_folder_is_read(tmp_path: Path) -> None:
    target = tmp_path / "r9_a.txt"
    target.write_text(PLAIN_ROWS[0] + "\n")
    (tmp_path / "r9_b.txt").symlink_to("r9_a.txt")
    frame, _ = read_reduced_files([target, tmp_path / "r9_b.txt"])
    assert frame["n_points"].to_list() == [1, 1] and frame["sha256"][0] == frame["sha256"][1]
