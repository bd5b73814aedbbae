-- Rule: metadata values are valid JSON. NaN and +/-Infinity are not (RFC 8259),
-- also inside lists and structs; a string "NaN" is fine.
-- Reads: metadata_cells (contract/schema/metadata_cells).
SELECT
    'metadata_not_finite' AS rule,
    'error' AS severity,
    $manifest AS manifest,
    _row AS row,
    column_name AS "column",
    value,
    'NaN or Infinity in column ' || column_name
        || ' is not valid JSON metadata: use null for missing values' AS message
FROM metadata_cells
WHERE list_has_any(tokens, ['NaN', 'Infinity', '-Infinity', '+Infinity'])
