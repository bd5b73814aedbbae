-- Rule: the resolved path survives the asset's file:// URI. Tiled writes the URI
-- without escaping and reads the path back without unescaping, so a '#' or '?'
-- (which start a URI's fragment and query) would make the server open another
-- path; '%' and spaces round-trip and are fine.
-- Reads: artifacts, probes.
SELECT 'file_uri_unsafe' AS rule, 'error' AS severity, a.manifest, a.row, 'file' AS "column",
       a.file AS value,
       a.file || ': resolves to ' || p.path || ', and Tiled''s file:// asset URIs cannot carry its '
           || '''#'' or ''?'': rename the file or folder' AS message
FROM artifacts AS a
JOIN probes AS p ON p.file = a.file AND p.dataset = a.dataset
WHERE p.file_status = 'ok' AND regexp_matches(p.path, '[#?]')
