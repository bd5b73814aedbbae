-- One Key(path) OP value condition as Tiled's adapter writes it on PostgreSQL for
-- != < <= > >= ({op}, chosen by the caller): a jsonb comparison.
-- Reads: nodes. Binds (ADBC, libpq's $n; {path} and {value} are their numbers, given
-- by the caller): the path as text[], the value as JSON text.
(nodes.metadata #> ${path}) {op} CAST(${value} AS JSONB)
