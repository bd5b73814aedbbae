-- Macro name_problem(what, name): why `name` cannot be a Tiled node key, or NULL
-- when it can. `what` ('key' or 'type') names the column in the message.
-- Reads: nothing (a macro used by key_invalid and type_invalid).
-- Accepted are exactly the names that tiled.client and the HTTP API reach (tested
-- through a real server per character class): tiled.client puts keys into URL
-- paths unescaped, so '.', '..', '?', '#' and percent-escapes (%2F...) address
-- another node or none. Format characters (zero-width space, soft hyphen, BOM...)
-- are refused because they make names that look the same compare different. More
-- than 1023 characters do not fit Tiled's key column (PostgreSQL refuses the row).
CREATE OR REPLACE TEMP MACRO name_problem(what, name) AS
    CASE
        WHEN name IS NULL OR name = '' THEN what || ' is null or empty'
        WHEN length(name) > 1023 THEN what || ' has ' || length(name) || ' characters; Tiled''s key column '
            || '(nodes.key, VARCHAR(1023)) holds 1023'
        WHEN contains(name, '/') THEN what || ' contains ''/'', which Tiled reads as a path separator'
        WHEN regexp_matches(name, '[\x00-\x1f\x7f-\x9f]') THEN what || ' contains control characters'
        WHEN regexp_matches(name, '^\p{Z}|\p{Z}$') THEN what || ' has leading or trailing white space'
        WHEN name IN ('.', '..') THEN what || ' ''' || name || ''' is a relative path segment: URLs resolve it '
            || 'to another node, so this one could never be reached'
        WHEN regexp_matches(name, '[?#]') THEN what || ' contains ''?'' or ''#'', which end the path of a URL: '
            || 'tiled.client could not reach the node'
        WHEN regexp_matches(name, '%[0-9A-Fa-f]{2}') THEN what || ' contains a percent-escape (%XX), which the '
            || 'server decodes: tiled.client could not reach the node'
        WHEN regexp_matches(name, '\p{Cf}') THEN what || ' contains invisible format characters (zero-width '
            || 'space, soft hyphen...): it would look like another name and differ from it'
    END
