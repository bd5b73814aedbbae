-- Rule: metadata integers fit what Tiled serves. Its JSON and msgpack encoders
-- take -2^63 .. 2^64-1; a larger one (a DECIMAL(38,0) or HUGEINT column) makes
-- the server answer 500 for the node and for the listing of its parent.
-- Reads: metadata_cells (contract/schema/metadata_cells).
SELECT
    'metadata_integer_range' AS rule,
    'error' AS severity,
    $manifest AS manifest,
    _row AS row,
    column_name AS "column",
    value,
    'integer in column ' || column_name || ' is outside -2^63 .. 2^64-1, which Tiled cannot serve: '
        || 'store it as text or as a float' AS message
FROM metadata_cells
WHERE len(list_filter(tokens, t -> regexp_full_match(t, '[-+]?[0-9]+')
          AND coalesce(TRY_CAST(t AS HUGEINT) NOT BETWEEN -9223372036854775808 AND 18446744073709551615, true))) > 0
