package store

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

var (
	lockingUpdate       = clause.Locking{Strength: "UPDATE"}
	sqlTxRepeatableRead = sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
)

// insert stamps and saves a new record and emits its created event.
func (w *writer) insert(rec models.Record) error {
	rec.Base().ID = ""
	rec.Base().Touch(w.actor.TenantID, models.IDPrefix(rec.Entity()), w.now)
	if err := w.tx.Create(rec).Error; err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return duplicate(rec)
		}
		return fmt.Errorf("insert %s: %w", rec.Entity(), err)
	}
	if p, ok := rec.(*models.Patient); ok {
		if err := indexPatient(w.tx, p); err != nil {
			return err
		}
	}
	w.emit(rec, models.OpCreated)
	return nil
}

// save stamps and saves a changed record and emits its updated event.
func (w *writer) save(rec models.Record) error {
	rec.Base().Touch(w.actor.TenantID, "", w.now)
	if err := w.tx.Save(rec).Error; err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return duplicate(rec)
		}
		return fmt.Errorf("save %s: %w", rec.Entity(), err)
	}
	if p, ok := rec.(*models.Patient); ok {
		if err := indexPatient(w.tx, p); err != nil {
			return err
		}
	}
	w.emit(rec, models.OpUpdated)
	return nil
}

func duplicate(rec models.Record) error {
	if rec.Entity() == models.EntityInvoice {
		// invoices_one_per_visit: a racing invoice committed first.
		return invoiceExists("")
	}
	if rec.Entity() == models.EntityPatient {
		return &models.Error{Code: models.ECONFLICT, Message: "mrn: already used by another patient",
			Fields: []models.FieldError{{Field: "mrn", Message: "already used by another patient"}}}
	}
	return models.Errorf(models.ECONFLICT, "%s conflicts with an existing record", singular(rec.Entity()))
}

// ref loads a referenced record for a write. A missing, deleted or foreign
// reference answers ENOTFOUND naming the field, like a foreign URL id.
func (w *writer) ref(rec models.Record, field, id string, forUpdate bool) error {
	q := w.tx.Where("tenant_id = ? AND id = ? AND deleted_at IS NULL", w.actor.TenantID, id)
	if forUpdate {
		q = w.lockQuery(q)
	}
	err := q.Take(rec).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return &models.Error{Code: models.ENOTFOUND, Message: field + ": no such " + singular(rec.Entity()),
			Fields: []models.FieldError{{Field: field, Message: "no such " + singular(rec.Entity())}}}
	}
	if err != nil {
		return fmt.Errorf("load %s: %w", field, err)
	}
	return nil
}

// lockDoctor locks a doctor's row: the per-doctor mutex of queue writes.
func (w *writer) lockDoctor(id string, archivedOK bool) (*models.Doctor, error) {
	d := &models.Doctor{}
	q := w.lockQuery(w.tx.Where("tenant_id = ? AND id = ?", w.actor.TenantID, id))
	err := q.Take(d).Error
	if errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && d.DeletedAt != nil && !archivedOK) {
		return nil, &models.Error{Code: models.ENOTFOUND, Message: "doctor_id: no such doctor",
			Fields: []models.FieldError{{Field: "doctor_id", Message: "no such doctor"}}}
	}
	if err != nil {
		return nil, fmt.Errorf("lock doctor: %w", err)
	}
	if w.doctors == nil {
		w.doctors = map[string]*models.Doctor{}
	}
	w.doctors[id] = d
	return d, nil
}

