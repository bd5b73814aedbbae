"""The Tiled job: HDF5 datasets described by Parquet manifests into a Tiled catalog.

One module per stage a record passes through: ``manifests`` (read) -> ``probe``
(the HDF5 files) -> ``contract`` (DuckDB rules) -> ``plan`` (nodes as Arrow
tables) -> a ``target`` (where the plan goes): ``write`` (bulk, into the catalog
database), ``register`` (through a running server) or ``app`` (Tiled's app in this
process, uploading) -> ``serve`` -> ``verify``. ``ingest`` is the one runner that
chains check, plan and a target; ``upload`` is the leaf every upload path shares;
``database`` is the one place that reads a catalog database's own state; ``locks``,
``delete``, ``index`` and ``modea`` serve live catalogs. What faces the data provider
before a check is in :mod:`manifest_broker.provider`.
"""
