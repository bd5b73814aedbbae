-- Rule: `file` is a relative path that stays inside the base directory by
-- its text alone: no absolute paths, no '..' components, no control characters
-- (NUL, tab, line breaks, C1: URL parsing drops or stops at them, so the server
-- would open another path).
-- Reads: artifacts.
SELECT 'file_invalid' AS rule, 'error' AS severity, manifest, row, 'file' AS "column",
       file AS value,
       CASE
           WHEN file IS NULL OR trim(file) = '' THEN 'file is null or empty'
           WHEN regexp_matches(file, '[\x00-\x1f\x7f-\x9f]')
               THEN 'file contains control characters (tab, line break, NUL...), which Tiled''s asset URIs '
                    || 'cannot carry: rename the file or folder'
           WHEN starts_with(file, '/') OR regexp_matches(file, '^[A-Za-z]:[\\/]')
               THEN 'file must be relative to the base directory, not an absolute path'
           ELSE 'file must not climb out of the base directory with ''..'''
       END AS message
FROM artifacts
WHERE file IS NULL OR trim(file) = '' OR regexp_matches(file, '[\x00-\x1f\x7f-\x9f]')
   OR starts_with(file, '/') OR regexp_matches(file, '^[A-Za-z]:[\\/]')
   OR list_contains(string_split(replace(file, '\', '/'), '/'), '..')
