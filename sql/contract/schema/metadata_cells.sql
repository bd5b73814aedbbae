-- Not a rule: the metadata cells that the value rules (metadata_not_finite,
-- metadata_integer_range) must look at, with their bare JSON tokens.
-- Reads: metadata_rows(_row, doc) (contract/metadata_documents of one manifest).
-- Only the rows whose document holds NaN, Infinity or an integer of 19 digits or
-- more are split into cells (JSON -> MAP cast), and only tokens outside JSON
-- strings count. (The digits of a float such as 0.00012345678901234567 are not an
-- integer: a run that touches '.', 'e' or 'E' does not make its row a suspect.)
WITH suspect_rows AS (
    SELECT _row, doc FROM metadata_rows
    WHERE regexp_matches(doc, 'NaN|Infinity|(^|[^0-9.eE+-])[-+]?[0-9]{19,}([^0-9.eE]|$)')
),
cells AS (
    SELECT _row, unnest(map_entries(doc::JSON::MAP(VARCHAR, JSON)), recursive := true)
    FROM suspect_rows
)
SELECT _row, key AS column_name, value::VARCHAR AS value,
       list_filter(regexp_extract_all(value::VARCHAR, '"(?:[^"\\]|\\.)*"|([-+0-9A-Za-z.]+)', 1),
                   t -> t <> '') AS tokens
FROM cells
