-- Not a rule: the metadata cells that the value rules (metadata_not_finite,
-- metadata_integer_range) must look at, with their bare JSON tokens.
-- Reads: metadata_source(_row, the metadata columns of one manifest).
-- Each row becomes one JSON document (to_json of the whole row: linear in the
-- number of columns, where a per-column UNPIVOT grows with its square); only the
-- rows whose document holds NaN, Infinity or a 19-digit run are split into cells
-- (JSON -> MAP cast), and only tokens outside JSON strings count.
WITH rows_json AS (
    SELECT _row, to_json(struct_pack(*COLUMNS(* EXCLUDE (_row)))) AS doc
    FROM metadata_source
),
suspect_rows AS (
    SELECT _row, doc FROM rows_json WHERE regexp_matches(doc, 'NaN|Infinity|[0-9]{19}')
),
cells AS (
    SELECT _row, unnest(map_entries(doc::MAP(VARCHAR, JSON)), recursive := true)
    FROM suspect_rows
)
SELECT _row, key AS column_name, value::VARCHAR AS value,
       list_filter(regexp_extract_all(value::VARCHAR, '"(?:[^"\\]|\\.)*"|([-+0-9A-Za-z.]+)', 1),
                   t -> t <> '') AS tokens
FROM cells
