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
-- Reads: hamiltonian_huids and artifact_huids, the huid column of each manifest
-- with each row's number (the planner streams them from the files: DuckDB's own
-- Parquet reader would match the name huid without regard to case).
COPY (
    WITH h AS (
        SELECT hash(huid) AS h, row AS ham_row
        FROM hamiltonian_huids
    ),
    a AS (
        SELECT hash(huid) AS h, row AS art_row
        FROM artifact_huids
    )
    SELECT h.ham_row // $chunk AS chunk
    FROM a
    LEFT JOIN h USING (h)
    ORDER BY a.art_row
) TO $owners (FORMAT parquet)
