package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"gorm.io/gorm"
)

// Head is a tenant's log position: the last seq written and the last seq
// pruned (events after PrunedThrough and up to Seq are in the log).
type Head struct {
	TenantID      string
	Seq           int64
	PrunedThrough int64
}

func (Head) TableName() string { return "tenant_heads" }

func headOf(tx *gorm.DB, tenantID string) (Head, error) {
	var h Head
	err := tx.Where("tenant_id = ?", tenantID).Take(&h).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Head{TenantID: tenantID}, nil
	}
	if err != nil {
		return h, fmt.Errorf("read head: %w", err)
	}
	return h, nil
}

func cursorExpired(since int64, h Head) error {
	e := models.Errorf(models.EGONE, "cursor %d is older than the retained log (events after %d are kept); refetch the snapshot", since, h.PrunedThrough)
	if since > h.Seq {
		e = models.Errorf(models.EGONE, "cursor %d is ahead of the log (head %d); refetch the snapshot", since, h.Seq)
	}
	head := h.Seq
	e.Cursor = &head
	return e
}

// LogHead returns a tenant's log position.
func (s *Store) LogHead(ctx context.Context, tenantID string) (Head, error) {
	h, err := headOf(s.db.WithContext(ctx), tenantID)
	return h, s.wrap(ctx, "log head", err)
}

// Heads returns every tenant's head seq, for the relay's start and its
// safety-net scan.
func (s *Store) Heads(ctx context.Context) (map[string]int64, error) {
	var hs []Head
	if err := s.db.WithContext(ctx).Find(&hs).Error; err != nil {
		return nil, s.wrap(ctx, "heads", err)
	}
	m := make(map[string]int64, len(hs))
	for _, h := range hs {
		m[h.TenantID] = h.Seq
	}
	return m, nil
}

// ReadEvents returns the tenant's events after q.After in seq order,
// filtered by scope and topics in SQL.
func (s *Store) ReadEvents(ctx context.Context, q models.EventQuery) ([]models.Event, error) {
	evs, err := readEvents(s.db.WithContext(ctx), q)
	return evs, s.wrap(ctx, "read events", err)
}

func readEvents(tx *gorm.DB, q models.EventQuery) ([]models.Event, error) {
	db := tx.Where("tenant_id = ? AND seq > ?", q.TenantID, q.After)
	if q.Until > 0 {
		db = db.Where("seq <= ?", q.Until)
	}
	switch {
	case q.Scope.BoardOnly:
		db = db.Where("entity = ?", models.EntityBoard)
	case q.Scope.PatientID != "":
		db = db.Where("(patient_id = ? OR entity = ?)", q.Scope.PatientID, models.EntityBoard)
	}
	if q.Topics != nil {
		db = db.Where("entity IN ?", q.Topics.List())
	}
	var rows []eventRow
	if err := db.Order("seq").Limit(q.Limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	out := make([]models.Event, len(rows))
	for i := range rows {
		out[i] = rows[i].event()
	}
	return out, nil
}

// PollEvents reads up to q.Limit events after q.After visible to the scope
// and topics. The cursor advances past events the caller does not see, up
// to the head read in the same snapshot, so a filtered poll never rereads
// them; a cursor older than retention or ahead of the head is EGONE.
func (s *Store) PollEvents(ctx context.Context, q models.EventQuery) (*models.EventPage, error) {
	page := &models.EventPage{Events: []models.Event{}}
	err := s.read(ctx, func(tx *gorm.DB) error {
		h, err := headOf(tx, q.TenantID)
		if err != nil {
			return err
		}
		if q.After < h.PrunedThrough || q.After > h.Seq {
			return cursorExpired(q.After, h)
		}
		q.Until = h.Seq
		lim := q.Limit
		q.Limit = lim + 1
		evs, err := readEvents(tx, q)
		if err != nil {
			return err
		}
		page.Cursor = h.Seq
		if len(evs) > lim {
			evs = evs[:lim]
			page.HasMore = true
			page.Cursor = evs[lim-1].Seq
		}
		page.Events = evs
		return nil
	})
	if err != nil {
		return nil, s.wrap(ctx, "poll events", err)
	}
	return page, nil
}

// Prune deletes events older than the retention and idempotency keys and
// spent tickets past their use, and records per tenant the last pruned seq.
func (s *Store) Prune(ctx context.Context, retention time.Duration) (int64, error) {
	cutoff := s.now().Add(-retention).UTC()
	var total int64
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		type pruned struct {
			TenantID string
			MaxSeq   int64
		}
		var ps []pruned
		if err := tx.Model(&eventRow{}).Select("tenant_id, MAX(seq) AS max_seq").Where("at < ?", cutoff).Group("tenant_id").Scan(&ps).Error; err != nil {
			return fmt.Errorf("find prunable: %w", err)
		}
		for _, p := range ps {
			res := tx.Where("tenant_id = ? AND seq <= ?", p.TenantID, p.MaxSeq).Delete(&eventRow{})
			if res.Error != nil {
				return fmt.Errorf("prune events: %w", res.Error)
			}
			total += res.RowsAffected
			if err := tx.Model(&Head{}).Where("tenant_id = ? AND pruned_through < ?", p.TenantID, p.MaxSeq).Update("pruned_through", p.MaxSeq).Error; err != nil {
				return fmt.Errorf("record pruned: %w", err)
			}
		}
		if err := tx.Where("created_at < ?", s.now().Add(-24*time.Hour).UTC()).Delete(&idempotencyRow{}).Error; err != nil {
			return fmt.Errorf("prune idempotency keys: %w", err)
		}
		return tx.Exec("DELETE FROM spent_tickets WHERE expires_at < ?", s.now().UTC()).Error
	})
	return total, s.wrap(ctx, "prune", err)
}