// lockPatient locks a patient's row (FOR UPDATE on Postgres): the
// per-patient mutex of bookings, so that two bookings of one patient with
// two doctors (two different doctor locks) cannot both pass the overlap
// check. Lock order: doctor, then patient, then the records themselves.
// An archived patient is ENOTFOUND naming patient_id unless archivedOK.
func (w *writer) lockPatient(id string, archivedOK bool) (*models.Patient, error) {
	p := &models.Patient{}
	err := w.lockQuery(w.tx.Where("tenant_id = ? AND id = ?", w.actor.TenantID, id)).Take(p).Error
	if errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && p.DeletedAt != nil && !archivedOK) {
		return nil, &models.Error{Code: models.ENOTFOUND, Message: "patient_id: no such patient",
			Fields: []models.FieldError{{Field: "patient_id", Message: "no such patient"}}}
	}
	if err != nil {
		return nil, fmt.Errorf("lock patient: %w", err)
	}
	return p, nil
}

// doctor returns the doctor locked in this transaction, locking it now
// (archived or not) if it is not yet.
func (w *writer) doctor(id string) (*models.Doctor, error) {
	if d := w.doctors[id]; d != nil {
		return d, nil
	}
	return w.lockDoctor(id, true)
}

// checkSlot applies the booking rule to a new or rescheduled appointment,
// under its doctor's and patient's row locks: no other occupying
// appointment of the doctor or the patient overlaps its slot. Candidates
// start within MaxAppointmentLength before a's start (no slot is longer),
// which keeps the read on the (tenant, doctor|patient, starts_at) indexes.
func (w *writer) checkSlot(a *models.Appointment) error {
	var others []*models.Appointment
	err := w.tx.Where("tenant_id = ? AND deleted_at IS NULL AND id <> ? AND status IN ? AND (doctor_id = ? OR patient_id = ?) AND starts_at < ? AND starts_at > ? AND ends_at > ?",
		w.actor.TenantID, a.ID, models.OccupyingStatuses, a.DoctorID, a.PatientID, a.EndsAt, a.StartsAt.Add(-models.MaxAppointmentLength), a.StartsAt).
		Order("starts_at, id").Limit(2 * models.MaxConflicts).Find(&others).Error
	if err != nil {
		return fmt.Errorf("overlapping appointments: %w", err)
	}
	return models.CheckOverlap(a, others)
}

// book applies the rules of a booking or reschedule to a, whose doctor and
// patient must be active: it starts no earlier than the grace before now,
// and overlaps none of its doctor's or patient's occupying appointments.
// Locks: doctor, then patient (both held to commit).
func (w *writer) book(a *models.Appointment, isNew bool) error {
	if err := a.CheckStart(w.now, w.s.grace); err != nil {
		return err
	}
	if isNew {
		if _, err := w.lockDoctor(a.DoctorID, false); err != nil {
			return err
		}
		if _, err := w.lockPatient(a.PatientID, false); err != nil {
			return err
		}
	} else {
		d, err := w.doctor(a.DoctorID)
		if err != nil {
			return err
		}
		if d.Archived() {
			return models.ArchivedDoctor(d)
		}
		p, err := w.lockPatient(a.PatientID, true)
		if err != nil {
			return err
		}
		if p.DeletedAt != nil {
			return models.ArchivedPatient(p)
		}
	}
	return w.checkSlot(a)
}

// activeEntry returns the patient's active queue entry (waiting, called,
// in progress) with the doctor on the day, or nil. The caller holds the
// doctor's lock, which makes the answer hold to commit.
func (w *writer) activeEntry(patientID, doctorID, day string) (*models.QueueEntry, error) {
	q := &models.QueueEntry{}
	err := w.lockQuery(w.tx.Where("tenant_id = ? AND doctor_id = ? AND day = ? AND patient_id = ? AND status IN ?",
		w.actor.TenantID, doctorID, day, patientID, models.ActiveQueueStatuses)).Order("token").Take(q).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("active queue entry: %w", err)
	}
	return q, nil
}

