-- Arrays being deleted whose parent stays: the parent's Mode A locators for them go.
SELECT n.parent, n.key, p.metadata
FROM nodes AS n JOIN nodes AS p ON p.id = n.parent
WHERE n.id IN (SELECT id FROM delete_doomed) AND n.structure_family = 'array'
  AND n.parent NOT IN (SELECT id FROM delete_doomed)
ORDER BY n.parent, n.key
