-- Bulk rows for nodes, streamed with COPY inside the writer's transaction.
COPY nodes (id, parent, key, structure_family, metadata, specs) FROM STDIN
