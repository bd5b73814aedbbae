UPDATE nodes SET metadata = CAST(:metadata AS jsonb), time_updated = now() WHERE id = :id
