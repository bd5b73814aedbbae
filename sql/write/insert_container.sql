-- A container created for --parent, written the way Tiled writes one (its
-- triggers are in place at this point and add the closure and full-text rows).
INSERT INTO nodes (parent, key, structure_family, metadata, specs)
VALUES (:parent, :key, 'container', '{}', '[]')
