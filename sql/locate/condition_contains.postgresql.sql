-- Key(path) == value as Tiled's adapter writes it on PostgreSQL: containment, which
-- a GIN index on metadata can serve.
-- Reads: nodes. Binds (ADBC, libpq's $n; {document} is its number, given by the
-- caller): {"a": {"b": value}} as JSON text.
nodes.metadata @> CAST(${document} AS JSONB)
