-- Statistics of the nodes table and of its index expressions, so that the planner
-- knows how selective a metadata range is as soon as an index exists.
-- Reads: nodes.
ANALYZE nodes
