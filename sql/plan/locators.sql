-- The Mode A locator of each artifact, with the file resolved to an absolute path.
SELECT a.huid, a._row AS row, a.type, p.path, a.dataset, a.index
FROM art_meta AS a
JOIN probes AS p ON p.file = a.file AND p.dataset = a.dataset
