-- Rule (warning): the catalog is worth having for a parameter sweep
-- ("When the Data Doesn't Fit"). Flags a dataset of two or more Hamiltonians
-- whose metadata rows are all the same.
-- Reads: $rows (the Hamiltonians of the manifest) and $distinct (how many distinct
-- metadata documents, without huid, its chunks held: contract/schema/distinct_documents,
-- counted up to two).
SELECT
    'no_parameter_variation' AS rule,
    'warning' AS severity,
    $manifest AS manifest,
    NULL::BIGINT AS row,
    NULL AS "column",
    NULL AS value,
    'no parameter varies across the ' || $rows
        || ' Hamiltonians: metadata search has nothing to tell them apart' AS message
WHERE $distinct <= 1 AND $rows > 1
