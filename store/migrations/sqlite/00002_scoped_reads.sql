-- +goose Up
-- Scoped reads of the change log are index range scans in seq order (see
-- store/events.go): one entity's events (the board, the doctor directory,
-- a topic), and one patient's events, with the entity in the index so that
-- a patient's topics are checked without reading the rows.
CREATE INDEX events_entity ON events (tenant_id, entity, seq);
DROP INDEX events_patient;
CREATE INDEX events_patient ON events (tenant_id, patient_id, seq, entity);

-- +goose Down
DROP INDEX events_patient;
CREATE INDEX events_patient ON events (tenant_id, patient_id, seq);
DROP INDEX events_entity;
