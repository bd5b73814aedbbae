-- Bulk rows for data_sources, sent with executemany inside the writer's transaction.
INSERT INTO data_sources (id, node_id, structure_id, mimetype, parameters, properties, management, structure_family) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
