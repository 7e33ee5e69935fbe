-- One refresh rotation, statement for statement what PostgresTokenStore.updateRefreshToken
-- sends for a rotation (Sources/PostgresStore/PostgresTokenStore+Rows.swift:
-- fetchTokenAndFamily, rotate), in one transaction at the session's synchronous_commit.
-- Each client rotates its own family: :n is the generation of its active token (pgbench
-- -D n=0 starts every client at its first token; refresh-setup.sql made the families).
\set next :n + 1
BEGIN ISOLATION LEVEL READ COMMITTED;
SELECT t.hash, t.family_id, t.state, t.created_at, t.spent_at, t.successor_hash, t.successor_sealed, f.id, f.subject,
    f.client_id, f.scope, f.dialect, f.created_at, f.expires_at, f.revoked_at, f.revoked_reason, f.last_access_jti,
    f.last_access_expires_at
    FROM tokend.refresh_tokens t JOIN tokend.refresh_families f ON f.id = t.family_id
    WHERE t.hash = sha256(convert_to('bench-' || :client_id || '-' || :n, 'UTF8')) FOR UPDATE;
WITH spent AS (
    UPDATE tokend.refresh_tokens SET state = 'spent', spent_at = extract(epoch FROM now()),
        successor_hash = sha256(convert_to('bench-' || :client_id || '-' || :next, 'UTF8')),
        successor_sealed = decode(repeat('5a', 760), 'hex')
    WHERE hash = sha256(convert_to('bench-' || :client_id || '-' || :n, 'UTF8')) AND family_id = 'bench-' || :client_id
    RETURNING 1),
successor AS (
    INSERT INTO tokend.refresh_tokens (hash, family_id, state, created_at, spent_at, successor_hash, successor_sealed)
    SELECT sha256(convert_to('bench-' || :client_id || '-' || :next, 'UTF8')), 'bench-' || :client_id, 'active',
        extract(epoch FROM now()), NULL, NULL, NULL
    WHERE EXISTS (SELECT 1 FROM spent)
    ON CONFLICT (hash) DO NOTHING
    RETURNING 1),
family AS (
    UPDATE tokend.refresh_families SET last_access_jti = 'bench-jti-' || :next,
        last_access_expires_at = greatest(coalesce(last_access_expires_at, 0), extract(epoch FROM now()) + 3600)
    WHERE id = 'bench-' || :client_id AND EXISTS (SELECT 1 FROM successor)
    RETURNING subject),
event AS (
    INSERT INTO tokend.events (at, kind, subject, detail)
    SELECT extract(epoch FROM now()), 'refresh_rotated', family.subject,
        'family=bench-' || :client_id || ' access_jti=bench-jti-' || :next
    FROM family
    RETURNING 1)
SELECT (SELECT count(*) FROM spent), (SELECT count(*) FROM successor), (SELECT count(*) FROM event);
COMMIT;
\set n :next
