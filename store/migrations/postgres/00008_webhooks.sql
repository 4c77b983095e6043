-- +goose Up
-- Webhook subscriptions (issue 15): where a tenant's events are pushed, the
-- signing secrets, and the delivery state: the cursor (last seq delivered,
-- advanced only after a 2xx), the run of failures and the next attempt, and
-- the lease that lets one instance at a time deliver a subscription.
CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    version         BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    deleted_at      TIMESTAMPTZ,
    url             TEXT NOT NULL,
    topics          TEXT NOT NULL DEFAULT '',
    enabled         BOOLEAN NOT NULL,
    disabled_reason TEXT NOT NULL DEFAULT '',
    secret          TEXT NOT NULL,
    previous_secret TEXT NOT NULL DEFAULT '',
    previous_until  TIMESTAMPTZ,
    delivered_seq   BIGINT NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL DEFAULT 0,
    lease_owner     TEXT NOT NULL DEFAULT '',
    lease_until_ms  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id, id);

-- The recent delivery attempts of each subscription (the last few hundred
-- are kept).
CREATE TABLE webhook_deliveries (
    id         BIGSERIAL PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    first_seq  BIGINT NOT NULL,
    last_seq   BIGINT NOT NULL,
    status     INTEGER NOT NULL,
    result     TEXT NOT NULL,
    latency_ms BIGINT NOT NULL,
    error      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, id);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
