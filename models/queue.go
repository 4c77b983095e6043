package models

import (
	"fmt"
	"slices"
	"time"
)

// QueueStatus is where a queue entry stands.
type QueueStatus string

// Queue statuses.
const (
	QueueWaiting    QueueStatus = "waiting"
	QueueCalled     QueueStatus = "called"
	QueueInProgress QueueStatus = "in_progress"
	QueueCompleted  QueueStatus = "completed"
	QueueNoShow     QueueStatus = "no_show"
	QueueCancelled  QueueStatus = "cancelled"
)

var queueMoves = transitions[QueueStatus]{
	QueueWaiting:    {QueueCalled, QueueNoShow, QueueCancelled},
	QueueCalled:     {QueueInProgress, QueueNoShow},
	QueueInProgress: {QueueCompleted},
	QueueCompleted:  {},
	QueueNoShow:     {},
	QueueCancelled:  {},
}

var queuePath = []QueueStatus{QueueWaiting, QueueCalled, QueueInProgress, QueueCompleted}

// ActiveQueueStatuses are the statuses of an entry still in a queue:
// waiting, called, in progress. A patient has at most one active entry per
// doctor per day.
var ActiveQueueStatuses = []QueueStatus{QueueWaiting, QueueCalled, QueueInProgress}

// Active reports whether an entry in status s is still in its queue.
func (s QueueStatus) Active() bool {
	return s == QueueWaiting || s == QueueCalled || s == QueueInProgress
}

// DuplicateEntry is the 409 for queueing a patient who already has the
// active entry existing with the same doctor that day; it names the entry.
func DuplicateEntry(existing *QueueEntry) *Error {
	return Conflict("patient_id", fmt.Sprintf("the patient already has queue entry %s (token %d, %s) with this doctor on %s",
		existing.ID, existing.Token, existing.Status, existing.Day), existing.ID)
}

// Priority orders the waiting queue: emergencies first, then urgent, then
// arrival order.
type Priority string

// Priorities.
const (
	PriorityNormal    Priority = "normal"
	PriorityUrgent    Priority = "urgent"
	PriorityEmergency Priority = "emergency"
)

func (p Priority) rank() int {
	switch p {
	case PriorityEmergency:
		return 0
	case PriorityUrgent:
		return 1
	}
	return 2
}

func (p Priority) valid() bool {
	return p == PriorityNormal || p == PriorityUrgent || p == PriorityEmergency
}

// DefaultConsultMinutes is the clinic's default length of a consultation,
// when neither the configuration nor the doctor sets one.
const DefaultConsultMinutes = 10

// MaxConsultMinutes bounds a doctor's default_consult_minutes.
const MaxConsultMinutes = 240

// QueueEntry is a patient waiting for a doctor on a day.
type QueueEntry struct {
	Meta
	PatientID     string      `json:"patient_id" gorm:"not null"`
	DoctorID      string      `json:"doctor_id" gorm:"not null"`
	AppointmentID *string     `json:"appointment_id"`
	Priority      Priority    `json:"priority" gorm:"not null"`
	Status        QueueStatus `json:"status" gorm:"not null"`
	Token         int         `json:"token" gorm:"not null"`
	// TokenLabel is what screens show for the token: the doctor's prefix
	// of the day and the number, "A3" (see TokenLabel). Set by the server.
	TokenLabel string `json:"token_label" gorm:"not null;default:''"`
	// TokenPrefix is the doctor's prefix of the day ("A"), the same on every
	// entry of the doctor's day; the board publishes it as token_prefix.
	TokenPrefix string     `json:"-" gorm:"not null;default:''"`
	Day         string     `json:"day" gorm:"not null"`
	CalledAt    *time.Time `json:"called_at"`
	StartedAt   *time.Time `json:"started_at"`
	CompletedAt *time.Time `json:"completed_at"`
	// Recalls counts the times a called entry was called again (POST
	// /queue/{id}/recall); RecalledAt is the last of them. Set by the server.
	Recalls    int        `json:"recalls" gorm:"not null"`
	RecalledAt *time.Time `json:"recalled_at"`

	// Derived from the doctor's queue when read; 0 unless waiting.
	Position             int `json:"position" gorm:"-"`
	EstimatedWaitMinutes int `json:"estimated_wait_minutes" gorm:"-"`
}

