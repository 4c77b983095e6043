package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"gorm.io/gorm"
)

// access checks that the actor may read (write=false) or write the entity,
// and returns the patient its reads are limited to ("" for staff).
func access(ctx context.Context, entity string, write bool) (models.Actor, error) {
	a, ok := models.ActorFromContext(ctx)
	if !ok || a.TenantID == "" {
		return a, models.Errorf(models.EUNAUTHORIZED, "no tenant")
	}
	switch {
	case a.Role.Staff():
		return a, nil
	case a.Role == models.RolePatient && !write:
		return a, nil
	}
	return a, models.Errorf(models.EFORBIDDEN, "a %s token cannot %s %s", a.Role, map[bool]string{true: "change", false: "read"}[write], entity)
}

// visible reports whether the actor's scope reaches rec (models.Scope.Reach):
// a patient reads the doctor directory and their own records.
func visible(a models.Actor, rec models.Record) bool {
	switch a.Scope().Reach(rec.Entity()) {
	case models.ReachAll:
		return true
	case models.ReachOwn:
		return rec.Patient() == a.Subject
	}
	return false
}

// Create validates rec, applies its entity's creation rules and saves it with
// its events. It returns the record's JSON (or, for a repeated
// Idempotency-Key, the first response).
func (s *Store) Create(ctx context.Context, rec models.Record) (json.RawMessage, error) {
	if _, err := access(ctx, rec.Entity(), true); err != nil {
		return nil, err
	}
	return s.write(ctx, "create "+rec.Entity(), func(w *writer) (models.Record, error) {
		if err := w.create(rec); err != nil {
			return nil, err
		}
		return rec, nil
	})
}

// Find returns the record of the entity with the id, ENOTFOUND when it does
// not exist in the caller's tenant, was deleted, or is not the caller's.
func (s *Store) Find(ctx context.Context, entity, id string) (models.Record, error) {
	a, err := access(ctx, entity, false)
	if err != nil {
		return nil, err
	}
	if !models.ValidID(entity, id) {
		return nil, models.NotFound(singular(entity))
	}
	rec := models.Resources[entity].New()
	err = s.db.WithContext(ctx).Where("tenant_id = ? AND id = ? AND deleted_at IS NULL", a.TenantID, id).Take(rec).Error
	if errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && !visible(a, rec)) {
		return nil, models.NotFound(singular(entity))
	}
	if err != nil {
		return nil, s.wrap(ctx, "find "+entity, err)
	}
	if q, ok := rec.(*models.QueueEntry); ok {
		if err := s.positions(s.db.WithContext(ctx), a.TenantID, []*models.QueueEntry{q}); err != nil {
			return nil, s.wrap(ctx, "find queue", err)
		}
	}
	return rec, nil
}

// Update applies a partial update (a *models.<Entity>Update) to the record.
// ifMatch > 0 requires the record's current version to equal it.
func (s *Store) Update(ctx context.Context, entity, id string, ifMatch int64, update any) (json.RawMessage, error) {
	if _, err := access(ctx, entity, true); err != nil {
		return nil, err
	}
	return s.write(ctx, "update "+entity, func(w *writer) (models.Record, error) {
		rec, err := w.load(entity, id, ifMatch)
		if err != nil {
			return nil, err
		}
		if err := w.update(rec, update); err != nil {
			return nil, err
		}
		return rec, nil
	})
}

// Delete takes the record out of the tenant's lists (patients and doctors
// are archived; nothing is erased).
func (s *Store) Delete(ctx context.Context, entity, id string, ifMatch int64) error {
	if _, err := access(ctx, entity, true); err != nil {
		return err
	}
	if !models.Resources[entity].Deletable {
		return models.Errorf(models.EMETHOD, "%s cannot be deleted; change their status instead", entity)
	}
	_, err := s.write(ctx, "delete "+entity, func(w *writer) (models.Record, error) {
		rec, err := w.load(entity, id, ifMatch)
		if err != nil {
			return nil, err
		}
		if err := w.delete(rec); err != nil {
			return nil, err
		}
		t := w.now
		rec.Base().DeletedAt = &t
		rec.Base().Touch(w.actor.TenantID, "", w.now)
		if err := w.tx.Save(rec).Error; err != nil {
			return nil, fmt.Errorf("delete: %w", err)
		}
		if rec.Entity() == models.EntityPatient {
			// An archived patient is not searchable (the search's page
			// limit relies on tokens of live patients only).
			if err := w.tx.Where("patient_id = ?", rec.Base().ID).Delete(&searchRow{}).Error; err != nil {
				return nil, fmt.Errorf("delete: unindex patient: %w", err)
			}
		}
		w.emit(rec, models.OpDeleted)
		return nil, nil
	})
	return err
}

