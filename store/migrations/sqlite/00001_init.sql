-- +goose Up
CREATE TABLE tenant_heads (
    tenant_id      TEXT PRIMARY KEY,
    seq            INTEGER NOT NULL DEFAULT 0,
    pruned_through INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE events (
    tenant_id  TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    type       TEXT NOT NULL,
    entity     TEXT NOT NULL,
    entity_id  TEXT NOT NULL,
    version    INTEGER NOT NULL,
    at         DATETIME NOT NULL,
    actor      TEXT NOT NULL,
    patient_id TEXT NOT NULL DEFAULT '',
    data       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX events_at ON events (at);
CREATE INDEX events_patient ON events (tenant_id, patient_id, seq);

CREATE TABLE patients (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    version       INTEGER NOT NULL,
    created_at    DATETIME NOT NULL,
    updated_at    DATETIME NOT NULL,
    deleted_at    DATETIME,
    name          TEXT NOT NULL,
    date_of_birth TEXT NOT NULL DEFAULT '',
    phone         TEXT NOT NULL DEFAULT '',
    mrn           TEXT NOT NULL
);
CREATE UNIQUE INDEX patients_mrn ON patients (tenant_id, mrn);
CREATE INDEX patients_tenant ON patients (tenant_id, id);

CREATE TABLE doctors (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    deleted_at DATETIME,
    name       TEXT NOT NULL,
    specialty  TEXT NOT NULL DEFAULT '',
    room       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX doctors_tenant ON doctors (tenant_id, id);

CREATE TABLE appointments (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    deleted_at DATETIME,
    patient_id TEXT NOT NULL,
    doctor_id  TEXT NOT NULL,
    starts_at  DATETIME NOT NULL,
    ends_at    DATETIME NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    status     TEXT NOT NULL
);
CREATE INDEX appointments_tenant ON appointments (tenant_id, id);
CREATE INDEX appointments_starts ON appointments (tenant_id, starts_at);

CREATE TABLE queue_entries (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    version        INTEGER NOT NULL,
    created_at     DATETIME NOT NULL,
    updated_at     DATETIME NOT NULL,
    deleted_at     DATETIME,
    patient_id     TEXT NOT NULL,
    doctor_id      TEXT NOT NULL,
    appointment_id TEXT,
    priority       TEXT NOT NULL,
    status         TEXT NOT NULL,
    token          INTEGER NOT NULL,
    day            TEXT NOT NULL,
    called_at      DATETIME,
    started_at     DATETIME,
    completed_at   DATETIME
);
CREATE INDEX queue_entries_tenant ON queue_entries (tenant_id, id);
CREATE UNIQUE INDEX queue_entries_token ON queue_entries (tenant_id, doctor_id, day, token);
CREATE INDEX queue_entries_appointment ON queue_entries (tenant_id, appointment_id);

CREATE TABLE visits (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    version        INTEGER NOT NULL,
    created_at     DATETIME NOT NULL,
    updated_at     DATETIME NOT NULL,
    deleted_at     DATETIME,
    patient_id     TEXT NOT NULL,
    doctor_id      TEXT NOT NULL,
    queue_entry_id TEXT,
    appointment_id TEXT,
    notes          TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL,
    closed_at      DATETIME
);
CREATE INDEX visits_tenant ON visits (tenant_id, id);
CREATE INDEX visits_queue_entry ON visits (tenant_id, queue_entry_id);
CREATE INDEX visits_appointment ON visits (tenant_id, appointment_id);

CREATE TABLE prescriptions (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    deleted_at DATETIME,
    visit_id   TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    doctor_id  TEXT NOT NULL,
    items      TEXT NOT NULL
);
CREATE INDEX prescriptions_tenant ON prescriptions (tenant_id, id);
CREATE INDEX prescriptions_visit ON prescriptions (tenant_id, visit_id);

CREATE TABLE invoices (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    deleted_at DATETIME,
    visit_id   TEXT,
    patient_id TEXT NOT NULL,
    currency   TEXT NOT NULL,
    lines      TEXT NOT NULL,
    total      INTEGER NOT NULL,
    status     TEXT NOT NULL
);
CREATE INDEX invoices_tenant ON invoices (tenant_id, id);

CREATE TABLE idempotency_keys (
    tenant_id    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response     TEXT NOT NULL,
    created_at   DATETIME NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE spent_tickets (
    nonce      TEXT PRIMARY KEY,
    expires_at DATETIME NOT NULL
);

-- +goose Down
DROP TABLE spent_tickets;
DROP TABLE idempotency_keys;
DROP TABLE invoices;
DROP TABLE prescriptions;
DROP TABLE visits;
DROP TABLE queue_entries;
DROP TABLE appointments;
DROP TABLE doctors;
DROP TABLE patients;
DROP TABLE events;
DROP TABLE tenant_heads;
