"""Mode A's locators belong to the broker (#24): a Hamiltonian column in the
locator namespace is a contract error, and ``load_batches`` reads only inside the
data directory, whatever a locator table says."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manifest_broker.boundary import ProviderFileError
from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.manifests import LOCATOR_PREFIXES
from manifest_broker.catalog.modea import LocateError, load_batches, with_base_dir
from tests.conftest import Dataset


def _with_column(table: pa.Table, name: str, value: object) -> pa.Table:
    return table.append_column(name, pa.array([value] * table.num_rows))


def test_locator_columns_in_a_manifest_are_contract_errors(spinwave: Dataset, tmp_path: Path) -> None:
    """The attack of #24: columns that would become a locator for a file outside."""
    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as f:
        f["secret"] = np.arange(4.0)
    ham = _with_column(spinwave.hamiltonians, "path_rixs", str(outside))
    ham = _with_column(_with_column(ham, "dataset_rixs", "/secret"), "index_rixs", 0)
    ham = _with_column(ham, "pathway", "fine")  # only the prefixes are the broker's
    spinwave.write(hamiltonians=ham)
    report = check_manifests([spinwave.pair], spinwave.base_dir)
    hits = [f for f in report.findings.to_pylist() if f["rule"] == "locator_namespace"]
    assert not report.ok
    assert sorted(f["column"] for f in hits) == ["dataset_rixs", "index_rixs", "path_rixs"]
    assert all(f["manifest"] == str(spinwave.pair.hamiltonians) and f["severity"] == "error" for f in hits)
    assert "locator namespace" in hits[0]["message"] and "rename" in hits[0]["message"]


def test_artifact_columns_may_use_the_prefixes(spinwave: Dataset) -> None:
    """Artifact metadata goes on the artifact's own node, never into a locator."""
    spinwave.write(artifacts=_with_column(spinwave.artifacts, "path_length", 2.5))
    report = check_manifests([spinwave.pair], spinwave.base_dir)
    assert report.ok, report.findings.to_pylist()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prefix=st.sampled_from(["", *LOCATOR_PREFIXES, "Path_", "paths_", "xpath_"]),
    rest=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12),
)
def test_exactly_the_prefixed_columns_are_refused(spinwave: Dataset, prefix: str, rest: str) -> None:
    name = prefix + rest
    if name in ("huid", "key") or name.startswith("_"):
        return  # standard and internal columns have rules of their own
    spinwave.write(hamiltonians=_with_column(pa.table({"huid": ["a"], "key": ["A"]}), name, 1.0))
    report = check_manifests([spinwave.pair], spinwave.base_dir)
    flagged = [f["column"] for f in report.findings.to_pylist() if f["rule"] == "locator_namespace"]
    assert flagged == ([name] if name.startswith(LOCATOR_PREFIXES) else [])


def _locators(files: list[str]) -> pa.Table:
    n = len(files)
    return pa.table(
        {
            "huid": ["h"] * n,
            "key": ["H"] * n,
            "type": ["t"] * n,
            "file": files,
            "dataset": ["/d"] * n,
            "index": pa.nulls(n, pa.int64()),
        }
    )


def test_load_batches_refuses_a_locator_outside_the_data_directory(tmp_path: Path) -> None:
    base, outside = tmp_path / "data", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    for folder in (base, outside):
        with h5py.File(folder / "f.h5", "w") as f:
            f["d"] = np.arange(3.0)
    os.symlink(outside / "f.h5", base / "link.h5")
    inside = str(base / "f.h5")
    assert [a.tolist() for _, b in load_batches(_locators([inside]), base_dir=base) for a in b] == [[0.0, 1.0, 2.0]]
    for bad in (str(outside / "f.h5"), str(base / "link.h5"), str(base / ".." / "outside" / "f.h5")):
        batches = load_batches(_locators([inside] * 3 + [bad]), base_dir=base, batch_size=1, workers=1)
        with pytest.raises(ProviderFileError) as refused:
            next(batches)  # refused before the first batch is read
        assert refused.value.rule == "outside_root" and refused.value.where == bad
    with pytest.raises(LocateError, match="base_dir"):
        next(load_batches(_locators([inside])))
    recorded = with_base_dir(_locators([str(outside / "f.h5")]), base)
    with pytest.raises(ProviderFileError, match="outside"):
        next(load_batches(recorded))


def test_load_batches_refuses_an_external_link_inside(tmp_path: Path) -> None:
    base, outside = tmp_path / "data", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    with h5py.File(outside / "secret.h5", "w") as f:
        f["d"] = np.arange(3.0)
    with h5py.File(base / "f.h5", "w") as f:
        f["d"] = h5py.ExternalLink(str(outside / "secret.h5"), "/d")
    with pytest.raises(ProviderFileError) as refused:
        next(load_batches(_locators([str(base / "f.h5")]), base_dir=base))
    assert refused.value.rule == "external_link"
