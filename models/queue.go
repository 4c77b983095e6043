package models

import (
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

// DefaultConsultMinutes estimates a consultation when a doctor has not
// completed one today.
const DefaultConsultMinutes = 10

// QueueEntry is a patient waiting for a doctor on a day.
type QueueEntry struct {
	Meta
	PatientID     string      `json:"patient_id" gorm:"not null"`
	DoctorID      string      `json:"doctor_id" gorm:"not null"`
	AppointmentID *string     `json:"appointment_id"`
	Priority      Priority    `json:"priority" gorm:"not null"`
	Status        QueueStatus `json:"status" gorm:"not null"`
	Token         int         `json:"token" gorm:"not null"`
	Day           string      `json:"day" gorm:"not null"`
	CalledAt      *time.Time  `json:"called_at"`
	StartedAt     *time.Time  `json:"started_at"`
	CompletedAt   *time.Time  `json:"completed_at"`

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
	if u.Status != nil && *u.Status != q.Status {
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
	DoctorID             string `json:"doctor_id"`
	DoctorName           string `json:"doctor_name"`
	Room                 string `json:"room"`
	Day                  string `json:"day"`
	NowServing           *int   `json:"now_serving"`
	Called               []int  `json:"called"`
	Waiting              []int  `json:"waiting"`
	WaitingCount         int    `json:"waiting_count"`
	EstimatedWaitMinutes int    `json:"estimated_wait_minutes"`
}

// NewBoard builds a doctor's board from entries already put in order by
// OrderQueue.
func NewBoard(d *Doctor, day string, ordered []*QueueEntry, consultMinutes int) Board {
	if consultMinutes <= 0 {
		consultMinutes = DefaultConsultMinutes
	}
	b := Board{DoctorID: d.ID, DoctorName: d.Name, Room: d.Room, Day: day, Called: []int{}, Waiting: []int{}}
	busy := 0
	for _, q := range ordered {
		switch q.Status {
		case QueueInProgress:
			t := q.Token
			b.NowServing = &t
			busy = 1
		case QueueCalled:
			b.Called = append(b.Called, q.Token)
			busy = 1
		case QueueWaiting:
			b.Waiting = append(b.Waiting, q.Token)
		}
	}
	if b.NowServing == nil && len(b.Called) > 0 {
		t := b.Called[len(b.Called)-1]
		b.NowServing = &t
	}
	b.WaitingCount = len(b.Waiting)
	b.EstimatedWaitMinutes = (b.WaitingCount + busy) * consultMinutes
	return b
}

// ConsultMinutes estimates a consultation from the entries a doctor
// completed (started to completed), within 3..60 minutes; the default when
// there are none.
func ConsultMinutes(entries []*QueueEntry) int {
	var sum time.Duration
	n := 0
	for _, q := range entries {
		if q.Status == QueueCompleted && q.StartedAt != nil && q.CompletedAt != nil {
			sum += q.CompletedAt.Sub(*q.StartedAt)
			n++
		}
	}
	if n == 0 {
		return DefaultConsultMinutes
	}
	return min(max(int((sum/time.Duration(n)+time.Minute/2)/time.Minute), 3), 60)
}
