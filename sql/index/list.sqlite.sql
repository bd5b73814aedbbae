-- Indexes named broker_ix_... on the catalog's nodes (the broker creates none on
-- SQLite, see manifest_broker.catalog.index; one made by hand is listed and can
-- be dropped), with their definition.
-- Reads: sqlite_master.
SELECT name, NULL AS label, sql AS definition, NULL AS bytes
FROM sqlite_master
WHERE type = 'index' AND tbl_name = 'nodes' AND substr(name, 1, 10) = 'broker_ix_'
ORDER BY name
