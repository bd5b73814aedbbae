"""The dataset card: the guide's Step 0 record, kept as a YAML file beside the
manifests.

Step 0 of the guide asks the provider what the dataset is before anything is
written: its parameters (with units and meaning), its artifact types, the file
layout, how many files and Hamiltonians there are, where they live and whether a
table of them already exists. ``broker explore --card`` writes a first card from
what exploration found (the provider's answers are then filled in by hand);
``broker check --card`` holds the manifests to it with the rules in
``sql/contract/card/``; ``broker ingest --card`` stores it as the parent
container's metadata (``dataset_card``), so the catalog itself says what the
dataset is.

YAML because it is what people edit by hand and what Tiled's own configuration
uses; PyYAML's ``safe_load``/``safe_dump`` read and write it (no Python objects).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from manifest_broker.errors import BrokerError

if TYPE_CHECKING:
    from manifest_broker.provider.explore import ExploreReport

CARD_VERSION = 1
TYPES = ("float", "integer", "string", "bool")
COUNTED = ("files", "hamiltonians", "artifacts")


class CardError(BrokerError):
    """A dataset card that cannot be read or does not follow the card's form."""


# The card's fields: any other is a mistake (a misspelt `paramters:` would drop its
# rules without a word), named with the nearest known field.
FIELDS = (
    "card_version",
    "dataset",
    "provider",
    "description",
    "location",
    "parameters",
    "artifacts",
    "layout",
    "count",
    "existing_manifest",
    "findings",
)
PARAMETER_FIELDS = ("name", "type", "units", "description", "source")
ARTIFACT_FIELDS = ("type", "dataset", "shape", "dtype", "description")
# Limits of what a card may be: a card is a page of hand-edited text, and a YAML
# document can be made to cost without bound (aliases, nesting, huge numbers).
MAX_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_INT_DIGITS = 30


def _shown(value: Any) -> str:
    """A value as a message shows it: its repr, cut at 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _unknown(fields: Any, known: tuple[str, ...], where: str, path: Path) -> None:
    import difflib

    for name in fields:
        if name not in known:
            near = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]!r}?" if near else f"; the fields are {', '.join(known)}"
            raise CardError(f"{path}: {where}{_shown(name)}: not a field of a dataset card{hint}", where=path)


def _safe_load(text: str, path: Path) -> Any:
    """``yaml.safe_load`` within the card's limits: no aliases, nesting at most
    ``MAX_DEPTH`` deep, integers of at most ``MAX_INT_DIGITS`` digits.

    Raises:
        CardError: naming the line and the limit.
    """
    import yaml

    class CardLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            line = event.start_mark.line + 1 if event.start_mark else 0
            if isinstance(event, yaml.AliasEvent):
                raise CardError(
                    f"{path}: line {line}: a YAML alias (*{_shown(event.anchor)[1:-1]}); a card holds "
                    "no aliases: write the value out",
                    where=path,
                )
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise CardError(f"{path}: line {line}: nested more than {MAX_DEPTH} levels deep", where=path)
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    def integer(loader: Any, node: Any) -> Any:
        if sum(c.isdigit() for c in node.value) > MAX_INT_DIGITS:
            raise CardError(
                f"{path}: line {node.start_mark.line + 1}: an integer of more than {MAX_INT_DIGITS} digits", where=path
            )
        return yaml.SafeLoader.construct_yaml_int(loader, node)

    CardLoader.add_constructor("tag:yaml.org,2002:int", integer)
    return yaml.load(text, Loader=CardLoader)  # noqa: S506 (a SafeLoader with limits)


def _family(kind: str) -> str | None:
    return {
        "f": "float",
        "i": "integer",
        "u": "integer",
        "b": "bool",
        "S": "string",
        "U": "string",
        "O": "string",
        "T": "string",
    }.get(kind)


def arrow_family(type_: pa.DataType) -> str:
    """The card's type family of an Arrow column type (``other`` when none fits)."""
    if pa.types.is_floating(type_):
        return "float"
    if pa.types.is_integer(type_):
        return "integer"
    if pa.types.is_boolean(type_):
        return "bool"
    if pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_dictionary(type_):
        return "string"
    return "other"


