-- +goose Up
-- Idempotency keys are scoped to the caller by separate columns: tenant,
-- subject (the token's sub) and the caller's own key. Before, one column held
-- sub || ':' || key, so subject "u:a" with key "b" and subject "u" with key
-- "a:b" shared a row. Rows with exactly one ':' split unambiguously (neither
-- part can hold a colon) and are kept; the others, which could be either
-- caller's, are dropped. SQLite cannot change a primary key in place, so the
-- table is rebuilt.
CREATE TABLE idempotency_keys_v3 (
    tenant_id    TEXT NOT NULL,
    subject      TEXT NOT NULL DEFAULT '',
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response     TEXT NOT NULL,
    created_at   DATETIME NOT NULL,
    PRIMARY KEY (tenant_id, subject, key)
);
INSERT INTO idempotency_keys_v3 (tenant_id, subject, key, request_hash, response, created_at)
SELECT tenant_id, substr(key, 1, instr(key, ':') - 1), substr(key, instr(key, ':') + 1), request_hash, response, created_at
FROM idempotency_keys WHERE length(key) - length(replace(key, ':', '')) = 1;
DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_v3 RENAME TO idempotency_keys;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
-- The keys are a 24 h cache: going back forgets them.
DROP TABLE idempotency_keys;
CREATE TABLE idempotency_keys (
    tenant_id    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response     TEXT NOT NULL,
    created_at   DATETIME NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