// create applies the creation rules of rec's entity.
func (w *writer) create(rec models.Record) error {
	switch r := rec.(type) {
	case *models.Patient:
		if err := r.Validate(); err != nil {
			return err
		}
		if r.MRN == "" {
			r.MRN = "MRN-" + strings.ToUpper(models.NewID("x")[2:12])
		}
	case *models.Doctor:
		if err := r.Validate(); err != nil {
			return err
		}
	case *models.Appointment:
		if err := r.Validate(); err != nil {
			return err
		}
		r.ID = ""
		if err := w.book(r, true); err != nil {
			return err
		}
		r.Status = models.AppointmentScheduled
	case *models.QueueEntry:
		return w.createQueueEntry(r)
	case *models.Visit:
		return w.createVisit(r)
	case *models.Prescription:
		if w.actor.Role != models.RoleDoctor {
			return models.CanPrescribe(w.actor, "") // refused before the visit is looked up
		}
		if err := r.Validate(); err != nil {
			return err
		}
		v := &models.Visit{}
		if err := w.ref(v, "visit_id", r.VisitID, true); err != nil {
			return err
		}
		if err := models.CanPrescribe(w.actor, v.DoctorID); err != nil {
			return err
		}
		if v.Status != models.VisitOpen {
			return models.Errorf(models.ECONFLICT, "prescriptions belong to an open visit; this one is closed")
		}
		r.PatientID, r.DoctorID = v.PatientID, v.DoctorID
		now := w.now
		r.PrescribedBy, r.PrescribedAt = w.actor.Subject, &now
	case *models.Invoice:
		if err := r.Validate(); err != nil {
			return err
		}
		if r.VisitID != nil {
			v := &models.Visit{}
			// The visit's row lock orders racing invoices for one visit;
			// the partial unique index invoices_one_per_visit backs it.
			if err := w.ref(v, "visit_id", *r.VisitID, true); err != nil {
				return err
			}
			if r.PatientID != "" && r.PatientID != v.PatientID {
				return models.Invalid("patient_id", "is not the visit's patient")
			}
			r.PatientID = v.PatientID
			if err := w.oneInvoicePerVisit(v.ID); err != nil {
				return err
			}
		}
		if err := w.ref(&models.Patient{}, "patient_id", r.PatientID, false); err != nil {
			return err
		}
		r.Status = models.InvoiceDraft
	default:
		return fmt.Errorf("create: unknown record %T", rec)
	}
	return w.insert(rec)
}

// createQueueEntry adds a patient to a doctor's queue of today with the next
// token; with an appointment, it checks that appointment in.
func (w *writer) createQueueEntry(q *models.QueueEntry) error {
	if err := q.Validate(); err != nil {
		return err
	}
	if _, err := w.lockDoctor(q.DoctorID, false); err != nil {
		return err
	}
	if err := w.ref(&models.Patient{}, "patient_id", q.PatientID, false); err != nil {
		return err
	}
	if q.AppointmentID != nil {
		a := &models.Appointment{}
		if err := w.ref(a, "appointment_id", *q.AppointmentID, true); err != nil {
			return err
		}
		if a.PatientID != q.PatientID || a.DoctorID != q.DoctorID {
			return models.Invalid("appointment_id", "is for another patient or doctor")
		}
		if err := a.CheckIn(w.s.now(), w.s.loc); err != nil {
			return err
		}
		if err := a.Transition(models.AppointmentCheckedIn); err != nil {
			return err
		}
		if err := w.save(a); err != nil {
			return err
		}
	}
	return w.enqueue(q)
}

