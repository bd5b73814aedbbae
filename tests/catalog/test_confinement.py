"""Confinement: no manifest makes the served catalog read outside the data directory.

Every hostile file here is built by hand with h5py (not by generators/), the way a
data provider's file could look: external raw storage, external links at the end
and in the middle of a dataset path (also behind a soft link), virtual datasets
with outside sources. Soft links that stay inside the file stay accepted.
"""

from __future__ import annotations

import decimal
import json
import os
import subprocess
import sys
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
from manifest_broker.provider.feedback import feedback_message
from tests.conftest import tree_state

runner = CliRunner()
SECRET = b"TOP SECRET: nothing in the data directory may serve this\n"


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """A data directory with one file of every hostile kind, and a secret outside it.

    Returns:
        (base_dir, outside_dir)
    """
    base, outside = tmp_path / "data", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    with h5py.File(outside / "other.h5", "w") as f:
        f["arr"] = np.arange(len(SECRET), dtype="u1")
        f.create_group("g")["inner"] = np.arange(4.0)
    other = str(outside / "other.h5")
    with h5py.File(base / "hostile.h5", "w") as f:
        # external raw storage: at a plain text file outside, and at an HDF5 file outside
        f.create_dataset(
            "ext_text", shape=(len(SECRET),), dtype="u1", external=[(str(outside / "secret.txt"), 0, len(SECRET))]
        )
        f.create_dataset("ext_hdf5", shape=(16,), dtype="u1", external=[(other, 0, 16)])
        f["elink_end"] = h5py.ExternalLink(other, "/arr")
        f["elink_mid"] = h5py.ExternalLink(other, "/g")
        f["soft_to_elink"] = h5py.SoftLink("/elink_mid")
        layout = h5py.VirtualLayout(shape=(len(SECRET),), dtype="u1")
        layout[:] = h5py.VirtualSource(other, "arr", shape=(len(SECRET),))
        f.create_virtual_dataset("vds", layout)
        f["real"] = np.arange(5.0)
        f["soft"] = h5py.SoftLink("/real")
        f.create_group("grp")["x"] = np.arange(3.0)
        f["grp"]["relative"] = h5py.SoftLink("x")
        f["softgrp"] = h5py.SoftLink("/grp")
        f["loop_a"] = h5py.SoftLink("/loop_b")
        f["loop_b"] = h5py.SoftLink("/loop_a")
    return base, outside


REFUSED = {
    "/ext_text": "dataset_external_storage",
    "/ext_hdf5": "dataset_external_storage",
    "/elink_end": "dataset_external_link",
    "/elink_mid/inner": "dataset_external_link",
    "/soft_to_elink/inner": "dataset_external_link",
    "/vds": "dataset_virtual",
    "/loop_a": "dataset_unreadable",
}
ACCEPTED = ["/real", "/soft", "/softgrp/x", "/grp/relative"]


def _manifests(folder: Path, datasets: list[str], file: str = "hostile.h5") -> ManifestPair:
    n = len(datasets)
    pair = ManifestPair(folder / "h_hamiltonians.parquet", folder / "h_artifacts.parquet")
    pq.write_table(
        pa.table(
            {"huid": [f"h{i}" for i in range(n)], "key": [f"H{i}" for i in range(n)], "J": [float(i) for i in range(n)]}
        ),
        pair.hamiltonians,
    )
    pq.write_table(
        pa.table({"huid": [f"h{i}" for i in range(n)], "type": ["a"] * n, "file": [file] * n, "dataset": datasets}),
        pair.artifacts,
    )
    return pair


def test_each_escape_is_refused_by_its_own_rule(hostile: tuple[Path, Path], tmp_path: Path) -> None:
    base, outside = hostile
    datasets = [*REFUSED, *ACCEPTED]
    pair = _manifests(tmp_path, datasets)
    report = check_manifests([pair], base, use_cache=False)
    by_row = {f["row"]: f for f in report.findings.to_pylist() if f["manifest"] == str(pair.artifacts)}
    for row, dataset in enumerate(datasets):
        if dataset in REFUSED:
            finding = by_row[row]
            assert finding["rule"] == REFUSED[dataset], finding
            assert finding["value"] == dataset and finding["message"].startswith("hostile.h5: ")
        else:
            assert row not in by_row, by_row[row]
    # the message says where the bytes would come from
    assert str(outside / "secret.txt") in by_row[0]["message"]
    assert "/elink_mid" in by_row[4]["message"] and str(outside / "other.h5") in by_row[4]["message"]
    assert str(outside / "other.h5") in by_row[5]["message"]


