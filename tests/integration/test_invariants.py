"""A model of the catalog, checked after every step (#26, item 1).

A hypothesis state machine drives the real commands (`ingest`, `register` with and
without `--upload`, `ingest --update-metadata`, `delete` by catalog and by server,
`verify`, `locate`) in generated sequences over generated datasets (every dtype
family Tiled serves, compound and string included, scalars, zero-length arrays,
batched rows, several manifest pairs with equal names in different folders,
generated `--parent` values), against a real `tiled serve` on a SQLite and on a
PostgreSQL catalog. After each step:

- every node the server lists under the machine's root is the model's, and
  reachable through `tiled.client` by its path;
- every served array equals h5py's read of the file its metadata's Mode A
  locator names (as Tiled serves it);
- `verify` passes on what exited 0;
- a command that failed changed nothing that is served;
- every `--json` answer is one JSON document.

A short profile runs in the fast tier, a longer one in the slow tier.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from typer.testing import CliRunner

from manifest_broker.cache import default_cache_dir
from manifest_broker.catalog.database import locate
from manifest_broker.catalog.serve import free_port, running_server, wait_ready
from manifest_broker.catalog.upload import as_tiled_serves
from manifest_broker.catalog.write import init_catalog
from manifest_broker.commandline.main import app
from tests.pg import new_database
from tests.reliability.conftest import BROKER

runner = CliRunner()
ENV = {"TILED_API_KEY": "secret"}

# dtype families Tiled serves; each makes a small array of that family (the ones that
# broke something first: hypothesis tries the first choices most)
FAMILIES: dict[str, Any] = {
    "compound": lambda rng, shape: np.array(
        [(int(i), float(i) / 3) for i in rng.integers(0, 99, int(np.prod(shape)))], [("n", "<i2"), ("x", "<f4")]
    ).reshape(shape),
    "bytes": lambda rng, shape: np.array([b"ab", b"xyz", b""] * 8, "S4")[: int(np.prod(shape))].reshape(shape),
    "float64": lambda rng, shape: rng.random(shape),
    "float32": lambda rng, shape: rng.random(shape).astype(">f4"),  # big-endian in the file
    "int16": lambda rng, shape: rng.integers(-999, 999, shape).astype(np.int16),
    "uint8": lambda rng, shape: rng.integers(0, 255, shape).astype(np.uint8),
    "bool": lambda rng, shape: rng.random(shape) > 0.5,
}
SHAPES = {"scalar": (), "empty": (0, 2), "array": (3, 2)}
# --parent segments: good names (spaces inside, Unicode) and names the key rule refuses
GOOD_SEGMENTS = ["lab", "run 1", "é-x", "a.b"]
BAD_SEGMENTS = ["..", ".", "x?y", "x#y", " lab "]


@dataclass
class DatasetSpec:
    """One manifest pair on disk and what the model expects of it."""

    folder: Path
    name: str
    keys: list[str]
    types: dict[str, tuple[str, str]]  # artifact type -> (family, shape class)
    batched: bool
    metadata: dict[str, dict] = field(default_factory=dict)  # key -> parameters
    version: int = 0

    @property
    def manifests(self) -> list[str]:
        return [
            str(self.folder / f"{self.name}_hamiltonians.parquet"),
            str(self.folder / f"{self.name}_artifacts.parquet"),
        ]


def _write_dataset(spec: DatasetSpec, data: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    spec.folder.mkdir(parents=True, exist_ok=True)
    hams, arts = [], []
    folder = data / spec.folder.name / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    if spec.batched:  # one file, one row per Hamiltonian
        with h5py.File(folder / "batch.h5", "w") as f:
            for art_type, (family, _) in spec.types.items():
                f[art_type] = FAMILIES[family](rng, (len(spec.keys), 3, 2))
    for i, key in enumerate(spec.keys):
        spec.metadata[key] = {"J1": 0.5 + i, "label": f"{key}[meV]"}
        hams.append({"huid": f"u-{key}", "key": key, **spec.metadata[key]})
        if not spec.batched:
            with h5py.File(folder / f"{key}.h5", "w") as f:
                for art_type, (family, shape) in spec.types.items():
                    f[art_type] = FAMILIES[family](rng, SHAPES[shape])
        for art_type in spec.types:
            file = f"{spec.folder.name}/{spec.name}/" + ("batch.h5" if spec.batched else f"{key}.h5")
            arts.append(
                {
                    "huid": f"u-{key}",
                    "type": art_type,
                    "file": file,
                    "dataset": f"/{art_type}",
                    "index": i if spec.batched else None,
                }
            )
    pq.write_table(pa.Table.from_pylist(hams), spec.manifests[0])
    pq.write_table(
        pa.Table.from_pylist(
            arts,
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
        spec.manifests[1],
    )


def _answer(args: list[str]) -> tuple[int, dict]:
    """Run a command with --json: its exit code and its one JSON document."""
    result = runner.invoke(app, [*args, "--json"], env=ENV)
    assert "Traceback" not in result.stdout, result.stdout
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, json.loads(result.stdout)  # exactly one document, or this raises


class CatalogMachine(RuleBasedStateMachine):
    """The catalog under ``root`` as the commands leave it, against a model."""

    catalog: str
    url: str
    data: Path
    storage: Path

    @initialize(
        specs=st.lists(
            st.tuples(
                st.sampled_from(["x", "y"]),
                st.sampled_from(list(FAMILIES)),
                st.sampled_from(list(FAMILIES)),
                st.sampled_from(list(SHAPES)),
                st.booleans(),
                st.integers(1, 2),
            ),
            min_size=1,
            max_size=3,
        )
    )
    def make_datasets(self, specs: list[tuple[str, str, str, str, bool, int]]) -> None:
        self.root = f"m{uuid.uuid4().hex[:8]}"
        self.work = self.data / self.root
        self.datasets: list[DatasetSpec] = []
        # model: catalog path of a Hamiltonian -> (dataset index, key, its parameter J1 as served)
        self.model: dict[str, tuple[int, str, float]] = {}
        for n, (name, fam_a, fam_b, shape, batched, count) in enumerate(specs):
            keys = [f"K{n}_{i}" for i in range(count)]
            types = {"a": (fam_a, "array" if batched else shape), "b": (fam_b, "array")}
            # equal names in different folders: every dataset has a folder of its own
            spec = DatasetSpec(self.work / f"f{n}", name, keys, types, batched)
            _write_dataset(spec, self.data, seed=n)
            self.datasets.append(spec)

    # --- commands ---------------------------------------------------------------------------

    def _parent(self, segment: str) -> str:
        return f"{self.root}/{segment}"

    def _run(self, args: list[str], parent_segment: str, *, adds: int | None = None) -> tuple[int, dict]:
        before = self._served()
        code, answer = _answer(args)
        if parent_segment in BAD_SEGMENTS:
            assert code == 2 and "--parent" in answer["error"], answer
        if code != 0:
            assert self._served() == before, f"{args[0]} failed ({answer}) and changed what is served"
        return code, answer

    def _added(self, n: int, segment: str) -> None:
        """A dataset added under a parent: new Hamiltonians as the manifest has them,
        those already there as they were (updated only with --update-metadata)."""
        spec = self.datasets[n]
        for key in spec.keys:
            path = f"{self._parent(segment)}/{key}"
            if path not in self.model:
                self.model[path] = (n, key, spec.metadata[key]["J1"])

    @rule(n=st.integers(0, 2), segment=st.sampled_from(GOOD_SEGMENTS + BAD_SEGMENTS))
    def ingest(self, n: int, segment: str) -> None:
        n %= len(self.datasets)
        spec = self.datasets[n]
        code, answer = self._run(
            [
                "ingest",
                *spec.manifests,
                "--base-dir",
                str(self.data),
                "--catalog",
                self.catalog,
                "--parent",
                self._parent(segment),
            ],
            segment,
        )
        if segment in GOOD_SEGMENTS:
            assert code == 0, answer
            self._added(n, segment)

    @rule(segment=st.sampled_from(GOOD_SEGMENTS + BAD_SEGMENTS))
    def ingest_together(self, segment: str) -> None:
        """All pairs in one command (equal names in different folders among them)."""
        manifests = [m for spec in self.datasets for m in spec.manifests]
        code, answer = self._run(
            [
                "ingest",
                *manifests,
                "--base-dir",
                str(self.data),
                "--catalog",
                self.catalog,
                "--parent",
                self._parent(segment),
            ],
            segment,
        )
        if segment in GOOD_SEGMENTS:
            assert code == 0, answer
            for n in range(len(self.datasets)):
                self._added(n, segment)

    @rule(
        n=st.integers(0, 2),
        segment=st.sampled_from(GOOD_SEGMENTS + BAD_SEGMENTS),
        upload=st.sampled_from([True, False]),
    )
    def register(self, n: int, segment: str, upload: bool) -> None:
        n %= len(self.datasets)
        spec = self.datasets[n]
        code, answer = self._run(
            [
                "register",
                *spec.manifests,
                "--base-dir",
                str(self.data),
                "--url",
                self.url,
                "--parent",
                self._parent(segment),
                "--workers",
                "2",
                *(["--upload"] if upload else []),
            ],
            segment,
        )
        if segment in GOOD_SEGMENTS:
            assert code == 0, answer
            self._added(n, segment)

    @precondition(lambda self: bool(self.model))
    @rule(pick=st.integers(0, 50), by_server=st.sampled_from([True, False]))
    def delete(self, pick: int, by_server: bool) -> None:
        path = sorted(self.model)[pick % len(self.model)]
        target = ["--url", self.url] if by_server else ["--catalog", self.catalog]
        code, said = self._run(["delete", path, *target, "--dry-run"], "lab")
        assert code == 0, said
        code, answer = self._run(["delete", path, *target, "--yes"], "lab")
        assert code == 0, answer
        # --dry-run told the truth: one Hamiltonian and its arrays
        n_arrays = len(self.datasets[self.model[path][0]].types)
        assert said["nodes"] == answer["nodes"] == {"container": 1, "array": n_arrays}, (said, answer)
        del self.model[path]

    @precondition(lambda self: bool(self.model))
    @rule(pick=st.integers(0, 50))
    def update_with_other_files(self, pick: int) -> None:
        """The artifacts moved to other files (same huids): `ingest --update-metadata`
        is refused and changes nothing (metadata and data move together)."""
        path = sorted(self.model)[pick % len(self.model)]
        n = self.model[path][0]
        spec = self.datasets[n]
        sources = [d for child in self._client()[path].values() for d in child.data_sources() or []]
        if any(str(getattr(d.management, "value", d.management)) != "external" for d in sources):
            return  # uploaded: the catalog's own copy, whatever the files are now
        original = pq.read_table(spec.manifests[1])
        moved = self.data / spec.folder.name / spec.name / "moved"
        moved.mkdir(exist_ok=True)
        files = []
        for name in original["file"].to_pylist():
            target = moved / Path(name).name
            with h5py.File(self.data / name, "r") as source, h5py.File(target, "w") as copy:
                for key in source:
                    source.copy(key, copy)
            files.append(str(target.relative_to(self.data)))
        pq.write_table(
            original.set_column(original.schema.get_field_index("file"), "file", pa.array(files)), spec.manifests[1]
        )
        try:
            parent = path.rpartition("/")[0]
            code, answer = self._run(
                [
                    "ingest",
                    *spec.manifests,
                    "--base-dir",
                    str(self.data),
                    "--catalog",
                    self.catalog,
                    "--parent",
                    parent,
                    "--update-metadata",
                ],
                "lab",
            )
            assert code == 1 and "--update-metadata updates metadata, not what an array reads" in answer["error"], (
                answer
            )
        finally:
            pq.write_table(original, spec.manifests[1])

    @precondition(lambda self: bool(self.model))
    @rule(pick=st.integers(0, 50))
    def update_metadata(self, pick: int) -> None:
        """New parameter values for one dataset, same files: `ingest --update-metadata`
        under a parent where it is, then the served metadata must follow there."""
        path = sorted(self.model)[pick % len(self.model)]
        n = self.model[path][0]
        spec = self.datasets[n]
        table = pq.read_table(spec.manifests[0])
        j1 = [v + 10.0 for v in table["J1"].to_pylist()]
        pq.write_table(table.set_column(table.schema.get_field_index("J1"), "J1", pa.array(j1)), spec.manifests[0])
        for key, value in zip(table["key"].to_pylist(), j1):
            spec.metadata[key]["J1"] = value
        parent = path.rpartition("/")[0]
        code, answer = _answer(
            [
                "ingest",
                *spec.manifests,
                "--base-dir",
                str(self.data),
                "--catalog",
                self.catalog,
                "--parent",
                parent,
                "--update-metadata",
            ]
        )
        assert code == 0, answer
        for key in spec.keys:  # every Hamiltonian of the dataset is there now, as the manifest says
            self.model[f"{parent}/{key}"] = (n, key, spec.metadata[key]["J1"])

    @precondition(lambda self: bool(self.model))
    @rule(pick=st.integers(0, 50))
    def verify(self, pick: int) -> None:
        """`verify` passes on a dataset whose every Hamiltonian is under one parent, as
        the manifest says (exit 0 was verified)."""
        path = sorted(self.model)[pick % len(self.model)]
        n = self.model[path][0]
        parent = path.rpartition("/")[0]
        spec = self.datasets[n]
        current = [self.model.get(f"{parent}/{k}") for k in spec.keys]
        if any(c is None or c[2] != spec.metadata[k]["J1"] for c, k in zip(current, spec.keys)):
            return
        code, answer = _answer(
            [
                "verify",
                *spec.manifests,
                "--base-dir",
                str(self.data),
                "--url",
                self.url,
                "--parent",
                parent,
                "--sample",
                "100",
            ]
        )
        assert code == 0 and answer["problems"] == [], answer

    @precondition(lambda self: bool(self.model))
    @rule(pick=st.integers(0, 50))
    def locate(self, pick: int) -> None:
        parent = sorted(self.model)[pick % len(self.model)].rpartition("/")[0]
        code, answer = _answer(["locate", "--url", self.url, "--parent", parent])
        assert code == 0, answer
        want = {
            (p.rpartition("/")[2], t)
            for p, (n, _, _) in self.model.items()
            if p.rpartition("/")[0] == parent
            for t in self.datasets[n].types
        }
        assert {(r["key"], r["type"]) for r in answer["rows"]} == want

    # --- what holds after every step ---------------------------------------------------------

    def _client(self) -> Any:
        from tiled.client import from_uri

        return from_uri(self.url, api_key="secret")

    def _served(self) -> dict[str, Any]:
        """Every node under the machine's root: path -> metadata (Hamiltonians) or
        (structure family, metadata) of arrays, through tiled.client."""
        root = self._client()
        if self.root not in root:
            return {}
        out: dict[str, Any] = {}

        def walk(node: Any, path: str) -> None:
            for key, child in node.items():
                here = f"{path}/{key}"
                out[here] = (child.structure_family, json.dumps(dict(child.metadata), sort_keys=True, default=str))
                if child.structure_family == "container":
                    walk(child, here)

        walk(root[self.root], self.root)
        return out

    @invariant()
    def served_is_the_model(self) -> None:
        if not hasattr(self, "model"):
            return
        client = self._client()
        served = self._served()
        hamiltonians = {p for p, (family, meta) in served.items() if family == "container" and "huid" in meta}
        assert hamiltonians == set(self.model), (sorted(hamiltonians ^ set(self.model)), served)
        for path, (n, _key, j1) in self.model.items():
            spec = self.datasets[n]
            node = client[path]  # reachable by its path
            meta = dict(node.metadata)
            assert meta["J1"] == j1, (path, meta)
            assert set(node) == set(spec.types), (path, list(node))
            for art_type in spec.types:
                served_array = node[art_type].read()
                index = meta.get(f"index_{art_type}")
                with h5py.File(meta[f"path_{art_type}"], "r") as f:
                    dataset = f[meta[f"dataset_{art_type}"]]
                    expected = as_tiled_serves(
                        np.asarray(dataset[index] if index is not None else dataset[()]), index is not None
                    )
                assert served_array.shape == expected.shape, (path, art_type, served_array.shape, expected.shape)
                if expected.dtype.names:
                    assert served_array.dtype.names == expected.dtype.names, (path, art_type, served_array.dtype)
                    expected = expected.astype(served_array.dtype)
                assert np.array_equal(served_array, expected), (path, art_type, served_array, expected)


def _machine_test(catalog: str, tmp_path: Path, profile: settings) -> None:
    init_catalog(locate(catalog), template_dir=default_cache_dir())
    data = tmp_path / "data"
    data.mkdir()
    storage = tmp_path / "storage"
    storage.mkdir()
    with running_server(catalog, data, storage=storage, log=tmp_path / "serve.log") as url:
        CatalogMachine.catalog, CatalogMachine.url = catalog, url
        CatalogMachine.data, CatalogMachine.storage = data.resolve(), storage
        run_state_machine_as_test(CatalogMachine, settings=profile)


SHORT = settings(
    max_examples=3,
    stateful_step_count=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = settings(
    max_examples=3,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_catalog_model_holds_short(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    catalog = (
        str(tmp_path / "cat.db") if backend == "sqlite" else new_database(request.getfixturevalue("postgres_server"))
    )
    _machine_test(catalog, tmp_path, SHORT)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_catalog_model_holds_long(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    catalog = (
        str(tmp_path / "cat.db") if backend == "sqlite" else new_database(request.getfixturevalue("postgres_server"))
    )
    _machine_test(catalog, tmp_path, LONG)


if os.environ.get("BROKER_INVARIANTS_EXAMPLES"):  # a longer hunt by hand: BROKER_INVARIANTS_EXAMPLES=200
    LONG = settings(LONG, max_examples=int(os.environ["BROKER_INVARIANTS_EXAMPLES"]))


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_uploaded_arrays_belong_to_their_nodes(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Compound arrays uploaded keep their named fields and verify; `delete --url` of
    uploaded arrays works (was 409 'internally managed' after --dry-run listed them);
    `delete --catalog` takes the uploaded data out of the storage with the nodes."""
    from tiled.client import from_uri

    catalog = (
        str(tmp_path / "cat.db") if backend == "sqlite" else new_database(request.getfixturevalue("postgres_server"))
    )
    init_catalog(locate(catalog), template_dir=default_cache_dir())
    data, storage = tmp_path / "data", tmp_path / "storage"
    data.mkdir()
    storage.mkdir()
    spec = DatasetSpec(
        tmp_path / "m", "x", ["K_1", "K_2"], {"a": ("compound", "array"), "b": ("float32", "scalar")}, batched=False
    )
    _write_dataset(spec, data, seed=3)
    with running_server(catalog, data, storage=storage, log=tmp_path / "serve.log") as url:
        for parent in ("p1", "p2"):
            code, answer = _answer(
                ["register", *spec.manifests, "--base-dir", str(data), "--url", url, "--parent", parent, "--upload"]
            )
            assert code == 0 and answer["created_arrays"] == 4, answer
        served = from_uri(url, api_key="secret")["p1/K_1/a"].read()
        assert served.dtype.names == ("n", "x") and served.shape == (3, 2)
        code, answer = _answer(
            ["verify", *spec.manifests, "--base-dir", str(data), "--url", url, "--parent", "p1", "--sample", "100"]
        )
        assert code == 0 and answer["problems"] == [] and answer["uploaded"] == 4, answer
        uploaded = len(_files(storage))
        assert uploaded > 0
        code, answer = _answer(["delete", "p1/K_1", "--url", url, "--dry-run"])
        assert code == 0 and answer["nodes"] == {"container": 1, "array": 2}, answer
        code, answer = _answer(["delete", "p1/K_1", "--url", url, "--yes"])
        assert code == 0, answer
        after_server_delete = len(_files(storage))
        assert 0 < after_server_delete < uploaded
        code, answer = _answer(["delete", "p2", "--catalog", catalog, "--yes"])
        assert code == 0 and len(answer["uploaded_data"]) == 4, answer
        assert 0 < len(_files(storage)) < after_server_delete  # p1/K_2's arrays are all that is left
        assert set(from_uri(url, api_key="secret")["p1"]) == {"K_2"} and "p2" not in from_uri(url, api_key="secret")


