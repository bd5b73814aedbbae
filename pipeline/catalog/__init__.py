"""The Tiled job: HDF5 datasets described by Parquet manifests into a Tiled catalog.

One module per stage a record passes through: ``manifests`` (read) -> ``probe``
(the HDF5 files) -> ``contract`` (DuckDB rules) -> ``plan`` (nodes as Arrow
tables) -> ``write`` (bulk, into the catalog database) or ``register`` (through a
running server) -> ``serve`` -> ``verify``. ``ingest`` chains check, plan and
write; ``database`` is the one place that reads a catalog database's own state;
``locks``, ``delete`` and ``modea`` serve live catalogs; ``explore``,
``generate`` and ``feedback`` face the data provider.
"""
