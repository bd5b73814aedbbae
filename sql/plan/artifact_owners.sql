-- The plan chunk of each artifact's Hamiltonian ($chunk Hamiltonians a chunk, by
-- Hamiltonian row), in artifact row order: the planner sorts the artifacts into one
-- file per chunk with it, so that a chunk's plan reads only its own artifacts.
-- Reads: the two manifest files ($hamiltonians, $artifacts), their huid columns.
WITH h AS (
    SELECT huid, file_row_number AS ham_row FROM read_parquet($hamiltonians, file_row_number = true)
),
a AS (
    SELECT huid, file_row_number AS art_row FROM read_parquet($artifacts, file_row_number = true)
)
SELECT h.ham_row // $chunk AS chunk
FROM a
LEFT JOIN h USING (huid)
ORDER BY a.art_row
