-- Remove one table of a half-initialised catalog (the caller quotes {table}).
DROP TABLE IF EXISTS {table}
