-- Rule: metadata columns hold JSON-representable types; binary values cannot
-- become Tiled metadata.
-- Reads: metadata_columns(column_name, data_type): the metadata columns of one
-- manifest with their Arrow types (binary, large_binary, fixed_size_binary[n],
-- also nested in lists and structs).
SELECT
    'metadata_binary' AS rule,
    'error' AS severity,
    $manifest AS manifest,
    NULL::BIGINT AS row,
    column_name AS "column",
    data_type AS value,
    'column ' || column_name || ' holds binary values (' || data_type
        || '); metadata must be JSON: store text or numbers instead' AS message
FROM metadata_columns
WHERE regexp_matches(data_type, '(^|[^a-z_])(large_)?binary|fixed_size_binary')
