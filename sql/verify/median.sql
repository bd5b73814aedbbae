-- A threshold for the metadata query check: the median of one parameter.
SELECT median(value) FROM hamiltonians WHERE value IS NOT NULL
