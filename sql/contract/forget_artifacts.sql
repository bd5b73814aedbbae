-- Not a rule: takes out of the check's store the artifact rows of a dataset whose
-- manifest stopped being readable half way (see forget_hamiltonians).
DELETE FROM artifacts WHERE dataset_name = $dataset_name
