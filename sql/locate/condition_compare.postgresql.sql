-- One Key(path) OP value condition as Tiled's adapter writes it on PostgreSQL for
-- != < <= > >= ({op}, chosen by the caller): a jsonb comparison.
-- Reads: nodes. Binds (psycopg %s): the path as text[], the value as JSON text.
(nodes.metadata #> %s) {op} CAST(%s AS JSONB)
