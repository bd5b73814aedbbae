-- First free ids. The writer holds SQLite's write lock (BEGIN IMMEDIATE), so
-- nobody else can take them before the commit.
SELECT (SELECT coalesce(max(id), 0) + 1 FROM nodes),
       (SELECT coalesce(max(id), 0) + 1 FROM data_sources),
       (SELECT coalesce(max(id), 0) + 1 FROM assets)
