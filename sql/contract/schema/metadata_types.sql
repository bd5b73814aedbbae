-- Rule: metadata columns hold JSON-representable types; binary values cannot
-- become Tiled metadata. Runs over `metadata_source` (_row + the metadata columns
-- of one manifest).
SELECT
    'metadata_binary' AS rule,
    'error' AS severity,
    $manifest AS manifest,
    NULL::BIGINT AS row,
    column_name AS "column",
    data_type AS value,
    'column ' || column_name || ' holds binary values (' || data_type
        || '); metadata must be JSON: store text or numbers instead' AS message
FROM information_schema.columns
WHERE table_name = 'metadata_source'
  AND column_name <> '_row'
  AND data_type LIKE '%BLOB%'
