"""The dataset card (the guide's Step 0): written by `explore --card`, held to by
`check --card` (each rule names the card's field and the manifest), stored by
`ingest --card` as the parent container's metadata and served by a real Tiled."""

from __future__ import annotations

import json
import string
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from manifest_broker.catalog.serve import running_server
from manifest_broker.commandline.main import app
from manifest_broker.provider import card as cards

runner = CliRunner()

# Written by hand, as a provider fills it in after the guide's Step 0 questions.
CARD = """\
card_version: 1
dataset: spinwave-hand
provider: Theory group
description: Linear spin-wave dispersions on a square lattice
location: {location}
parameters:
  - {{name: J1, type: float, units: meV, description: nearest-neighbour exchange}}
  - {{name: n_sites, type: integer, units: null, description: sites in the cell}}
  - {{name: lattice, type: string, description: lattice name}}
artifacts:
  - {{type: dispersion, dataset: /dispersion, shape: [8, 3], dtype: float64}}
layout: {{pattern: C, reason: one file per Hamiltonian}}
count: {{files: 3, hamiltonians: 3, artifacts: {{min: 3, max: 6}}}}
existing_manifest: null
findings: []
"""


def _dataset(root: Path) -> tuple[Path, Path]:
    data, manifests = root / "data", root / "manifests"
    data.mkdir()
    manifests.mkdir()
    for i in range(3):
        with h5py.File(data / f"sw_{i}.h5", "w") as f:
            f["dispersion"] = np.full((8, 3), float(i))
            f["dos"] = np.arange(5.0)
    pq.write_table(
        pa.table(
            {
                "huid": [f"h{i}" for i in range(3)],
                "key": [f"H_{i}" for i in range(3)],
                "J1": [0.5, 1.0, 1.5],
                "n_sites": [4, 4, 8],
                "lattice": ["square"] * 3,
            }
        ),
        manifests / "hand_hamiltonians.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "huid": [f"h{i}" for i in range(3)],
                "type": ["dispersion"] * 3,
                "file": [f"sw_{i}.h5" for i in range(3)],
                "dataset": ["/dispersion"] * 3,
            }
        ),
        manifests / "hand_artifacts.parquet",
    )
    card = manifests / "card.yaml"
    card.write_text(CARD.format(location=data))
    return data, manifests


def _check(manifests: Path, data: Path, card: Path) -> dict:
    result = runner.invoke(app, ["check", str(manifests), "--base-dir", str(data), "--card", str(card), "--json"])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def _findings(report: dict) -> set[tuple[str, str | None]]:
    return {
        (
            f["rule"],
            f["value"]
            if f["rule"] in ("card_artifact_missing", "card_artifact_undeclared", "card_count")
            else f["column"],
        )
        for f in report.get("findings", [])
    }


def test_a_hand_written_card_holds_and_each_departure_is_named(tmp_path: Path) -> None:
    data, manifests = _dataset(tmp_path)
    card = manifests / "card.yaml"
    ok = _check(manifests, data, card)
    assert ok["ok"] and ok["errors"] == 0 and ok["warnings"] == 0, ok
    written = yaml.safe_load(card.read_text())
    written["parameters"].append({"name": "J2", "type": "float"})  # not in the manifest
    written["parameters"][1]["type"] = "string"  # n_sites is integer
    written["parameters"][0]["type"] = "float"
    written["artifacts"].append({"type": "dos"})  # declared, absent
    written["count"]["hamiltonians"] = {"min": 10}
    card.write_text(yaml.safe_dump(written))
    extra = pa.table({"huid": ["h0"], "type": ["extra"], "file": ["sw_0.h5"], "dataset": ["/dos"]})
    artifacts = pa.concat_tables([pq.read_table(manifests / "hand_artifacts.parquet"), extra])
    pq.write_table(artifacts, manifests / "hand_artifacts.parquet")
    bad = _check(manifests, data, card)
    assert not bad["ok"]
    rules = {(f["rule"], f["severity"]) for f in bad["findings"]}
    assert {
        ("card_parameter_missing", "error"),
        ("card_parameter_type", "error"),
        ("card_artifact_missing", "error"),
        ("card_count", "error"),
        ("card_artifact_undeclared", "warning"),
    } == rules
    by_rule = {f["rule"]: f for f in bad["findings"]}
    assert by_rule["card_parameter_missing"]["column"] == "J2"
    assert (
        by_rule["card_parameter_type"]["column"] == "n_sites" and by_rule["card_parameter_type"]["value"] == "integer"
    )
    assert by_rule["card_artifact_missing"]["value"] == "dos"
    assert by_rule["card_artifact_undeclared"]["value"] == "extra" and by_rule["card_artifact_undeclared"]["row"] == 3
    assert "3 hamiltonians, the dataset card says at least 10" in by_rule["card_count"]["message"]
    assert by_rule["card_count"]["manifest"].endswith("hand_hamiltonians.parquet")


