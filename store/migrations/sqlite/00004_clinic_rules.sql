-- +goose Up
-- Clinic rules (issue 12). A doctor's own default consultation, the prior of
-- the wait estimate (0 = the clinic's default); re-calls of a called queue
-- entry; indexes for the booking rule's overlap check, which looks up a
-- doctor's and a patient's appointments by start time (under the doctor's
-- and the patient's row locks, in the writing transaction).
ALTER TABLE doctors ADD COLUMN default_consult_minutes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_entries ADD COLUMN recalls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_entries ADD COLUMN recalled_at DATETIME;
CREATE INDEX appointments_doctor_starts ON appointments (tenant_id, doctor_id, starts_at);
CREATE INDEX appointments_patient_starts ON appointments (tenant_id, patient_id, starts_at);

-- +goose Down
DROP INDEX appointments_patient_starts;
DROP INDEX appointments_doctor_starts;
ALTER TABLE queue_entries DROP COLUMN recalled_at;
ALTER TABLE queue_entries DROP COLUMN recalls;
ALTER TABLE doctors DROP COLUMN default_consult_minutes;
