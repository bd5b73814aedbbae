"""manifest-broker: HDF5 manifests into a Tiled catalog, tNR runs into Iceberg tables."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("manifest-broker")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
