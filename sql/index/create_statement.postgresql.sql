-- The DDL of one metadata index, built by PostgreSQL itself so that the name and
-- the JSON path are quoted by format() (%I, %L), never by the broker: DDL cannot
-- take bound values. The expression is exactly the one Tiled's catalog adapter
-- issues for Key(col) > / >= / < / <= (nodes.metadata #> path), so that the
-- planner matches it once the path is a constant (a custom plan); `parent` first,
-- as every search of one container filters on it.
-- Reads: nothing (binds name, and path as text[]).
SELECT format('CREATE INDEX IF NOT EXISTS %I ON nodes (parent, (metadata #> %L::text[]))',
              CAST(:name AS text), CAST(:path AS text[]))
