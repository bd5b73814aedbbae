-- Rule: metadata values are valid JSON. NaN and +/-Infinity are not (RFC 8259),
-- also inside lists and structs. to_json renders them as bare tokens, which is
-- what the pattern looks for.
WITH as_json AS (
    SELECT _row, to_json(COLUMNS(* EXCLUDE (_row))) AS "\0"
    FROM metadata_source
),
cells AS (
    UNPIVOT as_json ON COLUMNS(* EXCLUDE (_row)) INTO NAME column_name VALUE value
)
SELECT
    'metadata_not_finite' AS rule,
    'error' AS severity,
    $manifest AS manifest,
    _row AS row,
    column_name AS "column",
    value::VARCHAR AS value,
    'NaN or Infinity in column ' || column_name
        || ' is not valid JSON metadata: use null for missing values' AS message
FROM cells
WHERE regexp_matches(value::VARCHAR, '(^|[\[,:])-?(NaN|Infinity)($|[\],}])')
