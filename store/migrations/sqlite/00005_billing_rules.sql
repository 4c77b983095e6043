-- +goose Up
-- At most one invoice that is not void per visit (a void invoice makes room
-- for its replacement). The store checks it under the visit's row lock and
-- names the existing invoice; this index is the backstop for races. Older
-- databases may hold several: all but the oldest (lowest id) are voided.
UPDATE invoices SET status = 'void'
WHERE visit_id IS NOT NULL AND status <> 'void' AND deleted_at IS NULL
  AND EXISTS (SELECT 1 FROM invoices o
              WHERE o.tenant_id = invoices.tenant_id AND o.visit_id = invoices.visit_id
                AND o.status <> 'void' AND o.deleted_at IS NULL AND o.id < invoices.id);
CREATE UNIQUE INDEX invoices_one_per_visit ON invoices (tenant_id, visit_id)
    WHERE visit_id IS NOT NULL AND status <> 'void' AND deleted_at IS NULL;

-- Who prescribed and when. Only the visit's doctor prescribes from now on;
-- for older prescriptions the prescriber was not recorded (''), and the time
-- is when the row was created.
ALTER TABLE prescriptions ADD COLUMN prescribed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE prescriptions ADD COLUMN prescribed_at DATETIME;
UPDATE prescriptions SET prescribed_at = created_at;

-- Patient search (?q=): each patient's search tokens (models.SearchTokens:
-- folded name words, the MRN, the phone's digits reversed), kept in the
-- write's transaction. The primary key serves exact tokens and prefixes as
-- byte ranges (token >= p AND token < p || U+10FFFF); Postgres compares in
-- byte order only under COLLATE "C". Patients that exist before this
-- migration are indexed by the store when it opens.
CREATE TABLE patient_search (
    tenant_id  TEXT NOT NULL,
    token      TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, token, patient_id)
);
CREATE INDEX patient_search_patient ON patient_search (patient_id);

-- +goose Down
DROP TABLE patient_search;
ALTER TABLE prescriptions DROP COLUMN prescribed_at;
ALTER TABLE prescriptions DROP COLUMN prescribed_by;
DROP INDEX invoices_one_per_visit;
