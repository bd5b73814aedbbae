-- Bulk rows for data_source_asset_association, streamed with COPY inside the writer's transaction.
COPY data_source_asset_association (data_source_id, asset_id, parameter, num) FROM STDIN
