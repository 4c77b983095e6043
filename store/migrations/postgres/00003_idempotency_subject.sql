-- +goose Up
-- Idempotency keys are scoped to the caller by separate columns: tenant,
-- subject (the token's sub) and the caller's own key. Before, one column held
-- sub || ':' || key, so subject "u:a" with key "b" and subject "u" with key
-- "a:b" shared a row. Rows with exactly one ':' split unambiguously (neither
-- part can hold a colon) and are kept; the others, which could be either
-- caller's, are dropped: a repeat of such a request within the 24 h the keys
-- are kept runs again instead of answering another caller's response.
-- subject defaults to '' (no caller has an empty sub) so that an instance
-- still running the old code keeps writing, in rows that never match new ones.
ALTER TABLE idempotency_keys ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
DELETE FROM idempotency_keys WHERE length(key) - length(replace(key, ':', '')) <> 1;
UPDATE idempotency_keys SET subject = split_part(key, ':', 1), key = substr(key, strpos(key, ':') + 1);
ALTER TABLE idempotency_keys ADD PRIMARY KEY (tenant_id, subject, key);

-- +goose Down
-- The old single-column key cannot hold two callers' equal keys apart; the
-- keys are a 24 h cache, so going back forgets them.
DELETE FROM idempotency_keys;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys DROP COLUMN subject;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (tenant_id, key);
