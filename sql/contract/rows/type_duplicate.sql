-- Rule: `type` is unique per huid (the guide's first key rule). Lists the
-- colliding rows and suggests names disambiguated by the dataset path (or, when
-- the paths are the same, by the file name). Types are compared in Unicode NFC.
-- Reads: artifacts.
WITH named AS (
    SELECT *, nfc_normalize(type) AS type_nfc FROM artifacts
),
groups AS (
    SELECT dataset_name, huid, type_nfc
    FROM named
    WHERE huid IS NOT NULL AND type IS NOT NULL AND type <> ''
    GROUP BY dataset_name, huid, type_nfc
    HAVING count(*) > 1
),
clashes AS (
    SELECT *,
           count(*) OVER w AS n,
           list(row ORDER BY row) OVER w AS rows,
           count(DISTINCT dataset) OVER w AS n_datasets
    FROM named AS a
    SEMI JOIN groups AS g USING (dataset_name, huid, type_nfc)
    WINDOW w AS (PARTITION BY dataset_name, huid, type_nfc)
),
suggested AS (
    SELECT *,
           type || '_' || regexp_replace(
               CASE WHEN n_datasets = n
                    THEN regexp_replace(dataset, '^.*/', '')
                    ELSE regexp_replace(regexp_replace(file, '^.*/', ''), '\.[^.]*$', '')
               END,
               '[^A-Za-z0-9_.-]+', '_', 'g') AS suggestion
    FROM clashes
    WHERE n > 1
)
SELECT 'type_duplicate' AS rule, 'error' AS severity, manifest, row, 'type' AS "column",
       type AS value,
       'type ' || type || ' appears ' || n || ' times for huid ' || huid || ' (rows '
           || array_to_string(rows, ', ') || '); rename this one, e.g. '
           || CASE WHEN count(*) OVER (PARTITION BY dataset_name, huid, suggestion) = 1
                   THEN suggestion ELSE type || '_' || (row_number() OVER (PARTITION BY dataset_name, huid, type_nfc ORDER BY row)) END
           AS message
FROM suggested
