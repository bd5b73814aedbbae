-- One nested result column (struct, list, map) as JSON text, for output formats
-- that hold only flat values (a table on the terminal, CSV).
-- Reads: nested_column (one column, value), registered from a query's result.
SELECT CAST(to_json(value) AS VARCHAR) AS value FROM nested_column
