"""manifest-broker: HDF5 manifests into a Tiled catalog, tNR runs into Iceberg tables."""

from typing import Any


def __getattr__(name: str) -> Any:
    # importlib.metadata costs ~20 ms at start-up; only --version and the tNR run
    # record need the version, so it is read when first asked for.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("manifest-broker")
        except PackageNotFoundError:  # running from a source tree that was never installed
            found = "0.0.0"
        globals()["__version__"] = found
        return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
