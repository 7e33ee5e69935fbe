-- One refresh rotation, statement for statement what a refresh of a token the node knows
-- sends to PostgreSQL when it comes alone: PostgresTokenStore.rotateIfCurrent, a batch of
-- one (Sources/PostgresStore/PreparedStatements.swift, RotateBatch) in a transaction of its
-- own (BEGIN, the statement, COMMIT), at the session's synchronous_commit. (tokend sends the rotations of
-- concurrent clients as one batch; pgbench's clients each send their own.) Each client rotates
-- its own family: :n is the generation of its active token (pgbench -D n=0 starts every client
-- at its first token; refresh-setup.sql made the families). No subject cutoff (-1).
\set next :n + 1
BEGIN ISOLATION LEVEL READ COMMITTED;
WITH input AS (
    SELECT * FROM unnest(ARRAY[sha256(convert_to('bench-' || :client_id || '-' || :n, 'UTF8'))],
        ARRAY['bench-' || :client_id], ARRAY[extract(epoch FROM now())::float8], ARRAY[-1::float8],
        ARRAY[sha256(convert_to('bench-' || :client_id || '-' || :next, 'UTF8'))],
        ARRAY[decode(repeat('5a', 760), 'hex')], ARRAY['bench-jti-' || :next],
        ARRAY[extract(epoch FROM now())::float8 + 3600], ARRAY['bench-user-' || :client_id],
        ARRAY['family=bench-' || :client_id || ' access_jti=bench-jti-' || :next])
        WITH ORDINALITY AS i(hash, family_id, now, cutoff, successor, sealed, jti, access_expires_at,
            subject, detail, position)),
current AS (
    SELECT t.hash FROM tokend.refresh_tokens t
        JOIN tokend.refresh_families f ON f.id = t.family_id
        JOIN input i ON i.hash = t.hash AND i.family_id = t.family_id
    WHERE t.state = 'active' AND f.revoked_at IS NULL AND f.expires_at > i.now AND f.created_at > i.cutoff
    ORDER BY t.hash
    FOR UPDATE OF t, f),
spent AS (
    UPDATE tokend.refresh_tokens t SET state = 'spent', spent_at = i.now, successor_hash = i.successor,
        successor_sealed = i.sealed
    FROM input i
    WHERE t.hash = i.hash AND t.hash IN (SELECT hash FROM current)
    RETURNING t.hash),
successor AS (
    INSERT INTO tokend.refresh_tokens (hash, family_id, state, created_at)
    SELECT i.successor, i.family_id, 'active', i.now FROM input i JOIN spent s ON s.hash = i.hash
    RETURNING 1),
family AS (
    UPDATE tokend.refresh_families f SET last_access_jti = i.jti,
        last_access_expires_at = greatest(coalesce(f.last_access_expires_at, 0), i.access_expires_at)
    FROM input i JOIN spent s ON s.hash = i.hash
    WHERE f.id = i.family_id
    RETURNING 1),
event AS (
    INSERT INTO tokend.events (at, kind, subject, detail)
    SELECT i.now, 'refresh_rotated', i.subject, i.detail FROM input i JOIN spent s ON s.hash = i.hash
    ORDER BY i.position
    RETURNING 1)
SELECT s.hash, (SELECT count(*) FROM successor), (SELECT count(*) FROM family), (SELECT count(*) FROM event)
FROM spent s;
COMMIT;
\set n :next