// enqueue gives q the next token of its doctor's day and inserts it,
// unless the doctor is archived or the patient already has an active entry
// with the doctor that day (ECONFLICT naming it). The caller holds the
// doctor's lock (on Postgres; SQLite has one writer), which serialises
// every enqueue of the doctor: the check holds to commit.
func (w *writer) enqueue(q *models.QueueEntry) error {
	d := w.doctors[q.DoctorID]
	if d == nil {
		if w.s.dialect == Postgres {
			return fmt.Errorf("enqueue: doctor %s is not locked", q.DoctorID)
		}
		var err error
		if d, err = w.lockDoctor(q.DoctorID, true); err != nil {
			return err
		}
	}
	if d.Archived() {
		return models.ArchivedDoctor(d)
	}
	q.Day = w.s.now().In(w.s.loc).Format("2006-01-02")
	q.Status = models.QueueWaiting
	q.CalledAt, q.StartedAt, q.CompletedAt, q.RecalledAt, q.Recalls = nil, nil, nil, nil, 0
	dup, err := w.activeEntry(q.PatientID, q.DoctorID, q.Day)
	if err != nil {
		return err
	}
	if dup != nil {
		return models.DuplicateEntry(dup)
	}
	// The doctor's latest entry of the day gives the next token and the
	// day's prefix; the first entry of the day chooses the prefix.
	var last []struct {
		Token       int
		TokenPrefix string
	}
	err = w.tx.Table("queue_entries").Where("tenant_id = ? AND doctor_id = ? AND day = ?", w.actor.TenantID, q.DoctorID, q.Day).
		Select("token, token_prefix").Order("token DESC").Limit(1).Scan(&last).Error
	if err != nil {
		return fmt.Errorf("next token: %w", err)
	}
	if len(last) == 1 {
		q.Token, q.TokenPrefix = last[0].Token+1, last[0].TokenPrefix
	} else {
		q.Token = 1
		if q.TokenPrefix, err = w.choosePrefix(q.DoctorID, q.Day); err != nil {
			return err
		}
	}
	q.TokenLabel = models.TokenLabel(q.TokenPrefix, q.Token)
	return w.insert(q)
}

// choosePrefix chooses the token prefix of a doctor's first entry of a day
// (models.ChooseTokenPrefix): the doctor's place among the active doctors
// in board order, unless another doctor holds that prefix on the day. On
// Postgres a transaction-scoped advisory lock per tenant and day makes the
// choice and the insert that records it one step, so two doctors' first
// entries racing cannot take the same prefix (SQLite has one writer). The
// lock comes after the doctor, patient and record locks and before the
// counter row, and only a doctor's first entry of a day takes it.
func (w *writer) choosePrefix(doctorID, day string) (string, error) {
	if w.s.dialect == Postgres {
		key := "clinicpulse.token_prefix|" + w.actor.TenantID + "|" + day
		if err := w.tx.Exec("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", key).Error; err != nil {
			return "", fmt.Errorf("token prefix lock: %w", err)
		}
	}
	var used []string
	err := w.tx.Table("queue_entries").Where("tenant_id = ? AND day = ? AND token_prefix <> '' AND doctor_id <> ?", w.actor.TenantID, day, doctorID).
		Distinct().Pluck("token_prefix", &used).Error
	if err != nil {
		return "", fmt.Errorf("token prefixes of the day: %w", err)
	}
	var roster []string
	err = w.tx.Model(&models.Doctor{}).Where("tenant_id = ? AND deleted_at IS NULL", w.actor.TenantID).
		Order("name, id").Pluck("id", &roster).Error
	if err != nil {
		return "", fmt.Errorf("token prefix roster: %w", err)
	}
	return models.ChooseTokenPrefix(slices.Index(roster, doctorID), used), nil
}