def from_report(report: ExploreReport, *, provider: str = "", description: str = "") -> dict[str, Any]:
    """A first card from what ``explore`` found; what only the provider knows is left
    for them (descriptions empty, counts that exploration cannot know ``null``)."""
    import numpy as np

    parameters: dict[str, dict[str, Any]] = {}
    artifacts: dict[str, dict[str, Any]] = {}
    entries_per_file: set[int] = set()
    for info in report.sample:
        if info.error:
            continue
        shapes = {d.path: d for d in info.datasets}
        if info.nexus:
            entries_per_file.add(sum(1 for e in info.nexus if e.signal))
            for entry in info.nexus:
                for p in entry.parameters:
                    parameters.setdefault(
                        p.column,
                        {
                            "name": p.column,
                            "type": p.kind,
                            "units": p.units,
                            "description": "",
                            "source": f"{{entry}}/{p.path}",
                        },
                    )
                for art_type, dataset in entry.artifacts.items():
                    d = shapes.get(f"{entry.path}/{dataset}")
                    artifacts.setdefault(
                        art_type,
                        {
                            "type": art_type,
                            "dataset": f"{{entry}}/{dataset}",
                            "shape": list(d.shape) if d else None,
                            "dtype": np.dtype(d.dtype).name if d else None,
                        },
                    )
            continue
        for d in info.datasets:
            name = d.path.strip("/")
            kind = _family(np.dtype(d.dtype).kind)
            if name.startswith("params/") and kind is not None:
                column = name.split("/", 1)[1].replace("/", "_")
                parameters.setdefault(
                    column,
                    {"name": column, "type": kind, "units": d.attrs.get("units"), "description": "", "source": d.path},
                )
            elif not name.startswith("params/"):
                art_type = name.replace("/", "_")
                artifacts.setdefault(
                    art_type,
                    {"type": art_type, "dataset": d.path, "shape": list(d.shape), "dtype": np.dtype(d.dtype).name},
                )
    hamiltonians: int | None = None
    if report.pattern == "NeXus" and len(entries_per_file) == 1:
        hamiltonians = report.n_files * entries_per_file.pop()
    elif report.pattern == "C":
        hamiltonians = report.n_files
    return {
        "card_version": CARD_VERSION,
        # the folder's name, or its parent's when the folder is just "data"
        "dataset": Path(report.root).name
        if Path(report.root).name.lower() != "data"
        else Path(report.root).parent.name,
        "provider": provider,
        "description": description,
        "location": report.root,
        "parameters": list(parameters.values()),
        "artifacts": list(artifacts.values()),
        "layout": {"pattern": report.pattern, "reason": report.reason},
        "count": {"files": report.n_files, "hamiltonians": hamiltonians, "artifacts": None},
        "existing_manifest": None,
        "findings": list(report.flags),
    }


def write(path: Path, card: dict[str, Any]) -> None:
    """Write ``card`` as YAML (whole or not at all), refusing to replace a card
    already there: it may hold the provider's answers.

    Raises:
        CardError: when ``path`` exists or cannot be written.
    """
    import yaml

    from manifest_broker.cache import replace_atomically

    if path.exists():
        raise CardError(
            f"{path}: a dataset card is already there (it may hold the provider's answers); "
            "move it away or choose another path",
            where=path,
            exit_code=2,
        )

    header = (
        "# Dataset card (the guide's Step 0), written by `broker explore --card`.\n"
        "# Fill in the provider's answers: description, each parameter's units and meaning,\n"
        "# the counts exploration could not know (null). `broker check --card` holds the\n"
        "# manifests to it; `broker ingest --card` stores it in the catalog.\n"
    )
    text = header + yaml.safe_dump(card, sort_keys=False, allow_unicode=True, width=100)

    def save(partial: Path) -> None:
        partial.write_text(text, encoding="utf-8")

    failed = replace_atomically(path, save)
    if failed:
        raise CardError(f"{path}: cannot write the dataset card ({failed})", where=path)