// load reads a record for a write, locking its doctor's row first on
// Postgres so that every write touching a doctor's queue takes locks in one
// order (doctor, then patient for an appointment, then records), then the
// record itself.
func (w *writer) load(entity, id string, ifMatch int64) (models.Record, error) {
	if !models.ValidID(entity, id) {
		return nil, models.NotFound(singular(entity))
	}
	rec := models.Resources[entity].New()
	q := w.tx.Where("tenant_id = ? AND id = ? AND deleted_at IS NULL", w.actor.TenantID, id)
	if d := doctorOf(rec); d != nil && w.s.dialect == Postgres {
		if err := q.Take(rec).Error; err != nil {
			return nil, notFound(err, entity)
		}
		if _, err := w.lockDoctor(*d, true); err != nil {
			return nil, err
		}
		if a, ok := rec.(*models.Appointment); ok {
			if _, err := w.lockPatient(a.PatientID, true); err != nil {
				return nil, err
			}
		}
		rec = models.Resources[entity].New()
		q = w.tx.Where("tenant_id = ? AND id = ? AND deleted_at IS NULL", w.actor.TenantID, id)
	}
	if err := w.lockQuery(q).Take(rec).Error; err != nil {
		return nil, notFound(err, entity)
	}
	if ifMatch > 0 && rec.Base().Version != ifMatch {
		return nil, models.Errorf(models.EPRECONDITION, "%s is at version %d, not %d", singular(entity), rec.Base().Version, ifMatch)
	}
	return rec, nil
}

func (w *writer) lockQuery(q *gorm.DB) *gorm.DB {
	if w.s.dialect == Postgres {
		return q.Clauses(lockingUpdate)
	}
	return q
}

// doctorOf returns a pointer to the doctor id of records that affect a
// doctor's queue, nil for others.
func doctorOf(rec models.Record) *string {
	switch r := rec.(type) {
	case *models.Appointment:
		return &r.DoctorID
	case *models.QueueEntry:
		return &r.DoctorID
	case *models.Visit:
		return &r.DoctorID
	}
	return nil
}

func notFound(err error, entity string) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return models.NotFound(singular(entity))
	}
	return fmt.Errorf("load %s: %w", entity, err)
}

// singular names one record of an entity in messages.
func singular(entity string) string {
	switch entity {
	case models.EntityQueue:
		return "queue entry"
	case models.EntityPatient:
		return "patient"
	case models.EntityDoctor:
		return "doctor"
	case models.EntityAppointment:
		return "appointment"
	case models.EntityVisit:
		return "visit"
	case models.EntityPrescription:
		return "prescription"
	case models.EntityInvoice:
		return "invoice"
	case models.EntityWebhook:
		return "webhook"
	}
	return entity
}

// List returns a page of the entity's records and the cursor they are
// consistent with, or with q.Since the records changed after that cursor.
func (s *Store) List(ctx context.Context, entity string, q models.ListQuery) (*models.Page, error) {
	a, err := access(ctx, entity, false)
	if err != nil {
		return nil, err
	}
	page := &models.Page{Items: []models.Record{}}
	err = s.read(ctx, func(tx *gorm.DB) error {
		h, err := headOf(tx, a.TenantID)
		if err != nil {
			return err
		}
		page.Cursor = h.Seq
		if q.Since > 0 {
			if q.Since < h.PrunedThrough || q.Since > h.Seq {
				return cursorExpired(q.Since, h)
			}
			return s.delta(tx, a, entity, q, page)
		}
		db := s.filter(tx, a, entity, q).Where("deleted_at IS NULL")
		if q.After != "" {
			db = db.Where("id > ?", q.After)
		}
		rows := newSlice(entity)
		if err := db.Order("id").Limit(q.Limit + 1).Find(rows.ptr).Error; err != nil {
			return fmt.Errorf("list %s: %w", entity, err)
		}
		recs := rows.records()
		if len(recs) > q.Limit {
			recs = recs[:q.Limit]
			page.Next = recs[len(recs)-1].Base().ID
		}
		page.Items = recs
		return s.positionRecords(tx, a.TenantID, recs)
	})
	if err != nil {
		return nil, s.wrap(ctx, "list "+entity, err)
	}
	return page, nil
}