// createVisit opens a visit from a queue entry, an appointment, or a patient
// and doctor; the entry moves to in_progress and the appointment to
// in_consultation.
func (w *writer) createVisit(v *models.Visit) error {
	if err := v.Validate(); err != nil {
		return err
	}
	var entry *models.QueueEntry
	var appt *models.Appointment
	if v.QueueEntryID != nil {
		entry = &models.QueueEntry{}
		if err := w.refLocked(entry, "queue_entry_id", *v.QueueEntryID); err != nil {
			return err
		}
		if v.AppointmentID == nil {
			v.AppointmentID = entry.AppointmentID
		}
	}
	if v.AppointmentID != nil {
		appt = &models.Appointment{}
		if err := w.refLocked(appt, "appointment_id", *v.AppointmentID); err != nil {
			return err
		}
		if entry != nil && (entry.AppointmentID == nil || *entry.AppointmentID != appt.ID) {
			return models.Invalid("appointment_id", "is not the queue entry's appointment")
		}
	}
	for _, src := range []struct{ patient, doctor string }{pd(entry), pdA(appt)} {
		if src.patient == "" {
			continue
		}
		if v.PatientID != "" && v.PatientID != src.patient {
			return models.Invalid("patient_id", "does not match the queue entry or appointment")
		}
		if v.DoctorID != "" && v.DoctorID != src.doctor {
			return models.Invalid("doctor_id", "does not match the queue entry or appointment")
		}
		v.PatientID, v.DoctorID = src.patient, src.doctor
	}
	if entry == nil && appt == nil {
		if _, err := w.lockDoctor(v.DoctorID, false); err != nil {
			return err
		}
		if err := w.ref(&models.Patient{}, "patient_id", v.PatientID, false); err != nil {
			return err
		}
	} else if d, err := w.doctor(v.DoctorID); err != nil {
		return err
	} else if d.Archived() {
		return models.ArchivedDoctor(d)
	}
	if entry != nil {
		var open int64
		if err := w.tx.Model(&models.Visit{}).Where("tenant_id = ? AND queue_entry_id = ? AND status = ?", w.actor.TenantID, entry.ID, models.VisitOpen).Count(&open).Error; err != nil {
			return fmt.Errorf("open visits: %w", err)
		}
		if open > 0 {
			return models.Errorf(models.ECONFLICT, "the queue entry already has an open visit")
		}
		if entry.Terminal() {
			return models.Errorf(models.ECONFLICT, "the queue entry is %s", entry.Status)
		}
		if entry.AdvanceTo(models.QueueInProgress, w.now) {
			if err := w.save(entry); err != nil {
				return err
			}
		}
	}
	if appt != nil {
		if appt.Status == models.AppointmentCancelled || appt.Status == models.AppointmentNoShow {
			return models.Errorf(models.ECONFLICT, "the appointment is %s", appt.Status)
		}
		if appt.AdvanceTo(models.AppointmentInConsultation) {
			if err := w.save(appt); err != nil {
				return err
			}
		}
	}
	v.Status, v.ClosedAt = models.VisitOpen, nil
	return w.insert(v)
}

func pd(q *models.QueueEntry) struct{ patient, doctor string } {
	if q == nil {
		return struct{ patient, doctor string }{}
	}
	return struct{ patient, doctor string }{q.PatientID, q.DoctorID}
}

func pdA(a *models.Appointment) struct{ patient, doctor string } {
	if a == nil {
		return struct{ patient, doctor string }{}
	}
	return struct{ patient, doctor string }{a.PatientID, a.DoctorID}
}

// refLocked loads a queue-affecting reference with its doctor locked first.
func (w *writer) refLocked(rec models.Record, field, id string) error {
	if err := w.ref(rec, field, id, false); err != nil {
		return err
	}
	if d := doctorOf(rec); d != nil {
		if _, err := w.lockDoctor(*d, true); err != nil {
			return err
		}
	}
	return w.ref(rec, field, id, true)
}

