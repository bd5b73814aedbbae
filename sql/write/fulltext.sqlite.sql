-- Full-text rows for the new nodes, as the nodes_metadata_fts5_sync_ai trigger writes them.
INSERT INTO metadata_fts5 (rowid, metadata)
SELECT id, metadata FROM nodes WHERE id BETWEEN :lo AND :hi
