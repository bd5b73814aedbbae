-- Tables of a SQLite database, to tell a Tiled catalog from another file.
SELECT name FROM sqlite_master WHERE type = 'table'