func (*QueueEntry) Entity() string    { return EntityQueue }
func (q *QueueEntry) Patient() string { return q.PatientID }

// TableName keeps GORM's name stable.
func (*QueueEntry) TableName() string { return "queue_entries" }

// Validate checks the fields a client sets.
func (q *QueueEntry) Validate() error {
	var v Validation
	checkRef(&v, "patient_id", EntityPatient, q.PatientID, true)
	checkRef(&v, "doctor_id", EntityDoctor, q.DoctorID, true)
	if q.AppointmentID != nil {
		checkRef(&v, "appointment_id", EntityAppointment, *q.AppointmentID, true)
	}
	if q.Priority == "" {
		q.Priority = PriorityNormal
	}
	if !q.Priority.valid() {
		v.Add("priority", "must be normal, urgent or emergency")
	}
	return v.Err()
}

// Transition moves the entry to status to at now, or answers ECONFLICT.
func (q *QueueEntry) Transition(to QueueStatus, now time.Time) error {
	if !queueMoves.known(to) {
		return Invalid("status", "unknown queue status")
	}
	if !queueMoves.allowed(q.Status, to) {
		return transitionError("queue entry", q.Status, to)
	}
	q.Status = to
	q.stamp(now)
	return nil
}

// AdvanceTo walks the forward path up to to, for cross-entity rules; it
// reports whether the status changed.
func (q *QueueEntry) AdvanceTo(to QueueStatus, now time.Time) bool {
	if !advance(queuePath, &q.Status, to) {
		return false
	}
	q.stamp(now)
	return true
}

func (q *QueueEntry) stamp(now time.Time) {
	now = Timestamp(now)
	for _, s := range queuePath[1:] {
		var at **time.Time
		switch s {
		case QueueCalled:
			at = &q.CalledAt
		case QueueInProgress:
			at = &q.StartedAt
		case QueueCompleted:
			at = &q.CompletedAt
		}
		if *at == nil && slices.Index(queuePath, s) <= slices.Index(queuePath, q.Status) {
			*at = &now
		}
	}
	if q.Status == QueueNoShow || q.Status == QueueCancelled {
		q.CompletedAt = &now
	}
}

// Terminal reports whether no move is left.
func (q *QueueEntry) Terminal() bool { return len(queueMoves[q.Status]) == 0 }

// Recall calls a called entry again at now (the display shows its token
// again): recalls+1, recalled_at = now. Any other status is ECONFLICT: a
// waiting entry is called by a status change, one past the call has
// nothing to call.
func (q *QueueEntry) Recall(now time.Time) error {
	if q.Status != QueueCalled {
		return Conflict("status", fmt.Sprintf("only a called entry can be called again; this one is %s", q.Status))
	}
	t := Timestamp(now)
	q.Recalls++
	q.RecalledAt = &t
	return nil
}

// lastCall is when the entry was last called: its re-call, else its call.
func (q *QueueEntry) lastCall() *time.Time {
	if q.RecalledAt != nil {
		return q.RecalledAt
	}
	return q.CalledAt
}

// QueueUpdate is a partial update of a queue entry.
type QueueUpdate struct {
	Priority *Priority    `json:"priority"`
	Status   *QueueStatus `json:"status"`
}

// Apply applies the update to q at now and validates the result.
func (u *QueueUpdate) Apply(q *QueueEntry, now time.Time) error {
	if u.Priority != nil {
		if !u.Priority.valid() {
			return Invalid("priority", "must be normal, urgent or emergency")
		}
		if q.Status != QueueWaiting && *u.Priority != q.Priority {
			return Errorf(ECONFLICT, "only a waiting entry can change priority")
		}
		q.Priority = *u.Priority
	}
	if u.Status != nil {
		// A status is a move; naming the current one moves nothing. For
		// "called" that hid a second call behind a 200: calling again is
		// its own request.
		switch {
		case *u.Status == QueueCalled && q.Status == QueueCalled:
			return Conflict("status", "the entry is already called; POST /api/v1/queue/{id}/recall calls it again")
		case *u.Status == q.Status:
			return Conflict("status", fmt.Sprintf("the entry is already %s", q.Status))
		}
		return q.Transition(*u.Status, now)
	}
	return nil
}

