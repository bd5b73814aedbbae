-- Rule (warning): the catalog is worth having for a parameter sweep
-- ("When the Data Doesn't Fit"). Flags a dataset of two or more Hamiltonians
-- whose metadata columns are all constant.
WITH counts AS (
    SELECT count(DISTINCT COLUMNS(* EXCLUDE (_row))) AS "\0" FROM metadata_source
),
per_column AS (
    UNPIVOT counts ON COLUMNS(*) INTO NAME column_name VALUE n_distinct
)
SELECT
    'no_parameter_variation' AS rule,
    'warning' AS severity,
    $manifest AS manifest,
    NULL::BIGINT AS row,
    NULL AS "column",
    NULL AS value,
    'no parameter varies across the ' || (SELECT count(*) FROM metadata_source)
        || ' Hamiltonians: metadata search has nothing to tell them apart' AS message
FROM per_column
HAVING max(n_distinct) <= 1 AND (SELECT count(*) FROM metadata_source) > 1
