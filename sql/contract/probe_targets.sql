-- Distinct locators worth opening: those whose `file` passes file_invalid and
-- whose `dataset` passes dataset_invalid.
-- Reads: artifacts.
SELECT DISTINCT file, dataset
FROM artifacts
WHERE file IS NOT NULL AND trim(file) <> '' AND NOT regexp_matches(file, '[\x00-\x1f\x7f-\x9f]')
  AND NOT starts_with(file, '/') AND NOT regexp_matches(file, '^[A-Za-z]:[\\/]')
  AND NOT list_contains(string_split(replace(file, '\', '/'), '/'), '..')
  AND dataset IS NOT NULL AND trim(dataset) <> '' AND NOT regexp_matches(dataset, '[\x00-\x1f\x7f-\x9f]')
