-- Bulk rows for assets, streamed with COPY inside the writer's transaction.
COPY assets (id, data_uri, is_directory, size) FROM STDIN