def test_cli_refuses_with_exit_1_and_writes_nothing(hostile: tuple[Path, Path], tmp_path: Path) -> None:
    base, _ = hostile
    pair = _manifests(tmp_path, ["/real", "/vds"])
    catalog = tmp_path / "catalog.db"
    before = tree_state(tmp_path)
    checked = runner.invoke(
        app, ["check", str(pair.hamiltonians), str(pair.artifacts), "--base-dir", str(base), "--json"]
    )
    assert checked.exit_code == 1
    assert [f["rule"] for f in json.loads(checked.stdout)["findings"]] == ["dataset_virtual"]
    ingested = runner.invoke(
        app, ["ingest", str(pair.hamiltonians), str(pair.artifacts), "--base-dir", str(base), "--catalog", str(catalog)]
    )
    assert ingested.exit_code == 1 and "nothing was written" in ingested.output
    assert not catalog.exists()
    assert tree_state(tmp_path) == before


def test_feedback_tells_the_provider_what_to_change(hostile: tuple[Path, Path], tmp_path: Path) -> None:
    base, _ = hostile
    report = check_manifests([_manifests(tmp_path, ["/ext_text", "/elink_end", "/vds"])], base, use_cache=False)
    letter = feedback_message(report.findings, "the hostile data")
    assert "copy the data into the HDF5 file" in letter
    assert "list the other file (and its dataset) in the manifest" in letter
    assert "list the source files in the manifest" in letter


def test_probe_cache_of_an_older_probe_is_not_trusted(hostile: tuple[Path, Path], tmp_path: Path) -> None:
    """A cache written before the probe refused virtual datasets must not vouch for one."""
    import manifest_broker.catalog.probe as probe

    base, _ = hostile
    cache = tmp_path / "cache"
    pair = _manifests(tmp_path, ["/vds"])
    assert not check_manifests([pair], base, cache_dir=cache).ok
    current = list(cache.iterdir())
    assert len(current) == 1 and f"-v{probe.PROBE_VERSION}-" in current[0].name
    # an "ok" verdict under an older version's name is never read
    older = cache / current[0].name.replace(f"-v{probe.PROBE_VERSION}-", "-v1-")
    table = pq.read_table(current[0])
    ok = pa.array(["ok"] * table.num_rows)
    pq.write_table(table.set_column(table.schema.get_field_index("dataset_status"), "dataset_status", ok), older)
    current[0].unlink()
    assert not check_manifests([pair], base, cache_dir=cache).ok


@pytest.mark.parametrize(
    ("value", "refused"),
    [(2**64 - 1, False), (2**64, True), (-(2**63), False), (-(2**63) - 1, True), (10**30, True), (2**63, False)],
)
def test_metadata_integers_tiled_cannot_serve(spinwave, value: int, refused: bool) -> None:  # type: ignore[no-untyped-def]
    ham = spinwave.hamiltonians
    big = pa.array([decimal.Decimal(value)] + [decimal.Decimal(0)] * (ham.num_rows - 1), pa.decimal128(38, 0))
    spinwave.write(hamiltonians=ham.append_column("count", big))
    report = check_manifests([spinwave.pair], spinwave.base_dir)
    hits = [f for f in report.findings.to_pylist() if f["rule"] == "metadata_integer_range"]
    assert [(h["row"], h["column"]) for h in hits] == ([(0, "count")] if refused else [])


