-- Reserve :n ids from a table's own sequence, so concurrent writers (a running
-- Tiled server) never collide with the bulk writer.
SELECT nextval(pg_get_serial_sequence(:table, 'id')) AS id FROM generate_series(1, :n) ORDER BY 1
