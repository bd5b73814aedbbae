-- Every node in the targets' subtrees (the closure table lists each node as its own
-- descendant at depth 0).
CREATE TEMPORARY TABLE delete_doomed AS
SELECT DISTINCT descendant AS id FROM nodes_closure WHERE ancestor IN (SELECT id FROM delete_targets)