// update applies a partial update and the cross-entity rules it triggers.
func (w *writer) update(rec models.Record, update any) error {
	switch r := rec.(type) {
	case *models.Patient:
		if err := update.(*models.PatientUpdate).Apply(r); err != nil {
			return err
		}
	case *models.Doctor:
		if err := update.(*models.DoctorUpdate).Apply(r); err != nil {
			return err
		}
		// Name, room and default consultation are on today's board.
		w.touchBoard(r.ID, w.s.now().In(w.s.loc).Format(time.DateOnly))
	case *models.Appointment:
		from := r.Status
		u := update.(*models.AppointmentUpdate)
		moved := u.Reschedules(r)
		if err := u.Apply(r); err != nil {
			return err
		}
		if moved && r.Status.Occupies() { // moved and cancelled at once holds no slot
			if err := w.book(r, false); err != nil {
				return err
			}
		}
		if r.Status == models.AppointmentCheckedIn && from != r.Status {
			if err := r.CheckIn(w.s.now(), w.s.loc); err != nil {
				return err
			}
			d, err := w.doctor(r.DoctorID)
			if err != nil {
				return err
			}
			if d.Archived() {
				return models.ArchivedDoctor(d)
			}
			p, err := w.lockPatient(r.PatientID, true)
			if err != nil {
				return err
			}
			if p.DeletedAt != nil {
				return models.ArchivedPatient(p)
			}
		}
		if err := w.save(r); err != nil {
			return err
		}
		if r.Status != from {
			return w.appointmentMoved(r)
		}
		return nil
	case *models.QueueEntry:
		from := r.Status
		if err := update.(*models.QueueUpdate).Apply(r, w.now); err != nil {
			return err
		}
		if err := w.save(r); err != nil {
			return err
		}
		if r.Status != from {
			return w.queueMoved(r)
		}
		return nil
	case *models.Visit:
		from := r.Status
		if err := update.(*models.VisitUpdate).Apply(r, w.now); err != nil {
			return err
		}
		if err := w.save(r); err != nil {
			return err
		}
		if r.Status != from && r.Status == models.VisitClosed {
			return w.visitClosed(r)
		}
		return nil
	case *models.Prescription:
		if err := models.CanPrescribe(w.actor, r.DoctorID); err != nil {
			return err
		}
		if err := w.openVisit(r.VisitID); err != nil {
			return err
		}
		if err := update.(*models.PrescriptionUpdate).Apply(r); err != nil {
			return err
		}
	case *models.Invoice:
		if err := update.(*models.InvoiceUpdate).Apply(r); err != nil {
			return err
		}
	default:
		return fmt.Errorf("update: unknown record %T", rec)
	}
	return w.save(rec)
}

// oneInvoicePerVisit answers ECONFLICT naming the visit's invoice that is
// not void, if there is one: a visit is billed once; voiding the invoice
// makes room for its replacement.
func (w *writer) oneInvoicePerVisit(visitID string) error {
	var ids []string
	err := w.tx.Model(&models.Invoice{}).Where("tenant_id = ? AND visit_id = ? AND status <> ? AND deleted_at IS NULL",
		w.actor.TenantID, visitID, models.InvoiceVoid).Order("id").Limit(1).Pluck("id", &ids).Error
	if err != nil {
		return fmt.Errorf("invoices of visit: %w", err)
	}
	if len(ids) > 0 {
		return invoiceExists(ids[0])
	}
	return nil
}

func invoiceExists(id string) *models.Error {
	msg := "the visit already has an invoice"
	if id != "" {
		msg += " (" + id + "); void it to bill the visit again"
	}
	return &models.Error{Code: models.ECONFLICT, Message: "visit_id: " + msg,
		Fields: []models.FieldError{{Field: "visit_id", Message: msg}}}
}

// openVisit answers ECONFLICT unless the visit is open.
func (w *writer) openVisit(id string) error {
	v := &models.Visit{}
	if err := w.ref(v, "visit_id", id, true); err != nil {
		return err
	}
	if v.Status != models.VisitOpen {
		return models.Errorf(models.ECONFLICT, "the visit is closed; its prescriptions cannot change")
	}
	return nil
}

// appointmentMoved applies the rules that follow an appointment's status
// change: checking in queues the patient; completing, cancelling or a
// no-show settles the queue entry.
func (w *writer) appointmentMoved(a *models.Appointment) error {
	if a.Status == models.AppointmentCheckedIn {
		return w.checkIn(a)
	}
	q, err := w.entryOf(a.ID)
	if q == nil || err != nil {
		return err
	}
	changed := false
	switch a.Status {
	case models.AppointmentInConsultation:
		changed = q.AdvanceTo(models.QueueInProgress, w.now)
	case models.AppointmentCompleted:
		changed = q.AdvanceTo(models.QueueCompleted, w.now)
	case models.AppointmentCancelled:
		changed = q.Transition(models.QueueCancelled, w.now) == nil
	case models.AppointmentNoShow:
		changed = q.Transition(models.QueueNoShow, w.now) == nil
	}
	if changed {
		return w.save(q)
	}
	return nil
}