// SpendTicket records a stream ticket's nonce as used; a second use of the
// same nonce answers EUNAUTHORIZED.
func (s *Store) SpendTicket(ctx context.Context, nonce string, expires time.Time) error {
	err := s.db.WithContext(ctx).Exec("INSERT INTO spent_tickets (nonce, expires_at) VALUES (?, ?)", nonce, expires.UTC()).Error
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return models.Errorf(models.EUNAUTHORIZED, "the stream ticket was already used")
	}
	return s.wrap(ctx, "spend ticket", err)
}

// board computes a doctor's board of a day, and the day's active entries
// (waiting, called, in progress) in order with their positions.
// d may be the doctor already loaded, or nil.
func (s *Store) board(tx *gorm.DB, tenantID string, d *models.Doctor, doctorID, day string) (models.Board, []*models.QueueEntry, error) {
	if d == nil {
		d = &models.Doctor{}
		if err := tx.Where("tenant_id = ? AND id = ?", tenantID, doctorID).Take(d).Error; err != nil {
			return models.Board{}, nil, fmt.Errorf("board doctor: %w", err)
		}
	}
	// One read of the doctor's day (a day's queue is small): the active
	// entries are ordered, the completed ones give the consultation estimate.
	var all []*models.QueueEntry
	if err := tx.Where("tenant_id = ? AND doctor_id = ? AND day = ?", tenantID, doctorID, day).Find(&all).Error; err != nil {
		return models.Board{}, nil, fmt.Errorf("board entries: %w", err)
	}
	var entries, done []*models.QueueEntry
	for _, q := range all {
		switch q.Status {
		case models.QueueWaiting, models.QueueCalled, models.QueueInProgress:
			entries = append(entries, q)
		case models.QueueCompleted:
			done = append(done, q)
		}
	}
	mins := models.ConsultMinutes(done, d.ConsultDefault(s.consult))
	models.OrderQueue(entries, mins)
	return models.NewBoard(d, day, entries, mins), entries, nil
}

// Boards returns the boards of the tenant's active doctors for today, and
// the cursor they are consistent with (subscribe or poll from it).
func (s *Store) Boards(ctx context.Context, tenantID string) ([]models.Board, int64, error) {
	out := []models.Board{}
	var cursor int64
	err := s.read(ctx, func(tx *gorm.DB) error {
		h, err := headOf(tx, tenantID)
		if err != nil {
			return err
		}
		cursor = h.Seq
		var ds []*models.Doctor
		if err := tx.Where("tenant_id = ? AND deleted_at IS NULL", tenantID).Order("name, id").Find(&ds).Error; err != nil {
			return fmt.Errorf("doctors: %w", err)
		}
		day := s.Today()
		for _, d := range ds {
			b, _, err := s.board(tx, tenantID, d, d.ID, day)
			if err != nil {
				return err
			}
			out = append(out, b)
		}
		return nil
	})
	return out, cursor, s.wrap(ctx, "boards", err)
}

// positions sets position and estimated wait on queue entries from their
// doctors' queues of the day.
func (s *Store) positions(tx *gorm.DB, tenantID string, qs []*models.QueueEntry) error {
	done := map[boardKey][]*models.QueueEntry{}
	for _, q := range qs {
		k := boardKey{q.DoctorID, q.Day}
		entries, ok := done[k]
		if !ok {
			_, e, err := s.board(tx, tenantID, nil, q.DoctorID, q.Day)
			if err != nil {
				return err
			}
			done[k], entries = e, e
		}
		for _, e := range entries {
			if e.ID == q.ID {
				q.Position, q.EstimatedWaitMinutes = e.Position, e.EstimatedWaitMinutes
			}
		}
	}
	return nil
}

func (s *Store) positionRecords(tx *gorm.DB, tenantID string, recs []models.Record) error {
	var qs []*models.QueueEntry
	for _, r := range recs {
		if q, ok := r.(*models.QueueEntry); ok && q.Status == models.QueueWaiting {
			qs = append(qs, q)
		}
	}
	return s.positions(tx, tenantID, qs)
}
