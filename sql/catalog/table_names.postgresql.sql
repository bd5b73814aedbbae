-- Tables of the current PostgreSQL schema, to tell a Tiled catalog from another database.
SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()
