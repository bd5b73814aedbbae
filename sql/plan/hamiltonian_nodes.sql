-- One container node per Hamiltonian: key and metadata JSON. Metadata is huid,
-- then the Hamiltonian's own columns (the check's document), then the Mode A
-- locators of its artifacts: path_<type>, dataset_<type>, index_<type>.
-- Inputs: ham_meta(_row, key, huid, metadata: the columns' JSON object) and
-- locators(huid, row, type, path, dataset, index).
WITH locator_entries AS (
    SELECT huid, row, 0 AS pos, 'path_' || type AS name, to_json(path) AS value FROM locators
    UNION ALL
    SELECT huid, row, 1, 'dataset_' || type, to_json(dataset) FROM locators
    UNION ALL
    SELECT huid, row, 2, 'index_' || type, coalesce(to_json(index), 'null') FROM locators
),
locator_json AS (
    SELECT huid, string_agg(to_json(name) || ':' || value, ',' ORDER BY row, pos) AS body
    FROM locator_entries
    GROUP BY huid
)
SELECT
    h.key,
    h.huid,
    '{"huid":' || coalesce(to_json(h.huid), 'null')
        || CASE WHEN h.metadata = '{}' THEN '' ELSE ',' || substr(h.metadata, 2, length(h.metadata) - 2) END
        || CASE WHEN l.body IS NULL THEN '' ELSE ',' || l.body END
        || '}' AS metadata
FROM ham_meta AS h
LEFT JOIN locator_json AS l USING (huid)
ORDER BY h._row
