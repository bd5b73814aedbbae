-- Each artifact with its Hamiltonian: the Mode A view (where to read what).
CREATE VIEW locators AS
SELECT h.key, a.huid, a.type, a.file, a.dataset, a.index
FROM artifacts AS a
JOIN hamiltonians AS h USING (huid)
