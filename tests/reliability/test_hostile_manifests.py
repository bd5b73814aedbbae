"""Hostile input, generated here: each case starts from one good dataset (written by
hand with h5py and pyarrow, already ingested into a catalog), breaks one thing, and
must give its own rule in the report, exit 1 from `broker ingest`, and a catalog
unchanged, table by table. The probe must never hang (a FIFO where a file should be)."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.commandline.main import app
from tests.integration.catalog_dump import dump

runner = CliRunner()


class Case:
    """The good dataset in ``root`` (data/, ham.parquet, art.parquet), to be broken."""

    def __init__(self, root: Path) -> None:
        self.root, self.base = root, root / "data"
        self.ham_path, self.art_path = root / "ham.parquet", root / "art.parquet"
        self.ham = pq.read_table(self.ham_path).to_pylist()
        self.art = pq.read_table(self.art_path).to_pylist()
        self.ham_table: pa.Table | None = None
        self.art_table: pa.Table | None = None

    def write(self) -> ManifestPair:
        pq.write_table(self.ham_table if self.ham_table is not None else pa.Table.from_pylist(self.ham), self.ham_path)
        pq.write_table(
            self.art_table
            if self.art_table is not None
            else pa.Table.from_pylist(
                self.art,
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
            self.art_path,
        )
        return ManifestPair(self.ham_path, self.art_path)

    def file(self, name: str, **datasets: object) -> str:
        with h5py.File(self.base / name, "w") as f:
            for key, value in datasets.items():
                f[key] = value
        return name


def _good(root: Path) -> None:
    base = root / "data"
    base.mkdir(parents=True)
    with h5py.File(base / "batch.h5", "w") as f:
        f["spectra"] = np.arange(24.0).reshape(3, 8)
    for i in range(3):
        with h5py.File(base / f"h{i}.h5", "w") as f:
            f["sqw"] = np.full((4, 4), float(i))
    pq.write_table(
        pa.table({"huid": ["h0", "h1", "h2"], "key": ["H0", "H1", "H2"], "J": [0.1, 0.2, 0.3]}), root / "ham.parquet"
    )
    pq.write_table(
        pa.table(
            {
                "huid": ["h0", "h1", "h2"] * 2,
                "type": ["rixs"] * 3 + ["sqw"] * 3,
                "file": ["batch.h5"] * 3 + [f"h{i}.h5" for i in range(3)],
                "dataset": ["/spectra"] * 3 + ["/sqw"] * 3,
                "index": pa.array([0, 1, 2, None, None, None], pa.int64()),
            }
        ),
        root / "art.parquet",
    )


def _set(rows: list[dict], i: int, **values: object) -> None:
    rows[i].update(values)


def _column(case: Case, which: str, name: str, values: pa.Array) -> None:
    table = pa.Table.from_pylist(case.ham if which == "ham" else case.art)
    table = table.append_column(name, values)
    if which == "ham":
        case.ham_table = table
    else:
        case.art_table = table


def _outside(case: Case) -> None:
    secret = case.root / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["sqw"] = np.zeros((4, 4))
    os.symlink(secret, case.base / "escape.h5")
    _set(case.art, 3, file="escape.h5")


def _external_link(case: Case) -> None:
    with h5py.File(case.root / "other.h5", "w") as f:
        f["sqw"] = np.zeros((4, 4))
    with h5py.File(case.base / "link.h5", "w") as f:
        f["sqw"] = h5py.ExternalLink(str(case.root / "other.h5"), "/sqw")
    _set(case.art, 3, file="link.h5")


def _virtual(case: Case) -> None:
    with h5py.File(case.root / "src.h5", "w") as f:
        f["sqw"] = np.zeros((4, 4))
    layout = h5py.VirtualLayout(shape=(4, 4), dtype="f8")
    layout[:] = h5py.VirtualSource(str(case.root / "src.h5"), "sqw", shape=(4, 4))
    with h5py.File(case.base / "virtual.h5", "w") as f:
        f.create_virtual_dataset("sqw", layout)
    _set(case.art, 3, file="virtual.h5")


def _loop(case: Case) -> None:
    os.symlink("loop_b.h5", case.base / "loop_a.h5")
    os.symlink("loop_a.h5", case.base / "loop_b.h5")
    _set(case.art, 3, file="loop_a.h5")


def _device(case: Case) -> None:
    os.mknod(case.base / "null.h5", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers (tests run as root)
    _set(case.art, 3, file="null.h5")


def _socket(case: Case) -> None:
    import socket

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(case.base / "sock.h5"))
    server.close()
    _set(case.art, 3, file="sock.h5")


def _fifo(case: Case) -> None:
    os.mkfifo(case.base / "pipe.h5")
    _set(case.art, 3, file="pipe.h5")


def _truncated(case: Case) -> None:
    data = (case.base / "h0.h5").read_bytes()
    (case.base / "cut.h5").write_bytes(data[: len(data) // 3])
    _set(case.art, 3, file="cut.h5")


def _many_columns(case: Case) -> None:
    case.ham_table = pa.Table.from_pylist(case.ham)
    for i in range(3000):
        case.ham_table = case.ham_table.append_column(f"p{i}", pa.array([0.0, float("nan") if i == 2999 else 1.0, 2.0]))


def _duplicate_columns(case: Case) -> None:
    table = pa.Table.from_pylist(case.ham)
    case.ham_table = pa.Table.from_arrays([*table.columns, table["J"]], names=[*table.column_names, "J"])


def _not_parquet(case: Case) -> None:
    case.write()
    case.ham_path.write_text("huid,key\nh0,H0\n")


def _deep(case: Case) -> None:
    nested: object = 1.0
    for _ in range(200):
        nested = {"x": nested}
    _column(case, "ham", "deep", pa.array([nested, None, None]))


# (name, mutation, rule that must be reported)
CASES: list[tuple[str, Callable[[Case], None], str]] = [
    ("absolute path", lambda c: _set(c.art, 3, file=str(c.base / "h0.h5")), "file_invalid"),
    ("dot-dot path", lambda c: _set(c.art, 3, file="../data/h0.h5"), "file_invalid"),
    ("symlink escape", _outside, "file_outside_base"),
    ("symlink loop", _loop, "file_missing"),
    ("fifo instead of a file", _fifo, "file_not_regular"),
    (
        "directory instead of a file",
        lambda c: ((c.base / "dir.h5").mkdir(), _set(c.art, 3, file="dir.h5")),
        "file_not_regular",
    ),
    ("missing file", lambda c: _set(c.art, 3, file="nope.h5"), "file_missing"),
    ("empty file", lambda c: ((c.base / "empty.h5").write_bytes(b""), _set(c.art, 3, file="empty.h5")), "file_empty"),
    ("not HDF5", lambda c: ((c.base / "text.h5").write_text("hello"), _set(c.art, 3, file="text.h5")), "file_not_hdf5"),
    ("truncated HDF5", _truncated, "file_corrupt"),
    ("device instead of a file", _device, "file_not_regular"),
    ("socket instead of a file", _socket, "file_not_regular"),
    (
        "'#' in a path",
        lambda c: (shutil.copyfile(c.base / "h0.h5", c.base / "a#b.h5"), _set(c.art, 3, file="a#b.h5")),
        "file_uri_unsafe",
    ),
    ("external link out", _external_link, "dataset_external_link"),
    ("virtual dataset out", _virtual, "dataset_virtual"),
    ("missing dataset", lambda c: _set(c.art, 3, dataset="/nothing"), "dataset_missing"),
    (
        "dataset is a group",
        lambda c: (c.file("grp.h5", **{"g/x": np.zeros(2)}), _set(c.art, 3, file="grp.h5", dataset="/g")),
        "dataset_not_a_dataset",
    ),
    ("ragged dataset", lambda c: (c.file("ragged.h5"), _ragged(c)), "dataset_ragged"),
    ("null dataset", lambda c: _set(c.art, 3, dataset=None), "dataset_invalid"),
    ("key with /", lambda c: _set(c.ham, 0, key="a/b"), "key_invalid"),
    ("key with a control character", lambda c: _set(c.ham, 0, key="a\x07b"), "key_invalid"),
    ("key with surrounding spaces", lambda c: _set(c.ham, 0, key=" H0 "), "key_invalid"),
    ("key '.'", lambda c: _set(c.ham, 0, key="."), "key_invalid"),
    ("key '..'", lambda c: _set(c.ham, 0, key=".."), "key_invalid"),
    ("key of 10,000 characters", lambda c: _set(c.ham, 0, key="k" * 10_000), "key_invalid"),
    # NFC and NFD forms of one name are one key (compared in NFC): a duplicate
    (
        "NFC and NFD of one key",
        lambda c: (_set(c.ham, 0, key="caf\u00e9"), _set(c.ham, 1, key="cafe\u0301")),
        "key_duplicate",
    ),
    ("duplicate key", lambda c: _set(c.ham, 1, key="H0"), "key_duplicate"),
    (
        "key in the catalog for another huid",
        lambda c: (_set(c.ham, 0, huid="new0"), _set(c.art, 0, huid="new0"), _set(c.art, 3, huid="new0")),
        "key_in_catalog",
    ),
    ("type with /", lambda c: _set(c.art, 3, type="s/q"), "type_invalid"),
    ("duplicate type for one huid", lambda c: _set(c.art, 3, type="rixs"), "type_duplicate"),
    ("null huid", lambda c: _set(c.ham, 0, huid=None), "huid_missing"),
    ("duplicate huid", lambda c: _set(c.ham, 1, huid="h0"), "huid_duplicate"),
    ("artifact of no Hamiltonian", lambda c: _set(c.art, 3, huid="ghost"), "artifact_orphan"),
    ("index beyond the axis", lambda c: _set(c.art, 0, index=7), "index_out_of_range"),
    ("negative index", lambda c: _set(c.art, 0, index=-1), "index_out_of_range"),
    (
        "index on a scalar dataset",
        lambda c: (c.file("scalar.h5", sqw=np.float64(3.0)), _set(c.art, 3, file="scalar.h5", index=0)),
        "index_out_of_range",
    ),
    (
        "index on one of two rows reading a dataset whole",
        lambda c: _set(c.art, 4, file="h0.h5", index=0),
        "index_inconsistent",
    ),
    ("missing index on a batched row", lambda c: _set(c.art, 0, index=None), "index_inconsistent"),
    ("float index", lambda c: _index_as(c, pa.array([0.0, 1.0, 2.0, None, None, None])), "column_type"),
    ("string index", lambda c: _index_as(c, pa.array(["0", "1", "2", None, None, None])), "column_type"),
    (
        "missing required column",
        lambda c: setattr(c, "ham_table", pa.Table.from_pylist(c.ham).drop_columns(["key"])),
        "column_missing",
    ),
    ("NaN in metadata", lambda c: _column(c, "ham", "bad", pa.array([float("nan"), 1.0, 2.0])), "metadata_not_finite"),
    (
        "Infinity in metadata",
        lambda c: _column(c, "ham", "bad", pa.array([float("inf"), 1.0, 2.0])),
        "metadata_not_finite",
    ),
    (
        "int64 overflow in metadata",
        lambda c: _column(c, "ham", "big", pa.array([2**64, 1, 2], pa.decimal128(38, 0))),
        "metadata_integer_range",
    ),
    ("binary metadata", lambda c: _column(c, "ham", "blob", pa.array([b"\x00", b"", b"x"])), "metadata_binary"),
    ("deeply nested metadata (200 levels)", _deep, "metadata_too_deep"),
    (
        "10 MB string in metadata",
        lambda c: _column(c, "ham", "essay", pa.array(["x" * 10_000_000, "", ""])),
        "metadata_too_large",
    ),
    ("thousands of metadata columns, one NaN", _many_columns, "metadata_not_finite"),
    ("duplicate column names", _duplicate_columns, "column_duplicate"),
    (
        "SQL-looking metadata column name",
        lambda c: _column(c, "ham", 'x"); DROP TABLE nodes; --', pa.array([b"1", b"2", b"3"])),
        "metadata_binary",
    ),
    ("a manifest that is not Parquet", _not_parquet, "manifest_unreadable"),
    ("empty manifests", lambda c: (c.ham.clear(), c.art.clear()), "manifest_empty"),
]


def _ragged(case: Case) -> None:
    with h5py.File(case.base / "ragged.h5", "w") as f:
        d = f.create_dataset("sqw", (2,), dtype=h5py.vlen_dtype(np.float64))
        d[0], d[1] = np.zeros(3), np.zeros(5)
    _set(case.art, 3, file="ragged.h5")


def _index_as(case: Case, values: pa.Array) -> None:
    table = pa.Table.from_pylist(case.art).drop_columns(["index"])
    case.art_table = table.append_column("index", values)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("good")
    _good(root / "case")
    catalog = root / "catalog.db"
    pair = ManifestPair(root / "case" / "ham.parquet", root / "case" / "art.parquet")
    assert check_manifests([pair], root / "case" / "data").ok
    ingest([pair], root / "case" / "data", str(catalog))
    return root / "case", catalog, dump(str(catalog))


def test_there_are_forty_distinct_hostile_cases() -> None:
    assert len(CASES) >= 40 and len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("name, mutate, rule", CASES, ids=[c[0] for c in CASES])
def test_hostile_manifest_is_refused_with_its_rule(
    good: tuple[Path, Path, dict], tmp_path: Path, name: str, mutate: Callable[[Case], None], rule: str
) -> None:
    source, pristine, before = good
    shutil.copytree(source, tmp_path / "case", symlinks=True)
    catalog = tmp_path / "catalog.db"  # a copy each: an accepted case must not change the next one's catalog
    shutil.copyfile(pristine, catalog)
    case = Case(tmp_path / "case")
    mutate(case)
    if name != "a manifest that is not Parquet":
        case.write()
    try:
        result = runner.invoke(
            app,
            ["ingest", str(case.ham_path), str(case.art_path), "--base-dir", str(case.base), "--catalog", str(catalog)],
            env={"COLUMNS": "400"},
        )
    finally:
        for path in case.base.iterdir():  # let the temporary directory be removed
            if not path.is_symlink() and not stat.S_ISFIFO(path.lstat().st_mode):
                os.chmod(path, 0o755)
    assert result.exit_code == 1, result.output
    assert rule in result.output, result.output[-3000:]
    assert dump(str(catalog)) == before


def test_sql_looking_text_is_stored_as_text(good: tuple[Path, Path, dict], tmp_path: Path) -> None:
    """Keys and metadata that look like SQL are data: stored verbatim, nothing else changes."""
    source, pristine, before = good
    shutil.copytree(source, tmp_path / "case", symlinks=True)
    catalog = tmp_path / "catalog.db"
    shutil.copyfile(pristine, catalog)
    case = Case(tmp_path / "case")
    evil = "x'); DROP TABLE nodes; --"
    case.ham = [
        {**h, "huid": f"n{i}", "key": f"{evil}{i}", "note": f"'; DELETE FROM assets; -- {i}"}
        for i, h in enumerate(case.ham)
    ]
    case.art = [{**a, "huid": "n" + a["huid"][1:]} for a in case.art]
    case.write()
    result = runner.invoke(
        app, ["ingest", str(case.ham_path), str(case.art_path), "--base-dir", str(case.base), "--catalog", str(catalog)]
    )
    assert result.exit_code == 0, result.output
    after = dump(str(catalog))
    new = [n for n in after["nodes"] if n not in before["nodes"]]
    assert len(new) == 9 and {n[0] for n in new if n[1] == "container"} == {f"/{evil}{i}" for i in range(3)}
    assert all(row in after[t] for t in ("nodes", "assets", "structures") for row in before[t])