// checkIn queues the patient of an appointment just checked in. A patient
// who already has an active entry with the doctor today (a walk-in entry
// made before the appointment was found) keeps it: the entry is linked to
// the appointment, keeps its token and place, and an entry already in
// progress takes the appointment to in_consultation. An active entry
// linked to another appointment is ECONFLICT naming it.
func (w *writer) checkIn(a *models.Appointment) error {
	day := w.s.now().In(w.s.loc).Format(time.DateOnly)
	q, err := w.activeEntry(a.PatientID, a.DoctorID, day)
	if err != nil {
		return err
	}
	if q == nil {
		return w.enqueue(&models.QueueEntry{PatientID: a.PatientID, DoctorID: a.DoctorID, AppointmentID: &a.ID, Priority: models.PriorityNormal})
	}
	if q.AppointmentID != nil && *q.AppointmentID != a.ID {
		return models.Conflict("patient_id", fmt.Sprintf("the patient already has queue entry %s (token %d, %s) with this doctor today, for appointment %s",
			q.ID, q.Token, q.Status, *q.AppointmentID), q.ID, *q.AppointmentID)
	}
	q.AppointmentID = &a.ID
	if err := w.save(q); err != nil {
		return err
	}
	if q.Status == models.QueueInProgress && a.AdvanceTo(models.AppointmentInConsultation) {
		return w.save(a)
	}
	return nil
}

// queueMoved applies the rules that follow a queue entry's status change to
// its appointment. Calling an entry does not touch the appointment (the
// patient is on the way, and may not come: checked_in → no_show); the
// consultation starts when the entry goes in progress.
func (w *writer) queueMoved(q *models.QueueEntry) error {
	if q.AppointmentID == nil {
		return nil
	}
	a := &models.Appointment{}
	if err := w.ref(a, "appointment_id", *q.AppointmentID, true); err != nil {
		var me *models.Error
		if errors.As(err, &me) && me.Code == models.ENOTFOUND {
			return nil // the appointment was deleted; the queue goes on
		}
		return err
	}
	changed := false
	switch q.Status {
	case models.QueueInProgress:
		changed = a.AdvanceTo(models.AppointmentInConsultation)
	case models.QueueCompleted:
		changed = a.AdvanceTo(models.AppointmentCompleted)
	case models.QueueNoShow:
		changed = a.Transition(models.AppointmentNoShow) == nil
	case models.QueueCancelled:
		changed = a.Transition(models.AppointmentCancelled) == nil
	}
	if changed {
		return w.save(a)
	}
	return nil
}

// visitClosed completes the visit's queue entry and appointment.
func (w *writer) visitClosed(v *models.Visit) error {
	if v.QueueEntryID != nil {
		q := &models.QueueEntry{}
		if err := w.ref(q, "queue_entry_id", *v.QueueEntryID, true); err != nil {
			return err
		}
		if q.AdvanceTo(models.QueueCompleted, w.now) {
			if err := w.save(q); err != nil {
				return err
			}
			// An entry linked to its appointment after the visit opened
			// (a walk-in whose appointment was then checked in).
			if q.AppointmentID != nil && (v.AppointmentID == nil || *v.AppointmentID != *q.AppointmentID) {
				if err := w.queueMoved(q); err != nil {
					return err
				}
			}
		}
	}
	if v.AppointmentID != nil {
		a := &models.Appointment{}
		if err := w.ref(a, "appointment_id", *v.AppointmentID, true); err != nil {
			return err
		}
		if a.AdvanceTo(models.AppointmentCompleted) {
			if err := w.save(a); err != nil {
				return err
			}
		}
	}
	return nil
}

