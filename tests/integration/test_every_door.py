"""Every door a provider's bytes come in through, tried as an attacker would, each
through a real `tiled serve` or the real CLI: uploads of files rewritten after the
check, NeXus parameters read through other files, provider names that would be
code in a generated script, and passwords that must not show.

Inputs are written by hand here; a secret file lies outside every data directory
and no byte of it may reach a manifest, the catalog or the server's storage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from manifest_broker.cache import default_cache_dir
from manifest_broker.catalog import register as register_module
from manifest_broker.catalog.contract import check_manifests
from manifest_broker.catalog.database import locate
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.plan import plan_nodes
from manifest_broker.catalog.serve import free_port, running_server
from manifest_broker.catalog.write import init_catalog
from tests.reliability.conftest import BROKER

pytestmark = pytest.mark.integration
SECRET = b"root:x:0:0:THE-SECRET-OUTSIDE"
ENV = {**os.environ, "TILED_API_KEY": "secret"}


def _secret(root: Path) -> Path:
    outside = root / "outside"
    outside.mkdir()
    (outside / "passwd").write_bytes(SECRET * 4)
    with h5py.File(outside / "other.h5", "w") as f:
        f["secret"] = np.frombuffer(SECRET, dtype="u1")
        f["number"] = 42.0
    return outside


def _provider(root: Path) -> tuple[Path, ManifestPair]:
    root.mkdir(exist_ok=True)
    data = root / "data"
    (data / "d").mkdir(parents=True)
    for i in range(3):
        with h5py.File(data / "d" / f"h{i}.h5", "w") as f:
            f["values"] = np.arange(len(SECRET), dtype="u1") + i
    pair = ManifestPair(root / "up_hamiltonians.parquet", root / "up_artifacts.parquet")
    pq.write_table(
        pa.table({"huid": [f"h{i}" for i in range(3)], "key": [f"H{i}" for i in range(3)], "T": [1.0, 2.0, 3.0]}),
        pair.hamiltonians,
    )
    pq.write_table(
        pa.table(
            {
                "huid": [f"h{i}" for i in range(3)],
                "type": ["values"] * 3,
                "file": [f"d/h{i}.h5" for i in range(3)],
                "dataset": ["/values"] * 3,
            }
        ),
        pair.artifacts,
    )
    return data, pair


def _rewrite_after_check(data: Path, outside: Path) -> None:
    """What a hostile provider does between check and upload: h0 rewritten with its
    raw data in the secret file, h1 with an external link to another file, and the
    folder of h2 swapped for a link to a folder outside holding a file of that name."""
    path = data / "d" / "h0.h5"
    path.unlink()
    with h5py.File(path, "w") as f:
        f.create_dataset("values", (len(SECRET),), dtype="u1", external=[(str(outside / "passwd"), 0, len(SECRET))])
    path = data / "d" / "h1.h5"
    path.unlink()
    with h5py.File(path, "w") as f:
        f["values"] = h5py.ExternalLink(str(outside / "other.h5"), "/secret")
    with h5py.File(outside / "h2.h5", "w") as f:
        f["values"] = np.frombuffer(SECRET, dtype="u1")
    (data / "d" / "h2.h5").rename(data / "h2-moved.h5")
    (data / "d" / "h2.h5").symlink_to(outside / "h2.h5")


def _storage_bytes(storage: Path) -> bytes:
    return b"".join(p.read_bytes() for p in storage.rglob("*") if p.is_file())


def test_upload_refuses_files_changed_after_the_check(tmp_path: Path, upload_server) -> None:  # type: ignore[no-untyped-def]
    """register --upload: the files are checked, then rewritten to read the secret
    (external storage, an external link, a folder swapped for a symlink). Each array
    fails, the server's storage holds no byte of the secret, nothing exits 0."""
    from tiled.client import from_uri

    url, storage = upload_server
    outside = _secret(tmp_path)
    data, pair = _provider(tmp_path)
    report = check_manifests([pair], data, cache_dir=None)
    assert report.ok
    plan = plan_nodes(report.checked())
    _rewrite_after_check(data, outside)
    result = register_module.register_plan(
        lambda: from_uri(url, api_key="secret"), plan, parent="swapped", workers=1, upload=data
    )
    assert result.created_arrays == 0 and len(result.failed) == 3, result
    reasons = " ".join(reason for _, reason in result.failed)
    assert "changed or was replaced after the check" in reasons
    assert SECRET not in _storage_bytes(storage)
    served = from_uri(url, api_key="secret")["swapped"]
    assert all(len(ham) == 0 for _, ham in served.items())  # no array left, not even a marked one


