-- Rule: every segment of --parent is a key like any other (the macro name_problem:
-- a container tiled.client cannot reach by its path is never made).
-- Reads: nothing but its parameter, the segments of --parent (a VARCHAR list, $1).
SELECT segment, name_problem('--parent segment', segment) AS message
FROM unnest($1::VARCHAR[]) AS t(segment)
WHERE name_problem('--parent segment', segment) IS NOT NULL
