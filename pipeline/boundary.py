"""The one door through which the broker reads a provider's files.

Every file the broker opens on a provider's behalf (HDF5 files for the probe,
exploration, NeXus parameters, uploads, verification and ``load_batches``; the tNR
split file, sidecar, options, template and reduced files; dataset cards) is opened
here and nowhere else (``tests/test_boundary.py`` walks the package for other
``open`` calls). A read is allowed when, at the moment of reading:

- the path, with every symlink resolved, lies inside the root the user named;
- it is a regular file: a FIFO, device or socket is refused from its ``stat``
  without ever being opened for reading (and the open itself is non-blocking, so a
  FIFO swapped in after the ``stat`` cannot hang the broker either);
- what the kernel opened is that path (``/proc/self/fd``), still inside the root;
- when the caller knows what was checked earlier (an :class:`Identity` from the
  probe), the file opened is that file: same device, inode, size, mtime and ctime;
- it is no larger than the caller's limit.

HDF5 files are then opened by h5py through ``/proc/self/fd/N`` of that very
descriptor, so h5py reads the file that was checked, whatever happens to the path
afterwards. Inside an HDF5 file, :func:`hard_object` walks a path through hard and
in-file soft links only (never an external or user-defined link), and
:func:`readable_dataset` refuses datasets whose bytes live in other files (virtual
datasets, external raw storage) before anything is read from them.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from manifest_broker.errors import BrokerError

# HDF5's own limit on soft-link hops in one path (H5L_NUM_LINKS); more is a loop.
MAX_SOFT_LINKS = 16
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_PROC_FD = "/proc/self/fd"


class ProviderFileError(BrokerError, ValueError):
    """A provider's file that the broker refuses to read; ``rule`` names why
    (``outside_root``, ``not_regular``, ``missing``, ``unreadable``, ``too_large``,
    ``changed``, ``not_hdf5``, ``corrupt``, ``external_link``, ``virtual``, ``external_storage``, ``not_a_dataset``,
    ``encoding``)."""

    def __init__(self, rule: str, message: str, where: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message, where=str(where) if where is not None else None)
        self.rule = rule


@dataclass(frozen=True)
class Identity:
    """What identifies a file's content as it was checked: a file swapped for another
    (or rewritten) changes at least the inode or the ctime, which no user can set."""

    size: int
    mtime_ns: int
    ctime_ns: int
    device: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> Identity:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino)


# C0 and C1 control characters, DEL and NUL: no provider means them in a file
# name, and URL parsing drops or stops at some of them (the tab-directory escape).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters written as escapes (``\\t``, ``\\x85``), so
    that a message naming a hostile path stays one readable line."""
    return CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def inside(path: str, root: str) -> bool:
    """Whether the resolved ``path`` is ``root`` or below it (both resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve(path: str | os.PathLike[str], root: str | os.PathLike[str], *, what: str) -> str:
    """``path`` (relative paths are taken from ``root``) with every symlink resolved.

    Raises:
        ProviderFileError: ``outside_root`` when it resolves outside ``root``.
    """
    root_real = os.path.realpath(root)
    try:
        real = os.path.realpath(os.path.join(root_real, path))
    except OSError as exc:  # a link removed while it was being resolved (realpath reads each link it meets)
        raise ProviderFileError(
            "changed", f"{what} {printable(str(path))} changed while it was being resolved ({exc.strerror})", path
        ) from None
    if not inside(real, root_real):
        raise ProviderFileError(
            "outside_root",
            f"{what} {printable(str(path))} resolves to {printable(real)}, outside {printable(root_real)}: "
            "the broker reads a provider's files only inside the folder it was given",
            path,
        )
    return real


def regular_file(path: str | os.PathLike[str], root: str | os.PathLike[str], *, what: str) -> os.stat_result:
    """The ``stat`` of ``path`` after :func:`resolve`, refused unless it is a regular
    file; nothing is opened (a FIFO is never touched).

    Raises:
        ProviderFileError: ``outside_root``, ``missing`` or ``not_regular``.
    """
    return _stat_regular(resolve(path, root, what=what), path, what)


def _stat_regular(real: str, path: str | os.PathLike[str], what: str) -> os.stat_result:
    """The ``stat`` of the resolved ``real``, refused unless it is a regular file."""
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise ProviderFileError("missing", f"{what} {printable(str(path))} does not exist", path) from None
    except OSError as exc:
        raise ProviderFileError(
            "unreadable", f"cannot stat {what} {printable(str(path))} ({exc.strerror})", path
        ) from None
    _require_regular(st, path, what)
    return st


def _require_regular(st: os.stat_result, path: str | os.PathLike[str], what: str) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    kind = (
        "a directory"
        if stat.S_ISDIR(st.st_mode)
        else "a FIFO (named pipe)"
        if stat.S_ISFIFO(st.st_mode)
        else "a socket"
        if stat.S_ISSOCK(st.st_mode)
        else "a device"
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
        else "not a regular file"
    )
    raise ProviderFileError("not_regular", f"{what} {printable(str(path))} is {kind}, not a regular file", path)


@contextmanager
def opened(
    path: str | os.PathLike[str], root: str | os.PathLike[str], *, what: str, expect: Identity | None = None
) -> Iterator[tuple[int, os.stat_result, str]]:
    """A read-only descriptor of ``path``, checked as the module says.

    Yields:
        ``(fd, stat, resolved path)``; the descriptor is closed on exit.

    Raises:
        ProviderFileError: for any refusal.
    """
    root_real = os.path.realpath(root)
    real = resolve(path, root_real, what=what)
    _stat_regular(real, path, what)  # never opened unless regular (a FIFO would block the open)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ProviderFileError("missing", f"{what} {printable(str(path))} vanished", path) from None
    except PermissionError:
        raise ProviderFileError(
            "unreadable", f"permission denied: the broker cannot read {what} {printable(str(path))}", path
        ) from None
    except OSError as exc:
        # ELOOP: a symlink appeared at the last component after resolving.
        raise ProviderFileError(
            "unreadable", f"cannot open {what} {printable(str(path))} ({exc.strerror})", path
        ) from None
    try:
        st = os.fstat(fd)
        _require_regular(st, path, what)
        if os.path.isdir(_PROC_FD):  # what the kernel really opened (a directory swapped for a symlink shows here)
            actual = os.readlink(f"{_PROC_FD}/{fd}")
            if actual != real or not inside(actual, root_real):
                raise ProviderFileError(
                    "changed",
                    f"{what} {printable(str(path))} was replaced while being opened (now {printable(actual)})",
                    path,
                )
        if expect is not None and Identity.of(st) != expect:
            raise ProviderFileError(
                "changed",
                f"{what} {printable(str(path))} changed or was replaced after the check (size, times or inode "
                "differ); run the check again",
                path,
            )
        yield fd, st, real
    finally:
        os.close(fd)


def read_bytes(
    path: str | os.PathLike[str], root: str | os.PathLike[str], *, limit: int, what: str, expect: Identity | None = None
) -> bytes:
    """The whole content of a provider's file, at most ``limit`` bytes.

    Raises:
        ProviderFileError: for any refusal, ``too_large`` over the limit.
    """
    with opened(path, root, what=what, expect=expect) as (fd, st, _real):
        if st.st_size > limit:
            raise ProviderFileError(
                "too_large", f"{what} {printable(str(path))} is {st.st_size:,} bytes, over the limit of {limit:,}", path
            )
        os.set_blocking(fd, True)
        chunks = []
        total = 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # grew while being read
                raise ProviderFileError(
                    "too_large",
                    f"{what} {printable(str(path))} grew over the limit of {limit:,} bytes while being read",
                    path,
                )
    return b"".join(chunks)


def read_text(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str],
    *,
    limit: int,
    what: str,
    encoding: str = "utf-8",
    expect: Identity | None = None,
) -> str:
    """A provider's text file, decoded; a byte-order mark is honoured and named.

    Raises:
        ProviderFileError: for any refusal; ``encoding`` when the bytes are not text
            in ``encoding`` (the message says UTF-16 when the file is UTF-16).
    """
    data = read_bytes(path, root, limit=limit, what=what, expect=expect)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ProviderFileError(
            "encoding",
            f"{what} {printable(str(path))} is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8",
            path,
        )
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ProviderFileError(
            "encoding",
            f"{what} {printable(str(path))} is not {encoding} text (byte "
            f"{exc.start}: {data[exc.start : exc.start + 1]!r})",
            path,
        ) from None


@contextmanager
def open_hdf5(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str],
    *,
    what: str = "HDF5 file",
    expect: Identity | None = None,
) -> Iterator[Any]:
    """An h5py file, read-only, of exactly the checked file (see the module).

    Raises:
        ProviderFileError: for any refusal; ``unreadable`` when HDF5 cannot open it.
    """
    import h5py

    with opened(path, root, what=what, expect=expect) as (fd, _st, real):
        source = f"{_PROC_FD}/{fd}" if os.path.isdir(_PROC_FD) else real
        try:
            handle = h5py.File(source, "r")
        except OSError as exc:
            head = os.pread(fd, 8, 0)
            # A user block can push the signature to offset 512, 1024...; h5py knows where to look.
            if head != HDF5_SIGNATURE and not h5py.is_hdf5(source):
                raise ProviderFileError("not_hdf5", f"not an HDF5 file (starts with {head!r})", path) from None
            raise ProviderFileError("corrupt", f"corrupt or truncated HDF5 file ({exc})", path) from None
        with handle:
            yield handle


def link_path(links: Any, name: str) -> tuple[str, str]:
    """Walk ``name`` link by link through an open file without ever leaving it.

    Args:
        links: The open file's link interface (``h5py.File.id.links``).
        name: A path inside the file.

    Returns:
        (``"ok"``, the path made of hard links only), or (rule, message) for a
        refusal: ``missing``, ``external_link``, ``unreadable``.
    """
    from h5py import h5l

    pending = [p for p in name.split("/") if p]
    done: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        here = "/" + "/".join([*done, part])
        try:
            kind = links.get_info(here.encode()).type
        except (KeyError, RuntimeError):  # h5py's "name doesn't exist" (or a dataset on the way)
            return "missing", f"no object {here} in the file"
        if kind == h5l.TYPE_HARD:
            done.append(part)
        elif kind == h5l.TYPE_SOFT:
            hops += 1
            if hops > MAX_SOFT_LINKS:
                return "unreadable", f"{name}: more than {MAX_SOFT_LINKS} soft links (a loop?)"
            target = links.get_val(here.encode()).decode()
            start = [] if target.startswith("/") else done
            pending = [*start, *(p for p in target.split("/") if p), *pending]
            done = []
        elif kind == h5l.TYPE_EXTERNAL:
            other_file, other_path = (v.decode() for v in links.get_val(here.encode()))
            via = "" if here == name.rstrip("/") else f"{name} passes through "
            return "external_link", (
                f"{via}{here}, an external link to {other_path} in {other_file}: reading it would open a file "
                "outside the data directory"
            )
        else:
            return "external_link", f"{here} is a user-defined link (type {kind}), which h5py resolves outside the file"
    return "ok", "/" + "/".join(done)


def hard_object(handle: Any, name: str) -> Any:
    """The object at ``name`` in an open h5py file, reached through links inside the
    file only.

    Raises:
        ProviderFileError: ``missing``, ``external_link`` or ``unreadable``.
    """
    status, resolved = link_path(handle.id.links, name)
    if status != "ok":
        raise ProviderFileError(status, resolved, handle.filename)
    return handle[resolved]


def members(group: Any) -> Iterator[tuple[str, Any]]:
    """``group.items()`` without following an external or user-defined link: the
    members a reader may look at (soft links inside the file are followed)."""
    import h5py

    for name in group:
        link = group.get(name, getlink=True)
        if isinstance(link, h5py.HardLink):
            yield name, group[name]
        elif isinstance(link, h5py.SoftLink):
            status, _ = link_path(group.file.id.links, f"{group.name.rstrip('/')}/{name}")
            if status == "ok":
                yield name, group[name]


def dataset_problem(dataset: Any) -> tuple[str, str] | None:
    """Why reading ``dataset``'s values would read bytes from another file, or None:
    (``virtual``, ...) for a virtual dataset, (``external_storage``, ...) for raw data
    kept in external files."""
    import h5py

    plist = dataset.id.get_create_plist()
    name = dataset.name
    if plist.get_layout() == h5py.h5d.VIRTUAL:
        sources = sorted({plist.get_virtual_filename(i) for i in range(plist.get_virtual_count())})
        return "virtual", (
            f"{name} is a virtual dataset reading from {', '.join(sources)}: its bytes come from "
            "files the data directory does not confine"
        )
    if plist.get_external_count():
        files = sorted({plist.get_external(i)[0].decode() for i in range(plist.get_external_count())})
        return "external_storage", (
            f"{name} keeps its raw data in external file(s) {', '.join(files)}: its bytes "
            "come from files the data directory does not confine"
        )
    return None


def readable_dataset(dataset: Any) -> Any:
    """``dataset`` itself, once :func:`dataset_problem` found nothing.

    Raises:
        ProviderFileError: ``virtual`` or ``external_storage``.
    """
    if problem := dataset_problem(dataset):
        raise ProviderFileError(problem[0], problem[1], dataset.file.filename)
    return dataset


def dataset_at(handle: Any, name: str) -> Any:
    """The dataset at ``name`` of an open h5py file, reached through links inside the
    file and keeping its bytes in it: what a reader may read values from.

    Raises:
        ProviderFileError: ``missing``, ``external_link``, ``not_a_dataset``,
            ``virtual`` or ``external_storage``.
    """
    import h5py

    found = hard_object(handle, name)
    if not isinstance(found, h5py.Dataset):
        raise ProviderFileError("not_a_dataset", f"{name} is not a dataset", handle.filename)
    return readable_dataset(found)


def read_folder_files(
    names: list[str], folder: str | os.PathLike[str], root: str | os.PathLike[str], *, limit: int, what: str
) -> list[bytes]:
    """Many files of one folder (a tNR run's thousands of reduced files), checked as
    :func:`read_bytes` checks one, without resolving every path again: the folder is
    resolved, checked inside ``root`` and opened once; each name is then looked up
    relative to that open folder, ``lstat``-ed (a FIFO, device or socket is refused
    without being opened), opened with ``O_NOFOLLOW`` (so it is that folder's own
    entry, never a symlink's target) and found to be the file that was ``lstat``-ed.
    A name that is a symlink, or not a plain name, goes through :func:`read_bytes`
    (links that stay inside ``root`` are followed there).

    Raises:
        ProviderFileError: as :func:`read_bytes`, naming the file.
    """
    root_real = os.path.realpath(root)
    folder_real = resolve(folder, root_real, what="folder")
    contents: list[bytes] = []
    directory = os.open(folder_real, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if os.path.isdir(_PROC_FD) and os.readlink(f"{_PROC_FD}/{directory}") != folder_real:
            raise ProviderFileError(
                "changed", f"folder {printable(str(folder))} was replaced while being opened", folder
            )
        for name in names:
            path = os.path.join(folder_real, name)
            if os.sep in name or name in (".", ".."):
                contents.append(read_bytes(path, root_real, limit=limit, what=what))
                continue
            try:
                st = os.stat(name, dir_fd=directory, follow_symlinks=False)
            except FileNotFoundError:
                raise ProviderFileError("missing", f"{what} {printable(path)} does not exist", path) from None
            if stat.S_ISLNK(st.st_mode):
                contents.append(read_bytes(path, root_real, limit=limit, what=what))
                continue
            _require_regular(st, path, what)
            if st.st_size > limit:
                raise ProviderFileError(
                    "too_large", f"{what} {printable(path)} is {st.st_size:,} bytes, over the limit of {limit:,}", path
                )
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
            except OSError as exc:  # ELOOP: a symlink swapped in after the lstat
                raise ProviderFileError(
                    "changed", f"cannot open {what} {printable(path)} ({exc.strerror})", path
                ) from None
            try:
                opened_st = os.fstat(fd)
                if (opened_st.st_dev, opened_st.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(
                    opened_st.st_mode
                ):
                    raise ProviderFileError(
                        "changed", f"{what} {printable(path)} was replaced while being opened", path
                    )
                os.set_blocking(fd, True)
                data = os.read(fd, opened_st.st_size + 1)  # one read: the size is known
                while len(data) <= limit and (chunk := os.read(fd, min(1 << 20, limit + 1 - len(data)))):
                    data += chunk  # (it grew since the fstat)
                if len(data) > limit:
                    raise ProviderFileError(
                        "too_large",
                        f"{what} {printable(path)} grew over the limit of {limit:,} bytes while being read",
                        path,
                    )
            finally:
                os.close(fd)
            contents.append(data)
    finally:
        os.close(directory)
    return contents