def test_metadata_tokens_inside_strings_are_not_values(spinwave) -> None:  # type: ignore[no-untyped-def]
    ham = spinwave.hamiltonians
    n = ham.num_rows
    ham = ham.append_column("note", pa.array(["NaN", ",NaN,", "id 123456789012345678901234567", '"Infinity"'][:n]))
    ham = ham.append_column("nested", pa.array([[1.0, float("nan")]] + [[1.0]] * (n - 1), pa.list_(pa.float64())))
    spinwave.write(hamiltonians=ham)
    report = check_manifests([spinwave.pair], spinwave.base_dir)
    rules = [(f["rule"], f["row"], f["column"]) for f in report.findings.to_pylist() if f["severity"] == "error"]
    assert rules == [("metadata_not_finite", 0, "nested")]


def test_names_tiled_client_cannot_reach_are_refused(spinwave) -> None:  # type: ignore[no-untyped-def]
    ham, art = spinwave.hamiltonians, spinwave.artifacts
    keys = ["a%2Fb", "x\u200by", "cafe\u0301", "caf\u00e9"]  # the last two are one name in NFC
    spinwave.write(hamiltonians=ham.set_column(1, "key", pa.array(keys)))
    types = art["type"].to_pylist()
    types[0], types[1] = ".", "a#b"
    spinwave.write(artifacts=art.set_column(art.schema.get_field_index("type"), "type", pa.array(types)))
    report = check_manifests([spinwave.pair], spinwave.base_dir)
    found = {(f["rule"], f["row"]): f["message"] for f in report.findings.to_pylist()}
    assert "percent-escape" in found[("key_invalid", 0)]
    assert "invisible format characters" in found[("key_invalid", 1)]
    assert "Unicode NFC" in found[("key_duplicate", 2)] and ("key_duplicate", 3) in found
    assert "relative path segment" in found[("type_invalid", 0)]
    assert "'?' or '#'" in found[("type_invalid", 1)]
    spinwave.write(artifacts=art)
    for key in (".", "..", "a?b"):
        spinwave.write(hamiltonians=ham.set_column(1, "key", pa.array([key, "k1", "k2", "k3"])))
        again = check_manifests([spinwave.pair], spinwave.base_dir)
        assert [(f["rule"], f["row"]) for f in again.findings.to_pylist()] == [("key_invalid", 0)]


@pytest.mark.slow
def test_a_hundred_thousand_metadata_columns_check_in_under_a_gibibyte(tmp_path: Path) -> None:
    """Memory grows with the columns, not with their square (the time ratio against
    10,000 columns is a benchmark: python -m benchmarks wide)."""
    base = tmp_path / "data"
    base.mkdir()
    with h5py.File(base / "f.h5", "w") as f:
        f["x"] = np.arange(3.0)
    rng = np.random.default_rng(0)
    n, columns = 3, 100_000
    ham = {"huid": [f"h{i}" for i in range(n)], "key": [f"k{i}" for i in range(n)]}
    ham |= {f"c{c}": rng.random(n) for c in range(columns)}
    pair = ManifestPair(tmp_path / "w_hamiltonians.parquet", tmp_path / "w_artifacts.parquet")
    pq.write_table(pa.table(ham), pair.hamiltonians)
    pq.write_table(
        pa.table({"huid": ham["huid"], "type": ["t"] * n, "file": ["f.h5"] * n, "dataset": ["/x"] * n}), pair.artifacts
    )
    script = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from manifest_broker.catalog.contract import check_manifests\n"
        "from manifest_broker.catalog.manifests import ManifestPair\n"
        "imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"r = check_manifests([ManifestPair(Path({str(pair.hamiltonians)!r}), Path({str(pair.artifacts)!r}))],"
        f" Path({str(base)!r}), use_cache=False)\n"
        "print(r.ok, r.errors, imported, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    ok, n_findings, imported_kib, max_rss_kib = out.stdout.split()
    # 100,000 columns of floats are about 2.8 MB of JSON per row: over the 1 MiB limit.
    assert (ok, n_findings) == ("False", str(n))
    # What the check itself adds to the process's peak (the imports are not the check's):
    # 490 MiB alone on this machine; the whole process measured 629 MiB alone and up to
    # 1.1 GiB inside the full suite under xdist, for reasons not found.
    grown = int(max_rss_kib) - int(imported_kib)
    assert grown < 1024 * 1024, (
        f"the check raised the peak by {grown / 1024:.0f} MiB (whole: {int(max_rss_kib) / 1024:.0f} MiB)"
    )
