package store

import (
	"context"
	"encoding/json"

	"github.com/clinicpulse/clinicpulse/models"
)

// Recall calls a called queue entry again (the waiting room shows its token
// once more): recalls+1 and recalled_at = now, in one transaction with a
// queue.updated event and the doctor's queue.board event, whose last_call
// moves forward. An entry that is not called is ECONFLICT naming status;
// ifMatch > 0 requires the entry's current version (EPRECONDITION).
func (s *Store) Recall(ctx context.Context, id string, ifMatch int64) (json.RawMessage, error) {
	if _, err := access(ctx, models.EntityQueue, true); err != nil {
		return nil, err
	}
	return s.write(ctx, "recall queue entry", func(w *writer) (models.Record, error) {
		rec, err := w.load(models.EntityQueue, id, ifMatch)
		if err != nil {
			return nil, err
		}
		q := rec.(*models.QueueEntry)
		if err := q.Recall(w.now); err != nil {
			return nil, err
		}
		if err := w.save(q); err != nil {
			return nil, err
		}
		return q, nil
	})
}