@pytest.mark.slow
def test_a_server_that_cannot_read_the_files_or_write_is_said_before_any_work(tmp_path: Path) -> None:
    """register with --base-dir outside the server's readable storage exited 0 (every
    array then answered 500); verify took 45 s to a 500; register and delete --url
    --json against `serve --workers 2 --read-only` were HTTP 500 tracebacks."""
    import time

    catalog = str(tmp_path / "cat.db")
    init_catalog(locate(catalog), template_dir=default_cache_dir())
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir()
    elsewhere.mkdir()
    spec = DatasetSpec(tmp_path / "m", "x", ["K_1"], {"a": ("float64", "array")}, batched=False)
    _write_dataset(spec, data, seed=1)
    given = [*spec.manifests, "--base-dir", str(data)]
    code, answer = _answer(["ingest", *given, "--catalog", catalog, "--parent", "in"])
    assert code == 0, answer
    with running_server(catalog, elsewhere, log=tmp_path / "serve.log") as url:
        from tiled.client import from_uri

        code, answer = _answer(["register", *given, "--url", url, "--parent", "lab"])
        assert code == 1 and "cannot read its files" in answer["error"] and "--upload" in answer["error"], answer
        assert set(from_uri(url, api_key="secret")) == {"in"}  # nothing registered, no probe left
        started = time.monotonic()
        code, answer = _answer(["verify", *given, "--url", url, "--parent", "in"])
        assert code == 1 and "cannot read it" in answer["error"], answer
        assert time.monotonic() - started < 20
    # `broker serve --workers 2 --read-only` itself, stopped as a user stops it; its temporary folder goes with it
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            *BROKER,
            "serve",
            "--catalog",
            catalog,
            "--base-dir",
            str(data),
            "--workers",
            "2",
            "--read-only",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **ENV, "TMPDIR": str(temporary)},
        start_new_session=True,
    )
    try:
        wait_ready(url, server)
        assert [p.name[:13] for p in temporary.iterdir()] == ["broker-serve-"]
        code, answer = _answer(["register", *given, "--url", url, "--parent", "lab"])
        assert code == 1 and "read-only" in answer["error"], answer
        code, answer = _answer(["delete", "in/K_1", "--url", url, "--yes"])
        assert code == 1 and "read-only" in answer["error"], answer
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    assert list(temporary.iterdir()) == []
