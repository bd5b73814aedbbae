-- Rule: no Hamiltonian column is named in the broker's locator namespace. The
-- broker writes path_<type>, dataset_<type> and index_<type> into each
-- Hamiltonian's metadata to say where its artifacts are (sql/plan/
-- hamiltonian_nodes.sql); Mode A (`broker locate`, `load_batches`) reads them
-- back. A manifest column of that name would become a locator for an artifact
-- that does not exist, possibly a file outside the data directory.
-- Reads: metadata_columns(column_name, data_type): the metadata columns of one
-- Hamiltonian manifest. Binds $manifest and $prefixes (the locator prefixes,
-- manifest_broker.catalog.plan.LOCATOR_PREFIXES).
SELECT
    'locator_namespace' AS rule,
    'error' AS severity,
    $manifest AS manifest,
    NULL::BIGINT AS row,
    column_name AS "column",
    NULL AS value,
    'column ' || column_name || ' is in the broker''s locator namespace ('
        || array_to_string($prefixes, '*, ') || '*): the broker writes these keys to say where '
        || 'each artifact lives, so a manifest may not; rename the column' AS message
FROM metadata_columns
WHERE list_bool_or(list_transform($prefixes, p -> starts_with(column_name, p)))