def test_register_upload_through_the_cli_checks_what_it_reads(tmp_path: Path, upload_server) -> None:  # type: ignore[no-untyped-def]
    """The whole command, with the rewrite made before it starts: the contract refuses
    the external storage and link, and the symlinked folder, before any upload."""
    url, storage = upload_server
    outside = _secret(tmp_path)
    data, pair = _provider(tmp_path)
    _rewrite_after_check(data, outside)
    run = subprocess.run(
        [
            *BROKER,
            "register",
            str(pair.hamiltonians),
            str(pair.artifacts),
            "--base-dir",
            str(data),
            "--url",
            url,
            "--parent",
            "cli",
            "--upload",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert run.returncode == 1, run.stdout
    rules = {f["rule"] for f in json.loads(run.stdout)["findings"]}
    assert {"dataset_external_storage", "dataset_external_link", "file_outside_base"} <= rules
    assert SECRET not in _storage_bytes(storage)


def test_upload_memory_is_one_block_whatever_the_logical_size(tmp_path: Path, upload_server) -> None:  # type: ignore[no-untyped-def]
    """A 256 MiB array stored sparsely (a few kB on disk) goes up block by block: the
    uploading process holds a few copies of one block, never the array (Tiled's own
    write_array gathers the whole dask array into memory)."""
    url, _ = upload_server
    data = tmp_path / "data"
    data.mkdir()
    with h5py.File(data / "sparse.h5", "w") as f:
        dataset = f.create_dataset("big", shape=(8192, 4096), dtype="f8", chunks=(256, 4096))
        dataset[0, :4] = [1.0, 2.0, 3.0, 4.0]
        f.create_dataset("small", shape=(64, 4096), dtype="f8", chunks=(32, 4096))
    pairs = {}
    for name in ("small", "big"):
        pairs[name] = ManifestPair(tmp_path / f"{name}_hamiltonians.parquet", tmp_path / f"{name}_artifacts.parquet")
        pq.write_table(pa.table({"huid": [name], "key": [name.upper()]}), pairs[name].hamiltonians)
        pq.write_table(
            pa.table({"huid": [name], "type": [name], "file": ["sparse.h5"], "dataset": [f"/{name}"]}),
            pairs[name].artifacts,
        )
    # The same code path first on a 2 MiB array (imports, connections, caches), then on
    # the 256 MiB one: what the second adds to the peak is what the size costs.
    script = f"""
import resource
from pathlib import Path
from manifest_broker.catalog import upload
from manifest_broker.catalog.client import Server
from manifest_broker.catalog.ingest import ingest
from manifest_broker.catalog.manifests import ManifestPair
from manifest_broker.catalog.register import ServerTarget
upload.UPLOAD_BLOCK_BYTES = 2 * 2**20
peaks = []
for ham, art in {[(str(p.hamiltonians), str(p.artifacts)) for p in pairs.values()]!r}:
    target = ServerTarget(Server({url!r}, "secret"), upload=True, workers=1)
    run = ingest([ManifestPair(Path(ham), Path(art))], Path({str(data)!r}), target, parent="sparse")
    assert run.result.created_arrays == 1, run.result
    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print(peaks[1] - peaks[0])
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=600)
    assert out.returncode == 0, out.stderr
    grown_mib = int(out.stdout.split()[-1]) / 1024
    # Measured: about 45 MiB with 2 MiB blocks, the same for a 1 GiB array (copies of a
    # block in h5py, numpy, httpx); gathering the array, as write_array does, is 256 MiB.
    assert grown_mib < 128, f"uploading a 256 MiB array raised the peak by {grown_mib:.0f} MiB over a 2 MiB one"
    from tiled.client import from_uri

    served = from_uri(url, api_key="secret")["sparse"]["BIG"]["big"]
    assert served.shape == (8192, 4096) and served[0, :4].tolist() == [1.0, 2.0, 3.0, 4.0]


def _nexus_with_outside_parameters(data: Path, outside: Path) -> None:
    """A NeXus file written from the standard: a plain sample temperature, and three
    sample fields whose values live outside (external raw storage on the secret
    text, an external link, a virtual dataset)."""
    with h5py.File(data / "run1.nxs", "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "data"
        sample = entry.create_group("sample")
        sample.attrs["NX_class"] = "NXsample"
        sample["temperature"] = 300.0
        sample["temperature"].attrs["units"] = "K"
        sample.create_dataset(
            "name_from_storage", (1,), dtype=f"S{len(SECRET)}", external=[(str(outside / "passwd"), 0, len(SECRET))]
        )
        sample["linked"] = h5py.ExternalLink(str(outside / "other.h5"), "/number")
        layout = h5py.VirtualLayout(shape=(1,), dtype="f8")
        layout[:] = h5py.VirtualSource(str(outside / "other.h5"), "number", shape=())
        sample.create_virtual_dataset("virtual", layout)
        group = entry.create_group("data")
        group.attrs["NX_class"] = "NXdata"
        group.attrs["signal"] = "S"
        group["S"] = np.arange(12.0).reshape(3, 4)


def test_nexus_parameters_never_come_from_another_file(tmp_path: Path) -> None:
    """`broker generate nexus` and the generator `explore --generator` saves: the
    manifests hold the temperature and nothing read through the other doors; explore
    names the refused fields; ingest and a real server serve no secret."""
    outside = _secret(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    _nexus_with_outside_parameters(data, outside)
    explored = subprocess.run(
        [*BROKER, "explore", str(data), "--generator", str(tmp_path / "gen.py")], capture_output=True, text=True
    )
    assert explored.returncode == 0, explored.stderr
    assert "name_from_storage" in explored.stdout and "another file" in explored.stdout
    assert "sample/linked: an external link to /number" in explored.stdout, explored.stdout
    for generator, out in [("nexus", tmp_path / "m1"), (str(tmp_path / "gen.py"), tmp_path / "m2")]:
        made = subprocess.run([*BROKER, "generate", generator, str(data), str(out)], capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        hams = pq.read_table(next(out.glob("*_hamiltonians.parquet"))).to_pylist()
        assert len(hams) == 1 and hams[0]["sample_temperature"] == 300.0, hams
        text = json.dumps(hams, default=str).encode()
        assert b"THE-SECRET" not in text and "42" not in json.dumps([v for k, v in hams[0].items() if k != "huid"])
        assert not any("linked" in k or "virtual" in k or "storage" in k for k in hams[0])
    catalog = tmp_path / "c.db"
    ingest = subprocess.run(
        [*BROKER, "ingest", str(tmp_path / "m1"), "--base-dir", str(data), "--catalog", str(catalog)],
        capture_output=True,
        text=True,
    )
    assert ingest.returncode == 0, ingest.stderr
    with running_server(str(catalog), data) as url:
        from tiled.client import from_uri

        (ham,) = [h for _, h in from_uri(url, api_key="secret").items()]
        assert b"THE-SECRET" not in json.dumps(dict(ham.metadata)).encode()
        assert ham["S"].read().shape == (3, 4)


# Names a provider's files may carry: anything HDF5 and the file system allow,
# with the characters that end a Python string, a line or a format field.
_NAME = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=12
).filter(lambda s: s not in (".", ".."))
_INJECTION = 'x"; __import__("os").system("touch PWNED"); "'


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(folder=_NAME, stem=_NAME, datasets=st.lists(_NAME, min_size=2, max_size=3, unique=True))
@example(folder=_INJECTION, stem="x'''\n{__import__('os').system('touch PWNED')}", datasets=[_INJECTION, "a\\\n$b{}"])
def test_provider_names_never_become_code(
    tmp_path_factory: pytest.TempPathFactory, folder: str, stem: str, datasets: list[str]
) -> None:
    """Pattern C files whose folder, file and dataset names are any Unicode: the
    generator explore writes compiles, runs without executing anything injected,
    and writes the manifests the names call for."""
    from manifest_broker.generators.generate import run_generator
    from manifest_broker.provider.explore import explore

    base = tmp_path_factory.mktemp("names")
    root = base / folder
    try:
        root.mkdir()
    except OSError:  # a name this file system refuses (too long in bytes...)
        return
    names = [f"{stem}{i}.h5" for i in range(2)]
    for name in names:
        with h5py.File(root / name, "w") as f:
            for d in datasets:
                f[d] = np.arange(3.0)
    report = explore(root)
    assert report.pattern == "C", report.reason
    script = base / "gen.py"
    script.write_text(report.generator, encoding="utf-8")
    compile(report.generator, str(script), "exec")
    cwd = os.getcwd()
    os.chdir(base)
    try:
        made = run_generator(str(script), root, base / "out")
    finally:
        os.chdir(cwd)
    assert not list(base.rglob("PWNED")) and not Path(cwd, "PWNED").exists()
    arts = made.artifacts.to_pylist()
    assert sorted((a["huid"], a["file"], a["dataset"]) for a in arts) == sorted(
        (Path(n).stem, n, "/" + d) for n in names for d in datasets
    )
    assert [p.name for p in made.written] == [f"{folder}_artifacts.parquet", f"{folder}_hamiltonians.parquet"]


def test_a_database_password_never_shows(tmp_path: Path, postgres_server: str) -> None:
    """`broker serve` of a PostgreSQL catalog whose URL carries a password, one
    process and two: not in its output, not on any child's command line, not in a
    file left behind; and the other ways a password reaches the command line."""
    from tests.pg import new_database

    password = "Pw9Sekrit7x"
    uri = new_database(postgres_server).replace("postgresql://broker@", f"postgresql://broker:{password}@")
    data = tmp_path / "data"
    data.mkdir()
    init_catalog(locate(uri), template_dir=default_cache_dir())
    before = {p for p in Path("/tmp").glob("broker-serve-*")}
    for extra in ([], ["--workers", "2"]):
        port = free_port()
        process = subprocess.Popen(
            [*BROKER, "serve", "--catalog", uri, "--base-dir", str(data), "--port", str(port), *extra],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            import httpx

            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/api/v1/", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            else:
                pytest.fail("the server did not come up")
            import psutil

            command_lines = [" ".join(c.cmdline()) for c in psutil.Process(process.pid).children(recursive=True)]
            assert command_lines and not any(password in c for c in command_lines), command_lines
            served = from_uri_keys(port)
            assert served == []
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=30)
        assert password.encode() not in output, output.decode(errors="replace")
        assert b"running:" in output
    left = {p for p in Path("/tmp").glob("broker-serve-*")} - before
    assert left == set(), left  # the private configuration folder went with the server
    provider, pair = _provider(tmp_path / "p")
    manifests = [str(pair.hamiltonians), str(pair.artifacts), "--base-dir", str(provider)]
    for args in (
        ["--url", f"admin:{password}@127.0.0.1:9"],
        ["--url", f"http://admin:{password}@127.0.0.1:9"],
        ["--url", "http://127.0.0.1:99999"],
    ):
        run = subprocess.run([*BROKER, "verify", *manifests, *args], capture_output=True, text=True, env=ENV)
        assert run.returncode == 2 and password not in run.stdout + run.stderr, run.stderr
        assert "Traceback" not in run.stderr and run.stderr.startswith("error:"), run.stderr
    dask = subprocess.run(
        [*BROKER, "check", *manifests, "--dask", f"tcp://user:{password}@127.0.0.1:9"], capture_output=True, text=True
    )
    assert dask.returncode in (1, 2) and "scheduler" in dask.stderr, dask.stderr
    assert password not in dask.stdout + dask.stderr


def from_uri_keys(port: int) -> list[str]:
    from tiled.client import from_uri

    return list(from_uri(f"http://127.0.0.1:{port}", api_key="secret"))
