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

-- +goose Down
DROP INDEX invoices_one_per_visit;
