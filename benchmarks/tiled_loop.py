"""A plain sequential tiled.client loop: what a user would write with Tiled's own API.

It is the reference side of the parity tests (a catalog written by Tiled itself) and
the peer of `broker register` in `python -m benchmarks register`
(``python -m benchmarks.tiled_loop URL PARENT BASE HAM ART`` runs it as a process).

Each manifest is registered through a live server with Tiled's own client calls,
read straight from the Parquet files (none of the product's planning is used):
``create_container`` for a Hamiltonian, with its columns and the guide's Mode A
locators (``path_<type>``, ``dataset_<type>``, ``index_<type>``, in artifact order)
as metadata; ``Container.register()`` for each artifact, which opens the HDF5
dataset client-side with Tiled's adapter for structure and attributes and lays the
manifest's non-standard columns on top.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

STANDARD_HAMILTONIAN = {"huid", "key"}
STANDARD_ARTIFACT = {"huid", "type", "file", "dataset", "index"}


def register_like_tiled(root: Any, pairs: list[Any], base: Path, parent: str) -> int:
    """Register ``pairs`` (objects with ``hamiltonians`` and ``artifacts`` paths)
    below ``parent`` of the client ``root``; returns the number of nodes created."""
    node = root
    created = 0
    for segment in [s for s in parent.split("/") if s]:
        if segment not in node:
            node.create_container(segment)
            created += 1
        node = node[segment]
    for pair in pairs:
        hams = pq.read_table(pair.hamiltonians).to_pylist()
        arts = pq.read_table(pair.artifacts).to_pylist()
        by_huid: dict[Any, list[dict]] = {}
        for art in arts:
            by_huid.setdefault(art["huid"], []).append(art)
        for ham in hams:
            metadata = {"huid": ham["huid"], **{k: v for k, v in ham.items() if k not in STANDARD_HAMILTONIAN}}
            for art in by_huid.get(ham["huid"], []):
                metadata[f"path_{art['type']}"] = os.path.realpath(base / art["file"])
                metadata[f"dataset_{art['type']}"] = art["dataset"]
                metadata[f"index_{art['type']}"] = art.get("index")
            container = node.create_container(ham["key"], metadata=metadata)
            created += 1
            for art in by_huid.get(ham["huid"], []):
                parameters = {"dataset": art["dataset"]}
                if art.get("index") is not None:
                    parameters["slice"] = str(art["index"])
                extra = {k: v for k, v in art.items() if k not in STANDARD_ARTIFACT}
                container.register(
                    os.path.realpath(base / art["file"]), key=art["type"], parameters=parameters, metadata=extra
                )
                created += 1
    return created


if __name__ == "__main__":
    import sys
    from types import SimpleNamespace

    from tiled.client import from_uri

    url, parent, base_dir, ham, art = sys.argv[1:6]
    pair = SimpleNamespace(hamiltonians=Path(ham), artifacts=Path(art))
    print(register_like_tiled(from_uri(url), [pair], Path(base_dir), parent))
