"""The confined reader (manifest_broker.boundary): the one door to a provider's files.

Files and trees are made by hand here (no generator of the broker's), with a
secret outside the root that no read may ever return.
"""

from __future__ import annotations

import ast
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manifest_broker import boundary
from manifest_broker.boundary import Identity, ProviderFileError

SECRET = b"root:x:0:0:SECRET-OUTSIDE-THE-ROOT"
INSIDE = b"inside the root"


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A root with a file, a FIFO, links in and out; a secret beside it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (root / "sub" / "file.txt").write_bytes(INSIDE)
    os.mkfifo(root / "fifo")
    (root / "out_file").symlink_to(outside / "secret.txt")
    (root / "out_dir").symlink_to(outside)
    (root / "in_link").symlink_to(root / "sub" / "file.txt")
    return root, outside


def test_reads_inside_and_follows_links_that_stay_inside(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    assert boundary.read_bytes("sub/file.txt", root, limit=100, what="file") == INSIDE
    assert boundary.read_bytes(root / "in_link", root, limit=100, what="file") == INSIDE
    assert boundary.read_text("sub/./../sub//file.txt", root, limit=100, what="file") == INSIDE.decode()


@pytest.mark.parametrize(
    "name", ["out_file", "out_dir/secret.txt", "../outside/secret.txt", "sub/../../outside/secret.txt"]
)
def test_nothing_outside_the_root(tree: tuple[Path, Path], name: str) -> None:
    root, _ = tree
    with pytest.raises(ProviderFileError) as caught:
        boundary.read_bytes(name, root, limit=1000, what="file")
    assert caught.value.rule == "outside_root" and "outside" in str(caught.value)


def test_a_fifo_is_refused_without_blocking(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    done: list[BaseException] = []

    def read() -> None:
        try:
            boundary.read_bytes("fifo", root, limit=100, what="options")
        except ProviderFileError as exc:
            done.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert done and done[0].rule == "not_regular" and "FIFO" in str(done[0])
    with pytest.raises(ProviderFileError, match="FIFO"):
        boundary.regular_file("fifo", root, what="options")


def test_size_limit_and_identity(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with pytest.raises(ProviderFileError) as caught:
        boundary.read_bytes("sub/file.txt", root, limit=4, what="template")
    assert caught.value.rule == "too_large" and "template" in str(caught.value)
    seen = Identity.of(os.stat(root / "sub" / "file.txt"))
    assert boundary.read_bytes("sub/file.txt", root, limit=100, what="file", expect=seen) == INSIDE
    # Replaced by another file of the same size and times: the inode (and ctime) tell.
    replacement = root / "sub" / "new.txt"
    replacement.write_bytes(INSIDE[::-1])
    os.utime(replacement, ns=(seen.mtime_ns, seen.mtime_ns))
    os.replace(replacement, root / "sub" / "file.txt")
    with pytest.raises(ProviderFileError) as caught:
        boundary.read_bytes("sub/file.txt", root, limit=100, what="file", expect=seen)
    assert caught.value.rule == "changed"


def test_text_encodings_are_named(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "u16.txt").write_bytes("# Q R dR dQ\n".encode("utf-16"))
    with pytest.raises(ProviderFileError, match="UTF-16"):
        boundary.read_text("u16.txt", root, limit=1000, what="reduced file")
    (root / "bom.txt").write_bytes(b"\xef\xbb\xbfhello")
    assert boundary.read_text("bom.txt", root, limit=1000, what="file") == "hello"
    (root / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ProviderFileError) as caught:
        boundary.read_text("latin.txt", root, limit=1000, what="file")
    assert caught.value.rule == "encoding"


def _hdf5_with_outside_reads(root: Path, outside: Path) -> Path:
    """A file whose every way out of itself the reader must refuse: an external link,
    external raw storage and a virtual dataset, each pointing at a file outside."""
    with h5py.File(outside / "other.h5", "w") as f:
        f["secret"] = np.frombuffer(SECRET, dtype="u1")
    path = root / "doors.h5"
    with h5py.File(path, "w") as f:
        f["plain"] = np.arange(4.0)
        f["soft"] = h5py.SoftLink("/plain")
        f["external_link"] = h5py.ExternalLink(str(outside / "other.h5"), "/secret")
        f.create_dataset(
            "external_storage", (len(SECRET),), dtype="u1", external=[(str(outside / "secret.txt"), 0, len(SECRET))]
        )
        layout = h5py.VirtualLayout(shape=(len(SECRET),), dtype="u1")
        layout[:] = h5py.VirtualSource(str(outside / "other.h5"), "secret", shape=(len(SECRET),))
        f.create_virtual_dataset("virtual", layout)
    return path


def test_hdf5_never_reads_through_another_file(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    path = _hdf5_with_outside_reads(root, outside)
    with boundary.open_hdf5(path, root) as f:
        assert boundary.dataset_at(f, "plain")[()].tolist() == [0.0, 1.0, 2.0, 3.0]
        assert boundary.dataset_at(f, "/soft")[()].tolist() == [0.0, 1.0, 2.0, 3.0]
        for name, rule in [
            ("external_link", "external_link"),
            ("external_storage", "external_storage"),
            ("virtual", "virtual"),
            ("nothing", "missing"),
        ]:
            with pytest.raises(ProviderFileError) as caught:
                boundary.dataset_at(f, name)
            assert caught.value.rule == rule, name
        assert sorted(name for name, _ in boundary.members(f)) == ["external_storage", "plain", "soft", "virtual"]
    with pytest.raises(ProviderFileError) as caught:
        with boundary.open_hdf5(outside / "other.h5", root):
            pass
    assert caught.value.rule == "outside_root"
    (root / "not.h5").write_bytes(b"just text, not HDF5")
    with pytest.raises(ProviderFileError) as caught:
        with boundary.open_hdf5("not.h5", root):
            pass
    assert caught.value.rule == "not_hdf5"


def test_hdf5_is_read_from_the_file_that_was_opened(tree: tuple[Path, Path]) -> None:
    """Once open, the path can be swapped for a link to the secret: h5py goes on
    reading the file that was checked (it was opened through its descriptor)."""
    root, outside = tree
    path = root / "data.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with h5py.File(outside / "data.h5", "w") as f:
        f["x"] = np.frombuffer(SECRET[:3], dtype="u1")
    with boundary.open_hdf5(path, root) as f:
        path.unlink()
        path.symlink_to(outside / "data.h5")
        assert f["x"][()].tolist() == [0, 1, 2]


# Path components a hostile provider can combine: plain names, links out and in,
# parent steps, a FIFO, and names with characters that mean something to shells,
# URLs and Python.
_COMPONENTS = [
    "sub",
    "file.txt",
    "out_dir",
    "out_file",
    "in_link",
    "..",
    ".",
    "fifo",
    "secret.txt",
    "sub/file.txt",
    "a b",
    "x?y",
    "x#y",
    "'q'",
    '"',
    "$HOME",
    "\t..",
    "%2e%2e",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(_COMPONENTS), min_size=1, max_size=5), absolute=st.booleans())
def test_no_byte_from_outside_the_root_whatever_the_path(
    tree: tuple[Path, Path], parts: list[str], absolute: bool
) -> None:
    root, _ = tree
    name = os.path.join(str(root) if absolute else "", *parts)
    started = time.monotonic()
    try:
        data = boundary.read_bytes(name, root, limit=10_000, what="file")
    except ProviderFileError as exc:
        assert exc.rule in {"outside_root", "not_regular", "missing", "unreadable", "changed"}, exc
    else:
        assert SECRET not in data and data == INSIDE
    assert time.monotonic() - started < 5  # never blocked (a FIFO is never opened for reading)


def test_a_swap_while_opening_never_reads_outside(tmp_path: Path) -> None:
    """A second thread swaps a directory for a link to the outside over and over
    while the reader reads: every read returns the inside bytes or is refused."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f.txt").write_bytes(INSIDE)
    outside.mkdir()
    (outside / "f.txt").write_bytes(SECRET)
    stop = threading.Event()

    def swap() -> None:
        real, link = root / "d", root / "d_real"
        while not stop.is_set():
            os.rename(real, link)
            os.symlink(outside, real)
            os.unlink(real)
            os.rename(link, real)

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    reads = refusals = 0
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                assert boundary.read_bytes("d/f.txt", root, limit=100, what="file") == INSIDE
                reads += 1
            except ProviderFileError:
                refusals += 1
    finally:
        stop.set()
        swapper.join()
    assert reads + refusals > 100


def _boundary_names(tree: ast.AST) -> set[str]:
    """Names a module imported from manifest_broker.boundary (its calls are the door)."""
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "manifest_broker.boundary"
        for alias in node.names
    }


def _provider_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """Calls that open a file by name: ``open(``, ``os.open(``, ``h5py.File(``,
    ``Path.read_bytes/read_text/open``, ``h5py.is_hdf5``, and the data readers
    (``read_csv``, ``read_json``, ``loadtxt``...) when handed a path rather than
    bytes. Calls of the boundary's own functions are the door, not a way around it."""
    allowed = _boundary_names(tree)
    found = []
    openers = {"open", "File", "read_bytes", "read_text", "is_hdf5", "fromfile"}
    readers = {"read_csv", "scan_csv", "read_json", "loadtxt", "genfromtxt", "parse"}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if isinstance(func, ast.Name) and name in allowed:
            continue
        if isinstance(func, ast.Attribute) and ast.unparse(func.value) in ("boundary", "h5py.h5o"):
            continue  # the door itself; an object opened inside an already open file
        pathlike = bool(node.args) and any(w in ast.unparse(node.args[0]).lower() for w in ("path", "file", "dir"))
        if name in openers or (name in readers and pathlike):
            found.append((node.lineno, ast.unparse(func)))
    return found


# Files that open files of the broker's own (caches, catalogs, lakes, outputs, locks,
# SQL), never a provider's: each entry names the calls allowed there and why.
_OWN_FILES = {
    "boundary.py": "the confined reader itself",
    "cache.py": "the broker's cache files",
    "queries.py": "the broker's own SQL files (package data)",
    "catalog/locks.py": "the writer's lock file",
    "catalog/serve.py": "the server's log file",
}


def test_the_boundary_is_the_only_door() -> None:
    """No module of the package opens a file except the boundary and the modules
    that open the broker's own files: a provider's file can only come in through
    manifest_broker.boundary."""
    package = Path(boundary.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel in _OWN_FILES:
            continue
        for line, call in _provider_reads(ast.parse(path.read_text())):
            # json.load / yaml.safe_load of an already-read text are not opens.
            if call in {"json.load", "orjson.load"}:
                continue
            offenders.append(f"{rel}:{line}: {call}(")
    assert offenders == [], "files opened outside manifest_broker.boundary:\n" + "\n".join(offenders)


def test_generators_read_through_the_boundary() -> None:
    """The built-in generators read provider files (to take parameters) only through
    the boundary; they write HDF5 files only in synthesize()."""
    generators = Path(boundary.__file__).parent.parent / "generators"
    offenders = []
    for path in sorted(generators.glob("*.py")):
        tree = ast.parse(path.read_text())
        for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "generate"):
            offenders += [f"{path.name}:{line}: {call}" for line, call in _provider_reads(func)]
    assert offenders == []


def test_a_tree_with_everything_at_once_is_read_only_inside() -> None:
    """The property's tree, made with a tab-dot-dot folder as well (the earlier escape)."""
    base = Path(tempfile.mkdtemp())
    try:
        root = base / "root"
        (root / "\t..").mkdir(parents=True)
        (root / "\t.." / "f.txt").write_bytes(INSIDE)
        (base / "f.txt").write_bytes(SECRET)
        assert boundary.read_bytes("\t../f.txt", root, limit=100, what="file") == INSIDE
        with pytest.raises(ProviderFileError):
            boundary.read_bytes("../f.txt", root, limit=100, what="file")
    finally:
        shutil.rmtree(base)
