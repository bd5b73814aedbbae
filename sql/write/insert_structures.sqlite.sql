INSERT INTO structures (id, structure) VALUES (?, ?) ON CONFLICT (id) DO NOTHING
