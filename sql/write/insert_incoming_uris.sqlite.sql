-- Bulk rows for incoming_uris, sent with executemany inside the writer's transaction.
INSERT INTO incoming_uris (data_uri) VALUES (?)
