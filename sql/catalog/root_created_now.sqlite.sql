-- Reads: nodes. A catalog copied from the template gets the root node's creation
-- and update times of now, as if Tiled had initialised it now (Tiled's own
-- server default, CURRENT_TIMESTAMP in UTC).
UPDATE nodes SET time_created = CURRENT_TIMESTAMP, time_updated = CURRENT_TIMESTAMP WHERE id = 0
