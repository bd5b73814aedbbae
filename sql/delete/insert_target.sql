INSERT INTO delete_targets (id) VALUES (:id)
