-- Nodes other than the root: none in a catalog whose initialisation was cut short.
SELECT count(*) FROM nodes WHERE id <> 0
