-- Before a metadata update, keep the old metadata as a revision, as Tiled's
-- update_metadata does.
INSERT INTO revisions (node_id, revision_number, metadata, specs)
SELECT id,
       coalesce((SELECT max(revision_number) FROM revisions WHERE node_id = :id), 0) + 1,
       metadata, specs
FROM nodes WHERE id = :id
