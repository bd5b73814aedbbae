-- Not a rule: takes out of the check's store the Hamiltonian rows of a dataset
-- whose manifest stopped being readable half way (its rows are left out of the
-- row rules, as those of a manifest unreadable from the start).
DELETE FROM hamiltonians WHERE dataset_name = $dataset_name
