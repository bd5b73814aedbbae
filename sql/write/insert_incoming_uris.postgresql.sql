-- Bulk rows for incoming_uris, streamed with COPY inside the writer's transaction.
COPY incoming_uris (data_uri) FROM STDIN