// OrderQueue sorts a doctor's entries for a day: called and in-progress
// first, then waiting by priority and arrival, then the rest; and sets each
// waiting entry's position and estimated wait.
func OrderQueue(entries []*QueueEntry, consultMinutes int) {
	if consultMinutes <= 0 {
		consultMinutes = DefaultConsultMinutes
	}
	group := func(q *QueueEntry) int {
		switch q.Status {
		case QueueInProgress, QueueCalled:
			return 0
		case QueueWaiting:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(entries, func(a, b *QueueEntry) int {
		if d := group(a) - group(b); d != 0 {
			return d
		}
		if a.Status == QueueWaiting {
			if d := a.Priority.rank() - b.Priority.rank(); d != 0 {
				return d
			}
		}
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return a.Token - b.Token
	})
	busy := 0
	pos := 0
	for _, q := range entries {
		q.Position, q.EstimatedWaitMinutes = 0, 0
		switch q.Status {
		case QueueInProgress, QueueCalled:
			busy = 1
		case QueueWaiting:
			pos++
			q.Position = pos
			q.EstimatedWaitMinutes = (pos - 1 + busy) * consultMinutes
		}
	}
}

// Board is the anonymous waiting-room board of one doctor: tokens and
// counts, never a name or other personal data of a patient.
type Board struct {
	DoctorID   string `json:"doctor_id"`
	DoctorName string `json:"doctor_name"`
	Room       string `json:"room"`
	Day        string `json:"day"`
	NowServing *int   `json:"now_serving"`
	Called     []int  `json:"called"`
	Waiting    []int  `json:"waiting"`
	// TokenPrefix is the doctor's prefix of the day ("A"), "" until the
	// day's first entry; the *Labels fields are the tokens above as
	// labels ("A3"), in the same order (see TokenLabel).
	TokenPrefix          string   `json:"token_prefix"`
	NowServingLabel      *string  `json:"now_serving_label"`
	CalledLabels         []string `json:"called_labels"`
	WaitingLabels        []string `json:"waiting_labels"`
	WaitingCount         int      `json:"waiting_count"`
	EstimatedWaitMinutes int      `json:"estimated_wait_minutes"`
	// LastCall is the latest call or re-call among the day's called and
	// in-progress entries, null before the first: a display flashes a token
	// when LastCall.At moves forward (a re-call keeps now_serving).
	LastCall *BoardCall `json:"last_call"`
	// Archived is true only in the board event of a doctor being archived:
	// the doctor has left every board (GET /queue/board lists active doctors).
	Archived bool `json:"archived,omitempty"`
}

// BoardCall is a token (and its label) and when it was (last) called.
type BoardCall struct {
	Token      int       `json:"token"`
	TokenLabel string    `json:"token_label"`
	At         time.Time `json:"at"`
}

// NewBoard builds a doctor's board from entries already put in order by
// OrderQueue. Its token_prefix is the entries' (the store sets it from the
// whole day when no entry is active).
func NewBoard(d *Doctor, day string, ordered []*QueueEntry, consultMinutes int) Board {
	if consultMinutes <= 0 {
		consultMinutes = DefaultConsultMinutes
	}
	b := Board{DoctorID: d.ID, DoctorName: d.Name, Room: d.Room, Day: day, Called: []int{}, Waiting: []int{},
		CalledLabels: []string{}, WaitingLabels: []string{}, Archived: d.DeletedAt != nil}
	busy := 0
	for _, q := range ordered {
		if b.TokenPrefix == "" {
			b.TokenPrefix = q.TokenPrefix
		}
		if at := q.lastCall(); at != nil && (q.Status == QueueCalled || q.Status == QueueInProgress) &&
			(b.LastCall == nil || at.After(b.LastCall.At)) {
			b.LastCall = &BoardCall{Token: q.Token, TokenLabel: q.Label(), At: *at}
		}
		switch q.Status {
		case QueueInProgress:
			t, l := q.Token, q.Label()
			b.NowServing, b.NowServingLabel = &t, &l
			busy = 1
		case QueueCalled:
			b.Called = append(b.Called, q.Token)
			b.CalledLabels = append(b.CalledLabels, q.Label())
			busy = 1
		case QueueWaiting:
			b.Waiting = append(b.Waiting, q.Token)
			b.WaitingLabels = append(b.WaitingLabels, q.Label())
		}
	}
	if b.NowServing == nil && len(b.Called) > 0 {
		t, l := b.Called[len(b.Called)-1], b.CalledLabels[len(b.CalledLabels)-1]
		b.NowServing, b.NowServingLabel = &t, &l
	}
	b.WaitingCount = len(b.Waiting)
	b.EstimatedWaitMinutes = (b.WaitingCount + busy) * consultMinutes
	return b
}

// Parameters of the consultation estimate (see ConsultMinutes).
const (
	// ConsultSamples is how many of the latest finished consultations count.
	ConsultSamples = 20
	// ConsultPriorWeight is how many consultations the default is worth.
	ConsultPriorWeight = 3
	// ConsultOutlierFactor: a consultation longer than this many times the
	// default is left out (a visit left open over lunch).
	ConsultOutlierFactor = 3
	// MinConsult: a consultation shorter than this is left out (an entry
	// opened and closed by mistake, or completed without being seen).
	MinConsult = time.Minute
)

// ConsultMinutes estimates the length of a doctor's next consultation, in
// whole minutes, from the doctor's finished consultations (entries that
// were completed, timed from started_at to completed_at) and def, the
// doctor's default (default_consult_minutes, else the clinic's; values < 1
// mean DefaultConsultMinutes):
//
//	samples  = the latest ConsultSamples (20) durations d by completed_at
//	           with MinConsult (1 min) ≤ d ≤ ConsultOutlierFactor (3) × def
//	n        = len(samples), m = their median (mean of the middle two if n is even)
//	estimate = round((k × def + n × m) / (k + n)), k = ConsultPriorWeight (3)
//
// With no samples the estimate is def; each sample pulls it toward the
// median, and by 20 samples the default weighs 3/23. The median, not the
// mean, so one long visit moves it little; the bounds, so that a visit
// closed after 10 seconds or left open for an hour does not move it at
// all. The result is at least 1 minute.
func ConsultMinutes(entries []*QueueEntry, def int) int {
	if def < 1 {
		def = DefaultConsultMinutes
	}
	type sample struct {
		at time.Time
		d  time.Duration
	}
	var ss []sample
	limit := time.Duration(ConsultOutlierFactor*def) * time.Minute
	for _, q := range entries {
		if q.Status != QueueCompleted || q.StartedAt == nil || q.CompletedAt == nil {
			continue
		}
		if d := q.CompletedAt.Sub(*q.StartedAt); d >= MinConsult && d <= limit {
			ss = append(ss, sample{*q.CompletedAt, d})
		}
	}
	if len(ss) == 0 {
		return def
	}
	slices.SortFunc(ss, func(a, b sample) int { return b.at.Compare(a.at) })
	ss = ss[:min(len(ss), ConsultSamples)]
	ds := make([]time.Duration, len(ss))
	for i, x := range ss {
		ds[i] = x.d
	}
	slices.Sort(ds)
	n := len(ds)
	median := ds[n/2]
	if n%2 == 0 {
		median = (ds[n/2-1] + ds[n/2]) / 2
	}
	blend := (time.Duration(ConsultPriorWeight*def)*time.Minute + time.Duration(n)*median) / time.Duration(ConsultPriorWeight+n)
	return max(int((blend+time.Minute/2)/time.Minute), 1)
}