def _count(value: Any, where: str) -> tuple[int | None, int | None]:
    if value is None:
        return None, None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value, value
    if isinstance(value, dict) and set(value) <= {"min", "max"} and value:
        lo, hi = value.get("min"), value.get("max")
        for bound in (lo, hi):
            if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool) or bound < 0):
                break
        else:
            if lo is None or hi is None or lo <= hi:
                return lo, hi
    raise CardError(
        f"{where}: a count is a number >= 0, {{min: N, max: M}} (either may be left out) or null, not {_shown(value)}"
    )


def read(path: Path) -> dict[str, Any]:
    """Read and validate a card; every mistake names the card and the field.

    Raises:
        CardError: when the file is missing, not YAML, or not a card.
    """
    import yaml

    from manifest_broker.boundary import ProviderFileError, read_text

    try:  # through the confined reader: a regular file (never a FIFO), at most MAX_BYTES
        text = read_text(Path(path).absolute(), Path(path).absolute().parent, limit=MAX_BYTES, what="dataset card")
    except ProviderFileError as exc:
        if exc.rule == "missing":
            raise CardError(f"{path}: no such dataset card", where=path) from None
        if exc.rule == "too_large":
            raise CardError(f"{path}: a dataset card is at most {MAX_BYTES:,} bytes ({exc})", where=path) from None
        raise CardError(f"{path}: cannot read the dataset card ({exc})", where=path) from None
    try:
        card = _safe_load(text, Path(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise CardError(f"{path}: not YAML{at} ({getattr(exc, 'problem', exc)})", where=path) from None

    def fail(field: str, message: str) -> CardError:
        return CardError(f"{path}: {field}: {message}", where=path)

    if not isinstance(card, dict):
        raise fail("(top)", "a dataset card is a mapping of fields (card_version, dataset, parameters, ...)")
    _unknown(card, FIELDS, "", path)
    if card.get("card_version") != CARD_VERSION:
        raise fail("card_version", f"must be {CARD_VERSION}, found {_shown(card.get('card_version'))}")
    for key in ("parameters", "artifacts", "findings"):
        if not isinstance(card.get(key) or [], list):
            raise fail(key, "must be a list")
    names: set[str] = set()
    for i, p in enumerate(card.get("parameters") or []):
        if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not p["name"]:
            raise fail(f"parameters[{i}]", "each parameter is a mapping with a name")
        _unknown(p, PARAMETER_FIELDS, f"parameters[{i}].", path)
        if p.get("type") not in TYPES:
            raise fail(f"parameters[{i}].type", f"{_shown(p.get('type'))} is not one of {', '.join(TYPES)}")
        if p.get("units") is not None and not isinstance(p["units"], str):
            raise fail(f"parameters[{i}].units", "units are text or null")
        if p["name"] in names:
            raise fail(f"parameters[{i}].name", f"{_shown(p['name'])} is declared twice")
        names.add(p["name"])
    for i, a in enumerate(card.get("artifacts") or []):
        if not isinstance(a, dict) or not isinstance(a.get("type"), str) or not a["type"]:
            raise fail(f"artifacts[{i}]", "each artifact is a mapping with a type")
        _unknown(a, ARTIFACT_FIELDS, f"artifacts[{i}].", path)
    count = card.get("count") or {}
    if not isinstance(count, dict) or set(count) - set(COUNTED):
        raise fail("count", f"a mapping of {', '.join(COUNTED)}")
    for key in COUNTED:
        _count(count.get(key), f"{path}: count.{key}")
    return card


def rule_tables(card: dict[str, Any]) -> dict[str, pa.Table]:
    """The card as the tables ``sql/contract/card/`` rules read."""
    count = card.get("count") or {}
    bounds = [(key, *_count(count.get(key), key)) for key in ("hamiltonians", "artifacts")]
    return {
        "card_parameters": pa.Table.from_pylist(
            [{"name": p["name"], "type": p["type"]} for p in card.get("parameters") or []],
            schema=pa.schema([("name", pa.string()), ("type", pa.string())]),
        ),
        "card_artifacts": pa.table({"type": pa.array([a["type"] for a in card.get("artifacts") or []], pa.string())}),
        "card_counts": pa.table(
            {
                "what": [b[0] for b in bounds],
                "lo": pa.array([b[1] for b in bounds], pa.int64()),
                "hi": pa.array([b[2] for b in bounds], pa.int64()),
            }
        ),
    }