// entryOf returns the latest queue entry of an appointment, locked, or nil.
func (w *writer) entryOf(appointmentID string) (*models.QueueEntry, error) {
	q := &models.QueueEntry{}
	err := w.lockQuery(w.tx.Where("tenant_id = ? AND appointment_id = ?", w.actor.TenantID, appointmentID)).
		Order("created_at DESC").Take(q).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("queue entry of appointment: %w", err)
	}
	return q, nil
}

// openWork refuses (models.ArchiveBlockers) to archive the doctor or patient
// whose id is in column (doctor_id, patient_id) while it has active queue
// entries on day, appointments holding a slot that has not ended, or open
// visits; nil when it has none. Each is a count and the first ids, read
// through the indexes of the clinic rules (migration 00004).
func (w *writer) openWork(column, id, name, day string) error {
	where := "tenant_id = ? AND " + column + " = ?"
	sets := []struct {
		what  string
		q     func() *gorm.DB
		order string
		n     int64
		ids   []string
	}{
		{what: "active queue entries", order: "token", q: func() *gorm.DB {
			return w.tx.Model(&models.QueueEntry{}).Where(where+" AND day = ? AND status IN ?", w.actor.TenantID, id, day, models.ActiveQueueStatuses)
		}},
		{what: "upcoming appointments", order: "starts_at, id", q: func() *gorm.DB {
			return w.tx.Model(&models.Appointment{}).Where(where+" AND deleted_at IS NULL AND status IN ? AND ends_at > ?",
				w.actor.TenantID, id, models.OccupyingStatuses, w.now)
		}},
		{what: "open visits", order: "id", q: func() *gorm.DB {
			return w.tx.Model(&models.Visit{}).Where(where+" AND deleted_at IS NULL AND status = ?", w.actor.TenantID, id, models.VisitOpen)
		}},
	}
	for i := range sets {
		st := &sets[i]
		if err := st.q().Count(&st.n).Error; err != nil {
			return fmt.Errorf("%s of %s: %w", st.what, column, err)
		}
		if st.n > 0 {
			if err := st.q().Order(st.order).Limit(models.MaxConflicts).Pluck("id", &st.ids).Error; err != nil {
				return fmt.Errorf("%s of %s: %w", st.what, column, err)
			}
		}
	}
	return models.ArchiveBlockers(name, sets[0].ids, sets[1].ids, sets[2].ids, sets[0].n, sets[1].n, sets[2].n)
}

// delete checks that the domain allows deleting rec.
func (w *writer) delete(rec models.Record) error {
	switch r := rec.(type) {
	case *models.Doctor:
		return w.archiveDoctor(r)
	case *models.Patient:
		// A patient with work in progress would stay on a board, a
		// doctor's list or a bill while gone from search and booking.
		return w.openWork("patient_id", r.ID, r.Name, w.s.now().In(w.s.loc).Format(time.DateOnly))
	case *models.Appointment:
		if r.Status == models.AppointmentCheckedIn || r.Status == models.AppointmentInConsultation || r.Status == models.AppointmentCompleted {
			return models.Errorf(models.ECONFLICT, "a %s appointment cannot be deleted; cancel it instead", r.Status)
		}
	case *models.Prescription:
		if err := models.CanPrescribe(w.actor, r.DoctorID); err != nil {
			return err
		}
		return w.openVisit(r.VisitID)
	case *models.Invoice:
		if r.Status != models.InvoiceDraft {
			return models.Errorf(models.ECONFLICT, "only a draft invoice can be deleted; void it instead")
		}
	}
	return nil
}

// archiveDoctor refuses to archive a doctor who still has work (openWork):
// ECONFLICT with the counts and the first ids. Otherwise it records that
// the doctor's board of today changes, so the board event (archived: true)
// takes the doctor off every display. The caller holds the doctor's row
// lock (load), which every booking and enqueue of the doctor also takes.
func (w *writer) archiveDoctor(d *models.Doctor) error {
	day := w.s.now().In(w.s.loc).Format(time.DateOnly)
	if err := w.openWork("doctor_id", d.ID, d.Name, day); err != nil {
		return err
	}
	w.touchBoard(d.ID, day)
	return nil
}
