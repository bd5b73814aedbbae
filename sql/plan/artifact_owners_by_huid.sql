-- plan/artifact_owners joined by the huid strings, into a Parquet file ($owners),
-- for a Hamiltonian manifest in which two huids share a hash
-- (plan/huid_hashes_repeat). Its table of huids holds every string (3.3 x 10^6
-- Hamiltonians finish within 256 MB with one thread, not within 192 MB nor with
-- two: measured), so it runs with the host's limit and one thread.
-- Reads: hamiltonian_huids and artifact_huids, the huid column of each manifest
-- with each row's number (the planner streams them from the files: DuckDB's own
-- Parquet reader would match the name huid without regard to case).
COPY (
    WITH h AS (
        SELECT huid, row AS ham_row FROM hamiltonian_huids
    ),
    a AS (
        SELECT huid, row AS art_row FROM artifact_huids
    )
    SELECT h.ham_row // $chunk AS chunk
    FROM a
    LEFT JOIN h USING (huid)
    ORDER BY a.art_row
) TO $owners (FORMAT parquet)
