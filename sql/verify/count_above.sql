-- What `Key(param) > threshold` must return, computed from the manifest.
SELECT count(*) FROM hamiltonians WHERE value > $threshold
