-- Not a rule: up to two distinct metadata documents of one chunk of Hamiltonian
-- rows; parameter_variation is decided over every chunk from them.
-- Reads: metadata_rows(_row, doc).
SELECT DISTINCT doc FROM metadata_rows LIMIT 2
