-- Bulk rows for data_source_asset_association, sent with executemany inside the writer's transaction.
INSERT INTO data_source_asset_association (data_source_id, asset_id, parameter, num) VALUES (?, ?, ?, ?)
