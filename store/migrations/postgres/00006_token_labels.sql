-- +goose Up
-- Token labels (models.TokenLabel): each entry stores its doctor's prefix
-- of the day ("A") and its label ("A3"). Entries queued before labels
-- existed keep no prefix and are labelled with the bare number; a doctor's
-- later entries of such a day keep it so (the prefix is the day's first
-- entry's). The index serves the prefixes already taken on a day.
ALTER TABLE queue_entries ADD COLUMN token_prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE queue_entries ADD COLUMN token_label TEXT NOT NULL DEFAULT '';
UPDATE queue_entries SET token_label = CAST(token AS TEXT);
CREATE INDEX queue_entries_day_prefix ON queue_entries (tenant_id, day, token_prefix);

-- +goose Down
DROP INDEX queue_entries_day_prefix;
ALTER TABLE queue_entries DROP COLUMN token_label;
ALTER TABLE queue_entries DROP COLUMN token_prefix;
