-- Distinct locators worth opening: those whose `file` passes file_invalid.
SELECT DISTINCT file, dataset
FROM artifacts
WHERE file IS NOT NULL AND trim(file) <> '' AND dataset IS NOT NULL AND trim(dataset) <> ''
  AND NOT starts_with(file, '/') AND NOT regexp_matches(file, '^[A-Za-z]:[\\/]')
  AND NOT list_contains(string_split(replace(file, '\', '/'), '/'), '..')
