-- The plan chunk of each artifact's Hamiltonian ($chunk Hamiltonians a chunk, by
-- Hamiltonian row), in artifact row order, into a Parquet file ($owners): the
-- planner sorts the artifacts into one file per chunk with it, so that a chunk's
-- plan reads only its own artifacts.
-- Joined on the huids' 64-bit hash, which holds 8 bytes a Hamiltonian where the
-- strings hold all of theirs (3.3 x 10^6 Hamiltonians: 1.8 s within 128 MB with two
-- threads, where the strings needed the host's limit and one thread; 3.3 x 10^7
-- ran out of 256 MB, and the planner runs it again with the host's limit). Exact
-- only when no two Hamiltonians of the file share a hash (plan/huid_hashes_repeat
-- says; plan/artifact_owners_by_huid is the join by string for the other case).
-- Reads: $hamiltonian_huids and $artifact_huids, Parquet files of one column, the
-- huid column of each manifest in its row order (the planner copies them with
-- pyarrow, by the exact name: DuckDB's Parquet reader takes names without regard
-- to case, so a metadata column HUID before huid would stand for it).
COPY (
    WITH h AS (
        SELECT hash(huid) AS h, file_row_number AS ham_row
        FROM read_parquet($hamiltonian_huids, file_row_number = true)
    ),
    a AS (
        SELECT hash(huid) AS h, file_row_number AS art_row
        FROM read_parquet($artifact_huids, file_row_number = true)
    )
    SELECT h.ham_row // $chunk AS chunk
    FROM a
    LEFT JOIN h USING (h)
    ORDER BY a.art_row
) TO $owners (FORMAT parquet)
