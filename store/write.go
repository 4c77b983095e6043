package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// eventRow is an event as the events table keeps it.
type eventRow struct {
	TenantID  string
	Seq       int64
	Type      string
	Entity    string
	EntityID  string
	Version   int64
	At        time.Time
	Actor     string
	PatientID string
	Data      string
}

func (eventRow) TableName() string { return "events" }

func (r *eventRow) event() models.Event {
	return models.Event{
		Seq: r.Seq, Type: r.Type, Entity: r.Entity, ID: r.EntityID, Version: r.Version,
		At: r.At.UTC(), Actor: r.Actor, Data: json.RawMessage(r.Data), TenantID: r.TenantID, PatientID: r.PatientID,
	}
}

// idempotencyRow is a recorded response, keyed by tenant, the caller's
// subject and the caller's own key in three columns (migration 00003), so
// that no two callers' keys can meet whatever characters they hold.
type idempotencyRow struct {
	TenantID    string
	Subject     string
	Key         string
	RequestHash string
	Response    string
	CreatedAt   time.Time
}

func (idempotencyRow) TableName() string { return "idempotency_keys" }

// change is one event the transaction will append.
type change struct {
	rec models.Record // nil for a board event
	op  string
	// board events
	board *models.Board
}

type boardKey struct{ doctorID, day string }

// writer is the state of one write transaction.
type writer struct {
	s       *Store
	tx      *gorm.DB
	ctx     context.Context
	actor   models.Actor
	now     time.Time
	changes []change
	boards  []boardKey
	// onSeqs run in the transaction once its events have their seqs, with
	// the seq before the write's first event.
	onSeqs  []func(before int64) error
	doctors map[string]*models.Doctor // locked in this transaction
	// lastTag is the tag of the write's last event (finish).
	lastTag string
}

// emit records that rec was created, updated or deleted in this transaction.
func (w *writer) emit(rec models.Record, op string) {
	w.changes = append(w.changes, change{rec: rec, op: op})
	if q, ok := rec.(*models.QueueEntry); ok {
		w.touchBoard(q.DoctorID, q.Day)
	}
}

// touchBoard records that a doctor's board of a day changed.
func (w *writer) touchBoard(doctorID, day string) {
	k := boardKey{doctorID, day}
	for _, b := range w.boards {
		if b == k {
			return
		}
	}
	w.boards = append(w.boards, k)
}

// lock adds FOR UPDATE on Postgres; SQLite's single writer needs none.
func (w *writer) lock() *gorm.DB {
	if w.s.dialect == Postgres {
		return w.tx.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return w.tx
}

// errReplay carries the stored response of a repeated Idempotency-Key.
type errReplay struct{ body json.RawMessage }

func (errReplay) Error() string { return "idempotent replay" }

// write runs fn in a transaction and appends the events it emitted. It
// retries a transaction Postgres aborted for a deadlock or serialization
// failure. It returns the JSON of primary (marshalled after the
// transaction's board positions are known), or the stored response of a
// repeated Idempotency-Key.
func (s *Store) write(ctx context.Context, op string, fn func(w *writer) (models.Record, error)) (json.RawMessage, error) {
	actor, ok := models.ActorFromContext(ctx)
	if !ok || actor.TenantID == "" {
		return nil, models.Errorf(models.EUNAUTHORIZED, "no tenant")
	}
	idem, hasIdem := models.IdempotencyKeyFromContext(ctx)
	for attempt := 0; ; attempt++ {
		var body json.RawMessage
		var head int64
		var appended int
		var lastTag string
		err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			w := &writer{s: s, tx: tx, ctx: ctx, actor: actor, now: models.Timestamp(s.now())}
			if hasIdem {
				if err := w.checkIdempotency(idem); err != nil {
					return err
				}
			}
			primary, err := fn(w)
			if err != nil {
				return err
			}
			if head, err = w.finish(); err != nil {
				return err
			}
			for _, fn := range w.onSeqs {
				if err := fn(head - int64(len(w.changes))); err != nil {
					return err
				}
			}
			appended, lastTag = len(w.changes), w.lastTag
			if primary != nil {
				if body, err = json.Marshal(primary); err != nil {
					return fmt.Errorf("marshal: %w", err)
				}
			}
			if hasIdem {
				row := idempotencyRow{TenantID: actor.TenantID, Subject: actor.Subject, Key: idem.Key, RequestHash: idem.Hash, Response: string(body), CreatedAt: w.now}
				if err := tx.Create(&row).Error; err != nil {
					return fmt.Errorf("idempotency key: %w", err)
				}
			}
			return nil
		})
		var replay errReplay
		switch {
		case err == nil:
			if head > 0 && s.commit != nil {
				s.commit(actor.TenantID, head, appended)
			}
			s.report(ctx, actor.TenantID, head, lastTag)
			return body, nil
		case errors.As(err, &replay):
			s.report(ctx, actor.TenantID, 0, "")
			return replay.body, nil
		case hasIdem && errors.Is(err, gorm.ErrDuplicatedKey) && attempt < 3:
			continue // a concurrent request with the same key won; read its result
		case retryable(err) && attempt < 5:
			continue
		}
		return nil, s.wrap(ctx, op, err)
	}
}

