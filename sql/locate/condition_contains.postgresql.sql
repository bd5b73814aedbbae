-- Key(path) == value as Tiled's adapter writes it on PostgreSQL: containment, which
-- a GIN index on metadata can serve.
-- Reads: nodes. Binds (psycopg %s): {"a": {"b": value}} as JSON text.
nodes.metadata @> CAST(%s AS JSONB)
