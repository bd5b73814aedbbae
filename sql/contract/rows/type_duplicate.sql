-- Rule: `type` is unique per huid (the guide's first key rule). Lists the
-- colliding rows and suggests names disambiguated by the dataset path (or, when
-- the paths are the same, by the file name). Types are compared in Unicode NFC.
-- Each group is aggregated once (count and first rows): linear in the rows.
-- Reads: artifacts.
WITH named AS (
    SELECT *, nfc_normalize(type) AS type_nfc FROM artifacts
),
-- Counted first, listed only for the duplicates: an ordered list() per group of
-- every row cannot spill, and at 10^6 artifacts it took half a gigabyte.
-- The first rows of a group are min(row, 5): five kept whatever the group's size.
counted AS (
    SELECT dataset_name, huid, type_nfc, count(*) AS n
    FROM named
    WHERE huid IS NOT NULL AND type IS NOT NULL AND type <> ''
    GROUP BY dataset_name, huid, type_nfc
    HAVING count(*) > 1
),
groups AS (
    SELECT dataset_name, huid, type_nfc, c.n, min(a.row, 5) AS first_rows,
           count(DISTINCT a.dataset) AS n_datasets
    FROM counted AS c
    JOIN named AS a USING (dataset_name, huid, type_nfc)
    GROUP BY dataset_name, huid, type_nfc, c.n
),
clashes AS (
    SELECT a.*, g.n, g.first_rows, g.n_datasets
    FROM named AS a
    JOIN groups AS g USING (dataset_name, huid, type_nfc)
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
)
SELECT 'type_duplicate' AS rule, 'error' AS severity, manifest, row, 'type' AS "column",
       type AS value,
       'type ' || type || ' appears ' || n || ' times for huid ' || huid || ' (rows '
           || array_to_string(first_rows, ', ') || CASE WHEN n > 5 THEN ', ...' ELSE '' END || '); rename this one, e.g. '
           || CASE WHEN count(*) OVER (PARTITION BY dataset_name, huid, suggestion) = 1
                   THEN suggestion ELSE type || '_' || (row_number() OVER (PARTITION BY dataset_name, huid, type_nfc ORDER BY row)) END
           AS message
FROM suggested
