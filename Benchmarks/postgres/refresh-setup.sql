-- The reference of the refresh-rotation benchmark (BENCHMARKS.md, issue 11): one refresh
-- family per pgbench client, each with its first token, in the schema tokend created (run
-- tokend on the database once first). :clients is set with psql -v clients=N.
INSERT INTO tokend.refresh_families (id, subject, client_id, scope, dialect, created_at, expires_at)
SELECT 'bench-' || c, 'bench-user-' || c, 'bench', '', 'native', extract(epoch FROM now()),
    extract(epoch FROM now()) + 2592000
FROM generate_series(0, :clients - 1) AS c
ON CONFLICT (id) DO NOTHING;
INSERT INTO tokend.refresh_tokens (hash, family_id, state, created_at)
SELECT sha256(convert_to('bench-' || c || '-0', 'UTF8')), 'bench-' || c, 'active', extract(epoch FROM now())
FROM generate_series(0, :clients - 1) AS c
ON CONFLICT (hash) DO NOTHING;
