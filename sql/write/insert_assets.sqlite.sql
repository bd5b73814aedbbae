-- Bulk rows for assets, sent with executemany inside the writer's transaction.
INSERT INTO assets (id, data_uri, is_directory, size) VALUES (?, ?, ?, ?)
