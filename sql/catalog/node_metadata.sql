-- One node's metadata (JSON text on SQLite, a JSON value on PostgreSQL).
SELECT metadata FROM nodes WHERE id = :id
