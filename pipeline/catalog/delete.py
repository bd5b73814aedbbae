"""`broker delete`: unregister Hamiltonians, single artifacts or whole subtrees.

HDF5 files are never touched: every broker data source is external, and Tiled's own
delete, which both paths follow, only removes catalog rows. Through a server, each
path is deleted with ``tiled.client`` (``delete(recursive=True)``); on a catalog
database, everything goes in one transaction, set-based, under the writer lock,
with the same rules as Tiled's delete (assets referenced only from inside the
deleted subtrees go; shared ones stay). Either way, a Hamiltonian that keeps living
loses the Mode A locators of its deleted artifacts, with a revision row (as Tiled
writes on every metadata update).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from manifest_broker import queries
from manifest_broker.catalog.database import (
    CatalogError,
    CatalogLocation,
    check_schema,
    engine,
    find_node,
    require_file,
)
from manifest_broker.catalog.locks import writer_lock
from manifest_broker.catalog.manifests import LOCATOR_PREFIXES
from manifest_broker.errors import BrokerError


class DeleteError(BrokerError, RuntimeError):
    """Nothing was deleted; the message says why."""


@dataclass
class DeleteResult:
    """What ``broker delete`` removed (or would, with ``--dry-run``): its ``--json`` answer."""

    nodes: dict[str, int] = field(default_factory=dict)
    """Nodes removed, by structure family (container, array)."""
    assets: int = 0
    """Asset rows no node points at any more, removed (the files themselves are never touched)."""
    locators_removed: dict[str, list[str]] = field(default_factory=dict)
    """Mode A locators dropped from the Hamiltonians that keep living: parent path -> artifact keys."""
    dry_run: bool = False
    """Nothing was removed: the counts say what would be."""
    uploaded_data: list[str] = field(default_factory=list)
    """Storage of uploaded arrays (their data_uri), removed with them."""

    @property
    def total(self) -> int:
        return sum(self.nodes.values())


def normalise_paths(paths: list[str]) -> list[str]:
    """``a/b`` forms of the paths; the root is refused.

    Raises:
        DeleteError: for the root or an empty path.
    """
    out = []
    for path in paths:
        clean = "/".join(s for s in path.split("/") if s)
        if not clean:
            raise DeleteError(f"refusing to delete {path!r}: that is the catalog's root (name what is under it)")
        out.append(clean)
    return out


def without_locators(metadata: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """Metadata minus the Mode A locators ``path_<k>``, ``dataset_<k>``, ``index_<k>``."""
    drop = {prefix + k for k in keys for prefix in LOCATOR_PREFIXES}
    return {k: v for k, v in metadata.items() if k not in drop}


def delete_in_catalog(location: CatalogLocation, paths: list[str], *, dry_run: bool = False) -> DeleteResult:
    """Delete ``paths`` (and everything under them) from a catalog database.

    Raises:
        DeleteError: when a path does not exist (nothing is deleted).
        CatalogError: when the catalog is not a usable Tiled catalog.
    """
    paths = normalise_paths(paths)
    require_file(location)
    with writer_lock(location):
        eng = engine(location, busy_timeout=60.0)
        try:
            with eng.connect() as conn:
                if location.dialect == "sqlite":
                    conn.exec_driver_sql(queries.load("delete/foreign_keys", "sqlite"))
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    result = _delete(conn, paths, dry_run)
                    if dry_run:
                        conn.rollback()
                    else:
                        conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
        except sa.exc.DBAPIError as exc:
            raise CatalogError(
                f"catalog {location.redacted()}: {str(exc.orig).splitlines()[0]}; nothing was deleted"
            ) from exc
        finally:
            eng.dispose()
        if not dry_run:  # after the commit: a failed delete keeps the data its nodes serve
            _remove_uploaded(result.uploaded_data)
    return result


def _remove_uploaded(uris: list[str]) -> None:
    """Remove the storage of uploaded arrays (a Zarr folder or a file) whose nodes are
    gone, as Tiled's own delete does: the upload belongs to its node."""
    import shutil

    from tiled.utils import path_from_uri

    for uri in uris:
        if not uri.startswith("file:"):  # arrays are uploaded as files (Zarr); nothing else is ours to remove
            continue
        path = path_from_uri(uri)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink(missing_ok=True)


