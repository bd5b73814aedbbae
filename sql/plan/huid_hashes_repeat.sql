-- Whether two Hamiltonians of one manifest file share the 64-bit hash of their huid
-- (a chance of about n^2 / 2^65: 3 x 10^-7 at 3.3 x 10^6 Hamiltonians): when they
-- do, plan/artifact_owners could give an artifact two owners, and the planner joins
-- by string instead. The huids are unique (the check's huid_duplicate). A GROUP BY,
-- which spills (count(DISTINCT ...) ran out of 256 MB at 3.3 x 10^7 Hamiltonians).
-- Reads: $hamiltonian_huids (plan/artifact_owners says what it is).
SELECT count(*) > 0 AS repeat
FROM (
    SELECT hash(huid) AS h
    FROM read_parquet($hamiltonian_huids)
    GROUP BY h
    HAVING count(*) > 1
)
