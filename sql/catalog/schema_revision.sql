-- The alembic revision a Tiled catalog database is at.
SELECT version_num FROM alembic_version