// delta fills page with the records of the entity changed after q.Since,
// live ones in Items and deleted ids in Deleted.
//
// It reads the entity's events the caller sees in (q.Since, cursor] as one
// index range (events_entity, or events_patient for a patient's own
// records), at most s.maxDelta of them: a longer delta answers EGONE, so
// the client refetches the snapshot a page at a time instead.
func (s *Store) delta(tx *gorm.DB, a models.Actor, entity string, q models.ListQuery, page *models.Page) error {
	page.Deleted = []string{}
	query, args, ok := deltaRead(s.dialect, a, entity, q.Since, page.Cursor, s.maxDelta+1)
	if !ok {
		return nil
	}
	var changed []string
	if err := tx.Raw(query, args...).Scan(&changed).Error; err != nil {
		return fmt.Errorf("delta %s: %w", entity, err)
	}
	if len(changed) > s.maxDelta {
		head := page.Cursor
		e := models.Errorf(models.EGONE, "more than %d changes of %s after cursor %d; refetch the snapshot", s.maxDelta, entity, q.Since)
		e.Cursor = &head
		return e
	}
	seen := make(map[string]bool, len(changed))
	ids := make([]string, 0, len(changed))
	for _, id := range changed {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		rows := newSlice(entity)
		if err := s.filter(tx, a, entity, q).Where("id IN ?", chunk).Order("id").Find(rows.ptr).Error; err != nil {
			return fmt.Errorf("delta %s: %w", entity, err)
		}
		for _, r := range rows.records() {
			if r.Base().DeletedAt != nil {
				page.Deleted = append(page.Deleted, r.Base().ID)
			} else {
				page.Items = append(page.Items, r)
			}
		}
	}
	return s.positionRecords(tx, a.TenantID, page.Items)
}

// deltaRead returns the SQL of a delta's read of the log: the ids of the
// entity's events in (since, until] the actor sees, in seq order, at most
// limit. ok is false when the actor sees none of the entity.
func deltaRead(dialect string, a models.Actor, entity string, since, until int64, limit int) (query string, args []any, ok bool) {
	r := logRange{entities: []string{entity}}
	switch a.Scope().Reach(entity) {
	case models.ReachNone:
		return "", nil, false
	case models.ReachOwn:
		r.patient = a.Subject
	}
	var b strings.Builder
	b.WriteString("SELECT entity_id ")
	args = r.from(dialect, &b, nil, models.EventQuery{TenantID: a.TenantID, After: since, Until: until})
	b.WriteString(" ORDER BY seq LIMIT ?")
	return b.String(), append(args, limit), true
}

// filter scopes a query on the entity's table to the tenant, the caller's
// reach (models.Scope.Reach) and the list filters.
func (s *Store) filter(tx *gorm.DB, a models.Actor, entity string, q models.ListQuery) *gorm.DB {
	db := tx.Table(tableOf(entity)).Where("tenant_id = ?", a.TenantID)
	switch a.Scope().Reach(entity) {
	case models.ReachNone:
		db = db.Where("1 = 0")
	case models.ReachOwn:
		if entity == models.EntityPatient {
			db = db.Where("id = ?", a.Subject)
		} else {
			db = db.Where("patient_id = ?", a.Subject)
		}
	}
	if q.Search != nil && entity == models.EntityPatient {
		limit := 0
		if q.Since == 0 && len(q.Filters) == 0 && a.Role != models.RolePatient {
			limit = q.Limit + 1
		}
		db = search(db, a.TenantID, q.Search, q.After, limit)
	}
	for k, v := range q.Filters {
		switch {
		case k == "date" && entity == models.EntityAppointment:
			day, _ := time.ParseInLocation(time.DateOnly, v, s.loc)
			db = db.Where("starts_at >= ? AND starts_at < ?", day.UTC(), day.AddDate(0, 0, 1).UTC())
		case k == "date":
			db = db.Where("day = ?", v)
		default:
			// k was checked against the resource's filter names by the caller.
			db = db.Where(k+" = ?", v)
		}
	}
	return db
}

// read runs fn in a read-only transaction that sees one snapshot.
func (s *Store) read(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if s.dialect == Postgres {
		return s.db.WithContext(ctx).Transaction(fn, &sqlTxRepeatableRead)
	}
	return s.db.WithContext(ctx).Transaction(fn)
}

func tableOf(entity string) string {
	if entity == models.EntityQueue {
		return "queue_entries"
	}
	return entity
}

