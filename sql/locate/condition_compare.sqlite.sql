-- One Key(path) OP value condition as Tiled's adapter writes it on SQLite (every
-- operator: ==, !=, <, <=, >, >=); {op} is one of those, chosen by the caller.
-- Reads: nodes. Binds (qmark): the JSON path ('$."a"."b"'), the value.
JSON_EXTRACT(nodes.metadata, ?) {op} ?
