-- +goose Up
-- Archiving a patient is refused while they have work (active queue entries
-- today, appointments holding a slot, open visits): the first and third are
-- looked up by patient here (appointments by patient exist since 00004).
CREATE INDEX queue_entries_patient_day ON queue_entries (tenant_id, patient_id, day);
CREATE INDEX visits_patient_status ON visits (tenant_id, patient_id, status);

-- +goose Down
DROP INDEX visits_patient_status;
DROP INDEX queue_entries_patient_day;