def test_a_float_parameter_may_be_stored_as_integers(tmp_path: Path) -> None:
    data, manifests = _dataset(tmp_path)
    card = manifests / "card.yaml"
    written = yaml.safe_load(card.read_text())
    written["parameters"][1]["type"] = "float"  # n_sites holds integers
    card.write_text(yaml.safe_dump(written))
    assert _check(manifests, data, card)["ok"]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[1, 2]", "(top)"),
        ("card_version: 2", "card_version"),
        ("card_version: 1\nparameters: {J1: float}", "parameters"),
        ("card_version: 1\nparameters: [{name: J1, type: double}]", "parameters[0].type"),
        ("card_version: 1\nparameters: [{name: J1, type: float}, {name: J1, type: float}]", "parameters[1].name"),
        ("card_version: 1\nartifacts: [{dataset: /x}]", "artifacts[0]"),
        ("card_version: 1\ncount: {hamiltonians: -3}", "count.hamiltonians"),
        ("card_version: 1\ncount: {artifacts: {min: 5, max: 2}}", "count.artifacts"),
        ("card_version: 1\ncount: {people: 3}", "count"),
        ("card_version: 1\nparameters: [{name: J1, type: float}\n", "not YAML at line"),
    ],
)
def test_a_card_that_is_not_one_is_one_error_naming_the_field(tmp_path: Path, text: str, field: str) -> None:
    data, manifests = _dataset(tmp_path)
    card = tmp_path / "bad.yaml"
    card.write_text(text)
    result = runner.invoke(app, ["check", str(manifests), "--base-dir", str(data), "--card", str(card)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("error: ") and str(card) in result.output and field in result.output


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(string.printable, max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "card_version",
                        "parameters",
                        "artifacts",
                        "count",
                        "name",
                        "type",
                        "units",
                        "min",
                        "max",
                        "hamiltonians",
                        "findings",
                    ]
                ),
                inner,
                max_size=5,
            )
        ),
        max_leaves=20,
    )
)
def test_any_yaml_document_is_a_card_or_a_card_error(document: object) -> None:
    """Whatever a person writes, reading it either gives a card the rules can use or
    raises CardError: never another exception."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "card.yaml"
        path.write_text(yaml.safe_dump(document))
        try:
            card = cards.read(path)
        except cards.CardError as exc:
            assert str(path) in str(exc)
            return
        tables = cards.rule_tables(card)
        assert set(tables) == {"card_parameters", "card_artifacts", "card_counts"}


@pytest.mark.integration
def test_explore_card_then_ingest_card_is_served_as_the_parent_metadata(tmp_path: Path) -> None:
    data, manifests = _dataset(tmp_path)
    (manifests / "card.yaml").unlink()
    card = manifests / "card.yaml"
    made = runner.invoke(app, ["explore", str(data), "--card", str(card), "--provider", "Theory group", "--json"])
    assert made.exit_code == 0, made.output
    written = yaml.safe_load(card.read_text())
    assert json.loads(made.stdout)["card"] == written
    assert written["provider"] == "Theory group" and written["layout"]["pattern"] == "C"
    assert written["count"] == {"files": 3, "hamiltonians": 3, "artifacts": None}
    assert {a["type"] for a in written["artifacts"]} == {"dispersion", "dos"}
    # the provider's manifests have no dos artifact: the card says they should, so the card is edited
    written["artifacts"] = [a for a in written["artifacts"] if a["type"] == "dispersion"]
    written["description"] = "spin waves"
    card.write_text(yaml.safe_dump(written))
    catalog = str(tmp_path / "c.db")
    no_parent = runner.invoke(
        app, ["ingest", str(manifests), "--base-dir", str(data), "--catalog", catalog, "--card", str(card)]
    )
    assert no_parent.exit_code == 2 and "--parent" in no_parent.output and not Path(catalog).exists()
    args = ["ingest", str(manifests), "--base-dir", str(data), "--catalog", catalog, "--parent", "theory/sw"]
    first = runner.invoke(app, [*args, "--card", str(card), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["parent_metadata_updated"] is True
    again = runner.invoke(app, [*args, "--card", str(card), "--json"])
    assert json.loads(again.stdout)["parent_metadata_updated"] is False  # same card: no new revision
    written["description"] = "spin waves, v2"
    card.write_text(yaml.safe_dump(written))
    assert json.loads(runner.invoke(app, [*args, "--card", str(card), "--json"]).stdout)["parent_metadata_updated"]
    from tiled.client import from_uri

    with running_server(catalog, data) as url:
        parent = from_uri(url, api_key="secret")["theory"]["sw"]
        assert parent.metadata["dataset_card"] == written
        assert len(parent) == 3
        revisions = parent.metadata_revisions[:]
        # as Tiled's own update_metadata: each earlier document is a revision (the new container's empty one first)
        kept = [r["attributes"]["metadata"].get("dataset_card", {}).get("description") for r in revisions]
        assert kept == [None, "spin waves"], revisions
        # The same card through the server (the runner's other destination): stored in the
        # register's parent, the same way, and a second run leaves it alone.
        given = ["register", str(manifests), "--base-dir", str(data), "--url", url, "--parent", "theory/http"]
        registered = runner.invoke(app, [*given, "--card", str(card), "--json"], env={"TILED_API_KEY": "secret"})
        assert registered.exit_code == 0, registered.output
        answer = json.loads(registered.stdout)
        assert answer["parent_metadata_updated"] is True and answer["created_hamiltonians"] == 3
        assert answer["missing"] == 0 and answer["failed"] == []
        again = runner.invoke(app, [*given, "--card", str(card), "--json"], env={"TILED_API_KEY": "secret"})
        assert again.exit_code == 0 and json.loads(again.stdout)["parent_metadata_updated"] is False, again.output
        assert from_uri(url, api_key="secret")["theory"]["http"].metadata["dataset_card"] == written
        no_parent = runner.invoke(app, [*given[:-2], "--card", str(card)], env={"TILED_API_KEY": "secret"})
        assert no_parent.exit_code == 2 and "--parent" in no_parent.output
