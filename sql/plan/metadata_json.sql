-- Metadata JSON of each manifest row: every column of `meta_source` but _row,
-- in manifest order (huid first for Hamiltonians).
SELECT _row, to_json(struct_pack(*COLUMNS(* EXCLUDE (_row)))) AS metadata
FROM meta_source