// report fills in the context's WritePosition, if any: the write's last
// seq, or when it appended nothing (a replay of an Idempotency-Key, whose
// events committed with its key) the tenant's head now. If the head cannot
// be read, the position stays 0 (unknown): the write itself is committed.
func (s *Store) report(ctx context.Context, tenantID string, last int64, tag string) {
	pos, ok := models.WritePositionFromContext(ctx)
	if !ok {
		return
	}
	if last == 0 {
		h, err := headOf(s.db.WithContext(ctx), tenantID)
		if err != nil {
			return
		}
		last = h.Seq
		if p, err := positionAt(s.db.WithContext(ctx), tenantID, last); err == nil {
			tag = p.Tag
		}
	}
	pos.Seq, pos.Tag = last, tag
}

// retryable reports a Postgres deadlock or serialization failure.
func retryable(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "40P01" || pg.Code == "40001")
}

func (w *writer) checkIdempotency(k models.IdempotencyKey) error {
	var row idempotencyRow
	err := w.tx.Where("tenant_id = ? AND subject = ? AND key = ?", w.actor.TenantID, w.actor.Subject, k.Key).Take(&row).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("idempotency lookup: %w", err)
	case row.RequestHash != k.Hash:
		return models.Errorf(models.EUNPROCESSABLE, "Idempotency-Key was already used with a different request")
	}
	return errReplay{body: json.RawMessage(row.Response)}
}

// finish computes the boards touched, allocates the events' seqs from the
// tenant's counter row and appends them. The counter row's lock is taken
// last and held to commit, so transactions of one tenant commit in seq order.
func (w *writer) finish() (int64, error) {
	for _, k := range w.boards {
		b, entries, err := w.s.board(w.tx, w.actor.TenantID, w.doctors[k.doctorID], k.doctorID, k.day)
		if err != nil {
			return 0, err
		}
		for _, c := range w.changes {
			if q, ok := c.rec.(*models.QueueEntry); ok && q.DoctorID == k.doctorID && q.Day == k.day {
				for _, e := range entries {
					if e.ID == q.ID {
						q.Position, q.EstimatedWaitMinutes = e.Position, e.EstimatedWaitMinutes
					}
				}
			}
		}
		w.changes = append(w.changes, change{op: models.OpBoard, board: &b})
	}
	if len(w.changes) == 0 {
		return 0, nil
	}
	n := int64(len(w.changes))
	var head int64
	upsert := `INSERT INTO tenant_heads (tenant_id, seq, pruned_through) VALUES (?, ?, 0)
ON CONFLICT (tenant_id) DO UPDATE SET seq = tenant_heads.seq + excluded.seq RETURNING seq`
	var err error
	if w.s.dialect == Postgres {
		// The NOTIFY rides on the same round trip: a nudge for other
		// instances, delivered by Postgres at commit. Its payload is only
		// tenant and head (payloads are capped at 8000 bytes).
		err = w.tx.Raw(`WITH h AS (`+upsert+`) SELECT h.seq, pg_notify(?, ? || ' ' || h.seq) FROM h`,
			w.actor.TenantID, n, NotifyChannel, w.actor.TenantID).Row().Scan(&head, new(string))
	} else {
		err = w.tx.Raw(upsert, w.actor.TenantID, n).Scan(&head).Error
	}
	if err != nil {
		return 0, fmt.Errorf("allocate seq: %w", err)
	}
	rows := make([]eventRow, 0, n)
	for i, c := range w.changes {
		r := eventRow{TenantID: w.actor.TenantID, Seq: head - n + 1 + int64(i), At: w.now, Actor: w.actor.Subject}
		var data any
		if c.board != nil {
			r.Entity, r.EntityID, data = models.EntityBoard, c.board.DoctorID, c.board
		} else {
			m := c.rec.Base()
			r.Entity, r.EntityID, r.Version, r.PatientID = c.rec.Entity(), m.ID, m.Version, c.rec.Patient()
			if c.op != models.OpDeleted {
				data = c.rec
			}
		}
		r.Type = models.EventType(r.Entity, c.op)
		b, err := json.Marshal(data)
		if err != nil {
			return 0, fmt.Errorf("marshal event: %w", err)
		}
		r.Data = string(b)
		rows = append(rows, r)
	}
	// The write's position (X-Cursor) carries the tag of its last event,
	// as a reader of the log computes it.
	last := rows[len(rows)-1].event()
	w.lastTag = models.EventTag(&last)
	if err := w.tx.CreateInBatches(&rows, 200).Error; err != nil {
		return 0, fmt.Errorf("append events: %w", err)
	}
	return head, nil
}

// NotifyChannel is the Postgres channel that announces new events.
const NotifyChannel = "clinicpulse_events"
