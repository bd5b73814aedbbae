-- Rule: the standard columns exist with a usable type (guide, Step 2).
-- Runs once per manifest pair over the registered tables ham_full / art_full.
-- A missing optional `index` is fine; a float or string `index` is not. A column
-- whose every value is null has type NULL: its rows are left to the row rules.
WITH expected(table_name, manifest, column_name, required, allowed, wanted) AS (
    VALUES
        ('ham_full', $ham_manifest, 'huid', true, ['VARCHAR', '"NULL"'], 'a string'),
        ('ham_full', $ham_manifest, 'key', true, ['VARCHAR', '"NULL"'], 'a string'),
        ('art_full', $art_manifest, 'huid', true, ['VARCHAR', '"NULL"'], 'a string'),
        ('art_full', $art_manifest, 'type', true, ['VARCHAR', '"NULL"'], 'a string'),
        ('art_full', $art_manifest, 'file', true, ['VARCHAR', '"NULL"'], 'a string'),
        ('art_full', $art_manifest, 'dataset', true, ['VARCHAR', '"NULL"'], 'a string'),
        ('art_full', $art_manifest, 'index', false,
         ['TINYINT', 'SMALLINT', 'INTEGER', 'BIGINT', 'UTINYINT', 'USMALLINT',
          'UINTEGER', 'UBIGINT', '"NULL"'],
         'an integer (or null)')
),
actual AS (
    SELECT table_name, column_name, data_type
    FROM information_schema.columns
    WHERE table_name IN ('ham_full', 'art_full')
)
SELECT
    CASE WHEN a.data_type IS NULL THEN 'column_missing' ELSE 'column_type' END AS rule,
    'error' AS severity,
    e.manifest,
    NULL::BIGINT AS row,
    e.column_name AS "column",
    a.data_type AS value,
    CASE
        WHEN a.data_type IS NULL THEN 'required column ' || e.column_name || ' is missing'
        ELSE 'column ' || e.column_name || ' must be ' || e.wanted || ', found ' || a.data_type
    END AS message
FROM expected AS e
LEFT JOIN actual AS a USING (table_name, column_name)
WHERE (a.data_type IS NULL AND e.required)
   OR (a.data_type IS NOT NULL AND NOT list_contains(e.allowed, a.data_type))
