-- Bulk rows for data_sources, streamed with COPY inside the writer's transaction.
COPY data_sources (id, node_id, structure_id, mimetype, parameters, properties, management, structure_family) FROM STDIN
