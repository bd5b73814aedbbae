INSERT INTO structures (id, structure) VALUES (%s, %s::jsonb) ON CONFLICT (id) DO NOTHING
