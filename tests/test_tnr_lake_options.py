"""The lake options belong to the ``tnr`` group and may follow the command: every
``tnr`` command reads the same lake either way, and the rewriting of the command
line moves nothing else (a property over generated command lines)."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from manifest_broker.commandline._tnr import LAKE_OPTIONS, _hoisted
from manifest_broker.commandline.main import _command, app
from tests.tnr.spec_run import RUN, spec_run

runner = CliRunner()

# Tokens of a command line that are not lake options (values, other options, ``--``).
tokens = st.one_of(
    st.sampled_from(["package", "sql", "x", "-o", "--strict", "--json", "--"]),
    st.text(min_size=1, max_size=8).filter(lambda s: s.split("=", 1)[0] not in LAKE_OPTIONS),
)
values = st.text(max_size=6).filter(lambda s: s.split("=", 1)[0] not in LAKE_OPTIONS)


@given(st.lists(tokens, max_size=12), st.lists(st.tuples(st.sampled_from(LAKE_OPTIONS), values), max_size=3))
def test_hoisting_moves_the_lake_options_and_nothing_else(before: list[str], options: list[tuple[str, str]]) -> None:
    lake = [token for pair in options for token in pair]
    args = [*before, *lake]
    # In front, in their order, with their values; the rest as it was. After ``--``
    # nothing is an option, so nothing moves.
    assert _hoisted(args) == (args if "--" in before else [*lake, *before])
    assert _hoisted([*lake, *before]) == [*lake, *before]


def test_every_tnr_command_reads_the_lake_in_either_position(tmp_path: Path) -> None:
    split, reduced, xml = spec_run(tmp_path)
    lake = tmp_path / "lk"
    packaged = runner.invoke(
        app, ["tnr", "package", str(split), str(reduced), str(xml), "--lake", str(lake), "--namespace", "eis", "--json"]
    )
    assert packaged.exit_code == 0, packaged.output
    assert json.loads(packaged.stdout)["namespace"] == "eis"
    commands = {
        "sql": ["sql", "select count(*) as n from runs"],
        "check": ["check"],
        "maintain": ["maintain"],
        "plot": ["plot", "--run", str(RUN), "-o", str(tmp_path / "p.png")],
        "package --validate-only": ["package", str(split), str(reduced), str(xml), "--validate-only"],
    }
    lake_args = ["--lake", str(lake), "--namespace", "eis"]
    for name, command in commands.items():
        after = runner.invoke(app, ["tnr", *command, *lake_args, "--json"])
        before = runner.invoke(app, ["tnr", *lake_args, *command, "--json"])
        assert after.exit_code == before.exit_code == 0, (name, after.output, before.output)
        if name != "plot":
            assert json.loads(after.stdout) == json.loads(before.stdout), name
    wrong = runner.invoke(app, ["tnr", "check", "--lake", str(lake), "--namespace", "other"])
    assert wrong.exit_code != 0 and "other" in wrong.output
    helped = runner.invoke(app, ["tnr", "--help"])
    assert "--lake" in helped.output and "--namespace" in helped.output


def test_a_lake_option_without_its_value_says_so_after_the_command_too() -> None:
    for args in (["tnr", "sql", "select 1", "--lake"], ["tnr", "--lake"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "requires an argument" in result.output, (args, result.output)


def test_the_command_is_found_past_the_group_options() -> None:
    assert _command(["tnr", "package", "a", "b"]) == ("tnr", "package")
    assert _command(["tnr", "--lake", "L", "--namespace=n", "package", "a"]) == ("tnr", "package")
    assert _command(["ingest", "m", "--catalog", "c.db"]) == ("ingest", "m")
