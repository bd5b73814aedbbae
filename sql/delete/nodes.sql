-- The doomed nodes; foreign keys cascade to closure rows, data sources, their asset
-- associations, revisions and access tags, and Tiled's trigger updates the SQLite
-- full-text index. The root (parent NULL) is never deleted.
DELETE FROM nodes WHERE id IN (SELECT id FROM delete_doomed) AND parent IS NOT NULL
