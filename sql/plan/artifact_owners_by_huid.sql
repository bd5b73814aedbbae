-- plan/artifact_owners joined by the huid strings, into a Parquet file ($owners),
-- for a Hamiltonian manifest in which two huids share a hash
-- (plan/huid_hashes_repeat). Its table of huids holds every string (3.3 x 10^6
-- Hamiltonians finish within 256 MB with one thread, not within 192 MB nor with
-- two: measured), so it runs with the host's limit and one thread.
-- Reads: $hamiltonian_huids and $artifact_huids, Parquet files of one column, the
-- huid column of each manifest in its row order (the planner copies them with
-- pyarrow, by the exact name: DuckDB's Parquet reader takes names without regard
-- to case, so a metadata column HUID before huid would stand for it).
COPY (
    WITH h AS (
        SELECT huid, file_row_number AS ham_row FROM read_parquet($hamiltonian_huids, file_row_number = true)
    ),
    a AS (
        SELECT huid, file_row_number AS art_row FROM read_parquet($artifact_huids, file_row_number = true)
    )
    SELECT h.ham_row // $chunk AS chunk
    FROM a
    LEFT JOIN h USING (huid)
    ORDER BY a.art_row
) TO $owners (FORMAT parquet)
