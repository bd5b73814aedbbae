-- The cascades of Tiled's schema need SQLite's foreign keys (Tiled's server turns
-- them on for every connection too). Outside any transaction.
PRAGMA foreign_keys = ON
