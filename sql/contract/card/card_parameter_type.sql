-- Rule: a declared parameter's column has the declared type (a float parameter
-- may be stored as integers: every integer is a float value).
SELECT 'card_parameter_type' AS rule, 'error' AS severity, c.manifest, NULL AS row, p.name AS "column",
       c.family AS value,
       'the dataset card declares ' || p.name || ' as ' || p.type || ', the manifest column is '
           || c.family AS message
FROM card_parameters AS p
JOIN manifest_columns AS c ON c.name = p.name
WHERE c.family <> p.type AND NOT (p.type = 'float' AND c.family = 'integer')
