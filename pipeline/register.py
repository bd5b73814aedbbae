"""Register a node plan through a running Tiled server, one request per node.

This is Tiled's own creation path (what `tiled register` and the HTTP API do for
each node): slow, but incremental and safe against a live server. Existing keys
are skipped, so a re-run finishes an interrupted registration.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from manifest_broker.plan import HDF5_MIMETYPE, NodePlan


@dataclass
class RegisterResult:
    created_hamiltonians: int = 0
    created_arrays: int = 0
    skipped: int = 0
    seconds: float = 0.0


def register_plan(client: Any, plan: NodePlan, *, parent: str = "") -> RegisterResult:
    """Create the plan's nodes through ``tiled.client`` (one request per node).

    Args:
        client: A writable ``tiled.client`` container (the server's root).
        plan: The node plan (the same one the bulk writer takes).
        parent: Path below the root; containers are created when missing.
    """
    from tiled.structures.array import ArrayStructure
    from tiled.structures.core import StructureFamily
    from tiled.structures.data_source import Asset, DataSource, Management

    started = time.perf_counter()
    result = RegisterResult()
    node = client
    for segment in [s for s in parent.split("/") if s]:
        node = node[segment] if segment in node else node.create_container(segment)
    structures = {sid: ArrayStructure.from_json(json.loads(doc)) for sid, doc in
                  zip(plan.structures["id"].to_pylist(), plan.structures["structure"].to_pylist())}  # fmt: skip
    assets = dict(zip(plan.assets["path"].to_pylist(), zip(plan.assets["data_uri"].to_pylist(), plan.assets["size"].to_pylist())))
    arrays_by_parent: dict[str, list[dict]] = {}
    for row in plan.arrays.to_pylist():
        arrays_by_parent.setdefault(row["parent_key"], []).append(row)
    existing = set(node)
    for key, metadata in zip(plan.hamiltonians["key"].to_pylist(), plan.hamiltonians["metadata"].to_pylist()):
        if key in existing:
            container = node[key]
            result.skipped += 1
        else:
            container = node.create_container(key, metadata=json.loads(metadata))
            result.created_hamiltonians += 1
        present = set(container) if key in existing else set()
        for row in arrays_by_parent.get(key, []):
            if row["key"] in present:
                result.skipped += 1
                continue
            data_uri, size = assets[row["path"]]
            source = DataSource(
                structure_family=StructureFamily.array,
                structure=structures[row["structure_id"]],
                mimetype=HDF5_MIMETYPE,
                parameters=json.loads(row["parameters"]),
                management=Management.external,
                assets=[Asset(data_uri=data_uri, is_directory=False, parameter="data_uri", size=size)],
            )
            container.new(StructureFamily.array, [source], key=row["key"], metadata=json.loads(row["metadata"]))
            result.created_arrays += 1
    result.seconds = time.perf_counter() - started
    return result
