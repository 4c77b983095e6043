package store

import "github.com/clinicpulse/clinicpulse/models"

// EventRead and DeltaRead expose the SQL of the log's scoped reads, for
// the tests that check their query plans.
func (s *Store) EventRead(q models.EventQuery) (string, []any, bool) { return eventRead(s.dialect, q) }

func (s *Store) DeltaRead(a models.Actor, entity string, since, until int64, limit int) (string, []any, bool) {
	return deltaRead(s.dialect, a, entity, since, until, limit)
}
