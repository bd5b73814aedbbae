-- Rule: `file` is a relative path that stays inside the base directory by
-- its text alone: no absolute paths, no '..' components.
SELECT 'file_invalid' AS rule, 'error' AS severity, manifest, row, 'file' AS "column",
       file AS value,
       CASE
           WHEN file IS NULL OR trim(file) = '' THEN 'file is null or empty'
           WHEN starts_with(file, '/') OR regexp_matches(file, '^[A-Za-z]:[\\/]')
               THEN 'file must be relative to the base directory, not an absolute path'
           ELSE 'file must not climb out of the base directory with ''..'''
       END AS message
FROM artifacts
WHERE file IS NULL OR trim(file) = ''
   OR starts_with(file, '/') OR regexp_matches(file, '^[A-Za-z]:[\\/]')
   OR list_contains(string_split(replace(file, '\', '/'), '/'), '..')
