-- One refresh rotation, statement for statement what a refresh of a token the node knows
-- sends to PostgreSQL when it comes alone: PostgresTokenStore.rotateIfCurrent, a batch of
-- one (Sources/PostgresStore/PreparedStatements.swift, RotateBatch): one CALL of the
-- procedure tokend.rotate_batch (schema v5, PostgresSchema.version5), which commits before it
-- answers, at the session's synchronous_commit, its lock waits bounded as tokend bounds them at
-- its default 5 s store timeout (2,500 ms). (tokend sends the rotations of concurrent
-- clients as one batch; pgbench's clients each send their own.) Each client rotates its own
-- family: :n is the generation of its active token (pgbench -D n=0 starts every client at its
-- first token; refresh-setup.sql made the families). No subject cutoff (-1).
\set next :n + 1
CALL tokend.rotate_batch(ARRAY[sha256(convert_to('bench-' || :client_id || '-' || :n, 'UTF8'))],
    ARRAY['bench-' || :client_id], ARRAY[extract(epoch FROM now())::float8], ARRAY[-1::float8],
    ARRAY[sha256(convert_to('bench-' || :client_id || '-' || :next, 'UTF8'))],
    ARRAY[decode(repeat('5a', 760), 'hex')], ARRAY['bench-jti-' || :next],
    ARRAY[extract(epoch FROM now())::float8 + 3600], ARRAY['bench-user-' || :client_id],
    ARRAY['family=bench-' || :client_id || ' access_jti=bench-jti-' || :next], 2500, NULL);
\set n :next