def _delete(conn: sa.Connection, paths: list[str], dry_run: bool) -> DeleteResult:
    check_schema(conn)
    ids = {p: find_node(conn, p) for p in paths}
    missing = [p for p, node in ids.items() if node is None]
    if missing:
        raise DeleteError(f"not in the catalog: {', '.join(missing)}; nothing was deleted")
    conn.execute(sa.text(queries.load("delete/create_targets")))
    for node in ids.values():
        conn.execute(sa.text(queries.load("delete/insert_target")), {"id": node})
    conn.execute(sa.text(queries.load("delete/create_doomed")))
    result = DeleteResult(dry_run=dry_run)
    for what, n in conn.execute(sa.text(queries.load("delete/summary"))).all():
        if what == "asset":
            result.assets = int(n)
        else:
            result.nodes[str(getattr(what, "value", what))] = int(n)
    parent_paths = {find_node(conn, p.rpartition("/")[0]): p.rpartition("/")[0] for p in paths}
    parents: dict[int, tuple[dict[str, Any], list[str]]] = {}
    for parent, key, metadata in conn.execute(sa.text(queries.load("delete/orphaned_locators"))).all():
        current = metadata if isinstance(metadata, dict) else json.loads(metadata)
        parents.setdefault(parent, (current, []))[1].append(key)
    for parent, (current, keys) in parents.items():
        trimmed = without_locators(current, keys)
        if trimmed != current:
            result.locators_removed[parent_paths.get(parent, str(parent))] = keys
            if not dry_run:
                from tiled.utils import safe_json_dump

                conn.execute(sa.text(queries.load("write/revision")), {"id": parent})
                conn.execute(
                    sa.text(queries.load("write/update_metadata", conn.dialect.name)),
                    {"id": parent, "metadata": safe_json_dump(trimmed).decode()},
                )
    result.uploaded_data = [r[0] for r in conn.execute(sa.text(queries.load("delete/internal_assets"))).all()]
    if not dry_run:
        conn.execute(sa.text(queries.load("delete/assets")))
        conn.execute(sa.text(queries.load("delete/nodes")))
    return result


def delete_through_server(client: Any, paths: list[str], *, dry_run: bool = False) -> DeleteResult:
    """Delete ``paths`` through a running server with ``tiled.client``.

    Every path is looked up first, so a typo deletes nothing. Each path is then one
    request (Tiled's own transaction); the parent's locators are trimmed after.

    Raises:
        DeleteError: when a path does not exist (nothing is deleted).
    """
    from tiled.queries import StructureFamilyQuery

    paths = normalise_paths(paths)
    nodes = {}
    for path in paths:
        try:
            nodes[path] = client[path]
        except KeyError:
            pass
    missing = [p for p in paths if p not in nodes]
    if missing:
        raise DeleteError(f"not on the server: {', '.join(missing)}; nothing was deleted")
    result = DeleteResult(dry_run=dry_run)
    for node in nodes.values():
        family = str(node.structure_family.value if hasattr(node.structure_family, "value") else node.structure_family)
        result.nodes[family] = result.nodes.get(family, 0) + 1
        if family == "container":
            for sub in ("container", "array"):
                result.nodes[sub] = result.nodes.get(sub, 0) + len(node.search_deep(StructureFamilyQuery(sub)))
    doomed = set(paths)
    trims: dict[str, list[str]] = {}
    for path, node in nodes.items():
        parent_path, _, key = path.rpartition("/")
        if (
            node.structure_family == "array"
            and parent_path
            and not any(parent_path == d or parent_path.startswith(d + "/") for d in doomed)
        ):
            trims.setdefault(parent_path, []).append(key)
    if dry_run:
        result.locators_removed = trims
        return result
    for path, node in nodes.items():
        # external_only=False: arrays uploaded into the server's storage go too, their data with them
        # (Tiled refused them with 409 "internally managed" after --dry-run had listed them). Asked
        # without tiled.client's retries: a server that cannot delete says so at once.
        response = node.context.http_client.delete(
            node.item["links"]["self"], params={"recursive": True, "external_only": False}
        )
        if response.status_code >= 400:
            done = list(nodes)[: list(nodes).index(path)]
            raise DeleteError(
                f"{path}: the server did not delete it (HTTP {response.status_code}); is it read-only "
                f"(`serve --read-only`)?"
                + (f" deleted before it: {', '.join(done)}" if done else " nothing was deleted"),
                where=path,
            )
    from tiled.client.metadata_update import DELETE_KEY

    for parent_path, keys in trims.items():
        parent = client[parent_path]
        current = dict(parent.metadata)
        gone = current.keys() - without_locators(current, keys).keys()
        if gone:
            parent.update_metadata(metadata={k: DELETE_KEY for k in sorted(gone)})  # Tiled keeps a revision
            result.locators_removed[parent_path] = keys
    return result
