UPDATE nodes SET metadata = :metadata, time_updated = CURRENT_TIMESTAMP WHERE id = :id
