package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// ReadEvents returns up to q.Limit of the tenant's events after q.After (and
// up to q.Until when it is > 0) in seq order, those q.Scope and q.Topics
// see, as the scope receives them (models.Scope.ForAudience: no actor for
// display and patient audiences).
//
// Its cost is proportional to what the caller sees, whatever the log's
// size: the read is a union of index range scans (see logRanges), each
// stopping after q.Limit rows, merged in seq order. At most 8 × q.Limit
// rows are read from the table (3 × for a patient, 1 × for staff or a
// display without topics); a patient's range also steps over the index
// entries of their own events of other topics.
func (s *Store) ReadEvents(ctx context.Context, q models.EventQuery) ([]models.Event, error) {
	evs, err := s.readEvents(s.db.WithContext(ctx), q)
	return evs, s.wrap(ctx, "read events", err)
}

// eventColumns are the events table's columns as eventRow reads them.
const eventColumns = "tenant_id, seq, type, entity, entity_id, version, at, actor, patient_id, data"

// defaultReadLimit bounds a read whose query names no limit.
const defaultReadLimit = 1000

// logRange is one index range scan of a tenant's log, read in seq order
// from where it starts and stopped after the limit: the whole log (the
// primary key, tenant_id, seq), one entity's events (events_entity:
// tenant_id, entity, seq), or one patient's events of some entities
// (events_patient: tenant_id, patient_id, seq, entity — the entity is
// checked in the index).
type logRange struct {
	patient  string   // "": every patient's
	entities []string // nil: every entity; else one, or a patient's several
}

// logRanges returns the ranges whose union is what the scope sees of the
// topics (models.Scope.Reach): the whole log for staff without topics;
// else one range per entity the scope sees whole, and one of the patient's
// own events of the entities it sees in part. None: the scope sees nothing
// of the topics.
func logRanges(scope models.Scope, topics models.Topics) []logRange {
	if topics == nil && scope.SeesActors() {
		return []logRange{{}}
	}
	entities := topics.List()
	if topics == nil {
		entities = append(append([]string{}, models.Entities...), models.EntityBoard)
	}
	var out []logRange
	var own []string
	for _, e := range entities {
		switch scope.Reach(e) {
		case models.ReachAll:
			out = append(out, logRange{entities: []string{e}})
		case models.ReachOwn:
			own = append(own, e)
		}
	}
	if len(own) > 0 {
		out = append(out, logRange{patient: scope.PatientID, entities: own})
	}
	return out
}

// from appends the range's FROM and WHERE clauses on (after, until] to b,
// and their arguments to args. On SQLite the range names its index: without
// statistics (ANALYZE), SQLite may prefer the primary key's two-sided range
// on seq, which walks every entity's events.
func (r logRange) from(dialect string, b *strings.Builder, args []any, q models.EventQuery) []any {
	b.WriteString("FROM events ")
	if dialect == SQLite {
		switch {
		case r.patient != "":
			b.WriteString("INDEXED BY events_patient ")
		case r.entities != nil:
			b.WriteString("INDEXED BY events_entity ")
		}
	}
	b.WriteString("WHERE tenant_id = ?")
	args = append(args, q.TenantID)
	if r.patient != "" {
		b.WriteString(" AND patient_id = ?")
		args = append(args, r.patient)
	}
	switch len(r.entities) {
	case 0:
	case 1:
		b.WriteString(" AND entity = ?")
		args = append(args, r.entities[0])
	default:
		b.WriteString(" AND entity IN ?")
		args = append(args, r.entities)
	}
	b.WriteString(" AND seq > ?")
	args = append(args, q.After)
	if q.Until > 0 {
		b.WriteString(" AND seq <= ?")
		args = append(args, q.Until)
	}
	return args
}

// eventRead returns the SQL of a log read and its arguments: the ranges of
// the query merged by a UNION ALL ordered by seq and limited (the ranges are
// disjoint: an event has one entity and one patient). ok is false when the
// caller sees nothing of the topics.
//
// Each range stops after the limit. On Postgres each range is a subquery
// with its own ORDER BY seq LIMIT, planned as index scans under a Merge
// Append. On SQLite the ranges are the compound's arms, each pinned to its
// index (INDEXED BY), so each arm yields rows in seq order without sorting
// and the merge (a co-routine per arm) pulls only the rows it outputs;
// SQLite would sort each limited subquery's rows before merging them.
func eventRead(dialect string, q models.EventQuery) (query string, args []any, ok bool) {
	ranges := logRanges(q.Scope, q.Topics)
	if len(ranges) == 0 {
		return "", nil, false
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultReadLimit
	}
	var b strings.Builder
	if len(ranges) == 1 || dialect == SQLite {
		for i, r := range ranges {
			if i > 0 {
				b.WriteString(" UNION ALL ")
			}
			b.WriteString("SELECT " + eventColumns + " ")
			args = r.from(dialect, &b, args, q)
		}
		b.WriteString(" ORDER BY seq LIMIT ?")
		return b.String(), append(args, limit), true
	}
	for i, r := range ranges {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString("SELECT " + eventColumns + " FROM (SELECT " + eventColumns + " ")
		args = r.from(dialect, &b, args, q)
		b.WriteString(" ORDER BY seq LIMIT ?) AS r")
		b.WriteString(strconv.Itoa(i))
		args = append(args, limit)
	}
	b.WriteString(" ORDER BY seq LIMIT ?")
	return b.String(), append(args, limit), true
}

func (s *Store) readEvents(tx *gorm.DB, q models.EventQuery) ([]models.Event, error) {
	query, args, ok := eventRead(s.dialect, q)
	if !ok {
		return []models.Event{}, nil
	}
	var rows []eventRow
	if err := tx.Raw(query, args...).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	out := make([]models.Event, len(rows))
	for i := range rows {
		out[i] = q.Scope.ForAudience(rows[i].event())
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
		evs, err := s.readEvents(tx, q)
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
		pos := models.Position{Seq: page.Cursor}
		if n := len(evs); n > 0 && evs[n-1].Seq == page.Cursor {
			pos = models.EventPosition(&evs[n-1])
		} else if pos, err = positionAt(tx, q.TenantID, page.Cursor); err != nil {
			return err
		}
		page.Position = pos.String()
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
	b := models.NewBoard(d, day, entries, mins)
	if len(all) > 0 {
		b.TokenPrefix = all[0].TokenPrefix // every entry of the day has the same
	}
	return b, entries, nil
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
