-- Not a rule: the metadata document of each manifest row, as JSON text. Reads
-- metadata_source(_row, doc), where `doc` is one STRUCT of the row's metadata
-- columns in manifest order (built from the Arrow columns: binding one struct
-- instead of a function of every column keeps the cost linear in the columns).
-- The contract's value and size rules read these documents, and the planner
-- stores them (huid first and Mode A locators added for Hamiltonians).
SELECT _row, to_json(doc) AS doc
FROM metadata_source