// recordSlice holds a typed slice for GORM to fill.
type recordSlice struct {
	ptr     any
	records func() []models.Record
}

func newSlice(entity string) recordSlice {
	switch entity {
	case models.EntityPatient:
		return typed[models.Patient]()
	case models.EntityDoctor:
		return typed[models.Doctor]()
	case models.EntityAppointment:
		return typed[models.Appointment]()
	case models.EntityQueue:
		return typed[models.QueueEntry]()
	case models.EntityVisit:
		return typed[models.Visit]()
	case models.EntityPrescription:
		return typed[models.Prescription]()
	case models.EntityInvoice:
		return typed[models.Invoice]()
	}
	panic("store: unknown entity " + entity)
}

func typed[T any, P interface {
	*T
	models.Record
}]() recordSlice {
	var rows []*T
	return recordSlice{ptr: &rows, records: func() []models.Record {
		out := make([]models.Record, len(rows))
		for i, r := range rows {
			out[i] = P(r)
		}
		return out
	}}
}

// searchRow is one search token of a patient (table patient_search).
type searchRow struct {
	TenantID  string
	Token     string
	PatientID string
}

func (searchRow) TableName() string { return "patient_search" }

// indexPatient replaces the patient's search tokens, in the write's
// transaction.
func indexPatient(tx *gorm.DB, p *models.Patient) error {
	if err := tx.Where("patient_id = ?", p.ID).Delete(&searchRow{}).Error; err != nil {
		return fmt.Errorf("unindex patient: %w", err)
	}
	toks := p.SearchTokens()
	if len(toks) == 0 {
		return nil
	}
	rows := make([]searchRow, len(toks))
	for i, t := range toks {
		rows[i] = searchRow{TenantID: p.TenantID, Token: t, PatientID: p.ID}
	}
	if err := tx.Create(&rows).Error; err != nil {
		return fmt.Errorf("index patient: %w", err)
	}
	return nil
}

// search narrows a patients query to the patients q finds (see
// models.Search): every name prefix, or the exact MRN, or the phone suffix,
// each a range or equality on patient_search's primary key. The candidate
// ids are taken from the token index alone, in id order; with limit > 0
// (a page with no other condition: the tokens are those of live patients
// only) just the first limit after the id after, so a prefix that many
// patients share sorts ids, not rows.
func search(db *gorm.DB, tenant string, q *models.Search, after string, limit int) *gorm.DB {
	tok := func(cond string, args ...any) *gorm.DB {
		t := db.Session(&gorm.Session{NewDB: true}).Table("patient_search").Select("patient_id").
			Where("tenant_id = ?", tenant).Where(cond, args...)
		if after != "" {
			t = t.Where("patient_id > ?", after)
		}
		return t
	}
	names := tok("token >= ? AND token < ?", q.NamePrefixes[0], models.PrefixEnd(q.NamePrefixes[0]))
	for _, p := range q.NamePrefixes[1:] {
		names = names.Where("patient_id IN (?)", tok("token >= ? AND token < ?", p, models.PrefixEnd(p)))
	}
	parts := []any{names, tok("token = ?", q.MRN)}
	sql := "? UNION ?"
	if q.Phone != "" {
		parts = append(parts, tok("token >= ? AND token < ?", q.Phone, models.PrefixEnd(q.Phone)))
		sql += " UNION ?"
	}
	if limit > 0 {
		sql = "SELECT patient_id FROM (" + sql + ") c ORDER BY patient_id LIMIT " + strconv.Itoa(limit)
	}
	return db.Where("id IN (?)", db.Session(&gorm.Session{NewDB: true}).Raw(sql, parts...))
}

// indexUnsearchable gives the patients that have no search tokens theirs
// (the patients of a database migrated to 00005), in batches.
func (s *Store) indexUnsearchable(ctx context.Context) error {
	for {
		var ps []*models.Patient
		err := s.db.WithContext(ctx).Where("deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM patient_search ps WHERE ps.patient_id = patients.id)").
			Order("id").Limit(500).Find(&ps).Error
		if err != nil {
			return fmt.Errorf("store: patients to index: %w", err)
		}
		n := 0
		err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			for _, p := range ps {
				if len(p.SearchTokens()) == 0 {
					continue
				}
				n++
				if err := indexPatient(tx, p); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: index patients: %w", err)
		}
		if len(ps) < 500 || n == 0 {
			return nil
		}
	}
}
