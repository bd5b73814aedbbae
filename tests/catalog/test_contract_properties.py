"""Property-based tests of the manifest contract: the SQL rules against a Python oracle."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.manifests import ManifestPair

# Names that a URL or Unicode makes special, mixed into random text.
_SPECIAL = [".", "..", "?", "#", "%2F", "%zz", "%", "caf\u00e9", "cafe\u0301", "\u200b", "\u00ad"]
keys = st.one_of(
    st.none(),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6),
    st.lists(st.sampled_from([*_SPECIAL, "a", "b"]), min_size=1, max_size=3).map("".join),
)
types = st.sampled_from(
    ["a", "b", "c", "a/b", " a", "", ".", "..", "a?b", "a#b", "a%41", "100%", "caf\u00e9", "cafe\u0301"]
)


def _key_is_bad(key: str | None) -> bool:
    """The oracle of the macro name_problem: what tiled.client cannot reach or a reader cannot tell apart."""
    return (
        key is None
        or key == ""
        or "/" in key
        or bool(re.search(r"[\x00-\x1f\x7f-\x9f]", key))
        or key != key.strip()
        or key in (".", "..")
        or "?" in key
        or "#" in key
        or bool(re.search(r"%[0-9A-Fa-f]{2}", key))
        or any(unicodedata.category(c) == "Cf" for c in key)
        or len(key) > 1023
    )


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(keys, st.lists(types, max_size=3)), min_size=1, max_size=8))
def test_key_and_type_rules_match_oracle(rows: list[tuple[str | None, list[str]]], tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    folder: Path = tmp_path_factory.mktemp("prop")
    huids = [f"h{i}" for i in range(len(rows))]
    ham = pa.table({"huid": huids, "key": [k for k, _ in rows], "p": list(range(len(rows)))})
    art_rows = [(h, t) for h, (_, ts) in zip(huids, rows) for t in ts]
    art = pa.table(
        {
            "huid": [h for h, _ in art_rows],
            "type": [t for _, t in art_rows],
            "file": ["x.h5"] * len(art_rows),
            "dataset": ["/d"] * len(art_rows),
        },
        schema=pa.schema(
            [("huid", pa.string()), ("type", pa.string()), ("file", pa.string()), ("dataset", pa.string())]
        ),
    )
    pq.write_table(ham, folder / "t_hamiltonians.parquet")
    pq.write_table(art, folder / "t_artifacts.parquet")
    report = check_manifests(
        [ManifestPair(folder / "t_hamiltonians.parquet", folder / "t_artifacts.parquet")], folder, use_cache=False
    )
    found = Counter((f["rule"], f["row"]) for f in report.findings.to_pylist())

    expected_invalid = {i for i, (k, _) in enumerate(rows) if _key_is_bad(k)}
    assert {r for (rule, r) in found if rule == "key_invalid"} == expected_invalid
    counts = Counter(_nfc(k) for k, _ in rows if k not in (None, ""))
    assert {r for (rule, r) in found if rule == "key_duplicate"} == {
        i for i, (k, _) in enumerate(rows) if k not in (None, "") and counts[_nfc(k)] > 1
    }
    per_huid = Counter((h, _nfc(t)) for h, t in art_rows if t != "")
    assert {r for (rule, r) in found if rule == "type_duplicate"} == {
        i for i, (h, t) in enumerate(art_rows) if t != "" and per_huid[(h, _nfc(t))] > 1
    }
    assert {r for (rule, r) in found if rule == "type_invalid"} == {
        i for i, (_, t) in enumerate(art_rows) if _key_is_bad(t)
    }
    assert {r for (rule, r) in found if rule == "hamiltonian_without_artifacts"} == {
        i for i, (_, ts) in enumerate(rows) if not ts
    }


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(datasets=st.lists(st.lists(keys, min_size=1, max_size=6), min_size=1, max_size=3))
def test_key_collision_across_datasets_matches_oracle(datasets: list[list[str | None]], tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    """A key (in NFC) used by two datasets or more is flagged in every row that uses it,
    and only those: repeats inside one dataset are key_duplicate, not a collision (the
    rule groups by hash first: this holds whatever the candidates were)."""
    folder: Path = tmp_path_factory.mktemp("collide")
    pairs = []
    for number, rows in enumerate(datasets):
        huids = [f"d{number}h{i}" for i in range(len(rows))]
        ham = pa.table({"huid": huids, "key": pa.array(rows, pa.string()), "p": list(range(len(rows)))})
        art = pa.table(
            {"huid": huids, "type": ["a"] * len(rows), "file": ["x.h5"] * len(rows), "dataset": ["/d"] * len(rows)}
        )
        # Small row groups: the keys of one dataset come in several of them.
        pq.write_table(ham, folder / f"d{number}_hamiltonians.parquet", row_group_size=2)
        pq.write_table(art, folder / f"d{number}_artifacts.parquet")
        pairs.append(ManifestPair(folder / f"d{number}_hamiltonians.parquet", folder / f"d{number}_artifacts.parquet"))
    report = check_manifests(pairs, folder, use_cache=False)
    found = {(Path(f["manifest"]).name, f["row"]) for f in report.findings.to_pylist() if f["rule"] == "key_collision"}
    users: dict[str, set[int]] = {}
    for number, rows in enumerate(datasets):
        for key in rows:
            if key not in (None, ""):
                users.setdefault(_nfc(key), set()).add(number)
    expected = {
        (f"d{number}_hamiltonians.parquet", row)
        for number, rows in enumerate(datasets)
        for row, key in enumerate(rows)
        if key not in (None, "") and len(users[_nfc(key)]) > 1
    }
    assert found == expected
