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
ALTER TABLE prescriptions ADD COLUMN prescribed_at TIMESTAMPTZ;
UPDATE prescriptions SET prescribed_at = created_at;

-- +goose Down
ALTER TABLE prescriptions DROP COLUMN prescribed_at;
ALTER TABLE prescriptions DROP COLUMN prescribed_by;
DROP INDEX invoices_one_per_visit;
