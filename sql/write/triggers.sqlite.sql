-- The row-at-a-time triggers the bulk path replaces with set-based statements
-- (closure, full-text index, association guards), with their exact definitions
-- so they can be re-created verbatim in the same transaction.
SELECT name, sql FROM sqlite_master
WHERE type = 'trigger'
  AND name IN ('update_closure_table_when_inserting', 'nodes_metadata_fts5_sync_ai',
               'cannot_insert_num_null_if_num_exists', 'cannot_insert_num_int_if_num_null_exists')
ORDER BY name
