-- Bulk rows for nodes, sent with executemany inside the writer's transaction.
INSERT INTO nodes (id, parent, key, structure_family, metadata, specs) VALUES (?, ?, ?, ?, ?, ?)
