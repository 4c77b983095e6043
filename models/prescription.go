package models

import (
	"strconv"
	"time"
)

// PrescriptionItem is one drug of a prescription.
type PrescriptionItem struct {
	Drug      string `json:"drug"`
	Dose      string `json:"dose"`
	Route     string `json:"route"`
	Frequency string `json:"frequency"`
	Duration  string `json:"duration"`
}

// Prescription belongs to a visit; it can change while the visit is open.
// Only the visit's doctor prescribes (see CanPrescribe); PrescribedBy and
// PrescribedAt record who wrote it and when (the store sets them; a client's
// values are ignored). Prescriptions written before migration 00005 have
// PrescribedBy "" (not recorded) and PrescribedAt their created_at.
type Prescription struct {
	Meta
	VisitID      string             `json:"visit_id" gorm:"not null"`
	PatientID    string             `json:"patient_id" gorm:"not null"`
	DoctorID     string             `json:"doctor_id" gorm:"not null"`
	Items        []PrescriptionItem `json:"items" gorm:"serializer:json;not null"`
	PrescribedBy string             `json:"prescribed_by" gorm:"not null"`
	PrescribedAt *time.Time         `json:"prescribed_at"`
}

// CanPrescribe applies the prescribing rule: only a doctor prescribes, and
// only on a visit that is theirs — a doctor token's sub is its doctor's id,
// and it must be the visit's doctor_id (visitDoctor). There is no covering:
// an admin, a coordinator or another doctor cannot write, change or delete
// a prescription on the visit; reassigning the visit to the covering doctor
// is how cover works. The answer is EFORBIDDEN (naming visit_id when the
// visit is another doctor's), or nil.
func CanPrescribe(a Actor, visitDoctor string) error {
	if a.Role != RoleDoctor {
		return Errorf(EFORBIDDEN, "only a doctor prescribes; a %s token cannot", a.Role)
	}
	if a.Subject != visitDoctor {
		return &Error{Code: EFORBIDDEN, Message: "visit_id: is another doctor's visit; a doctor prescribes only on their own visits",
			Fields: []FieldError{{Field: "visit_id", Message: "is another doctor's visit; a doctor prescribes only on their own visits"}}}
	}
	return nil
}

func (*Prescription) Entity() string    { return EntityPrescription }
func (p *Prescription) Patient() string { return p.PatientID }

// Validate checks the fields a client sets.
func (p *Prescription) Validate() error {
	var v Validation
	checkRef(&v, "visit_id", EntityVisit, p.VisitID, true)
	switch {
	case len(p.Items) == 0:
		v.Add("items", "needs at least one item")
	case len(p.Items) > maxItems:
		v.Add("items", "has too many items")
	}
	for i, it := range p.Items {
		f := "items[" + strconv.Itoa(i) + "]."
		checkLine(&v, f+"drug", it.Drug, MaxNameLen, true)
		checkLine(&v, f+"dose", it.Dose, MaxNameLen, true)
		checkLine(&v, f+"route", it.Route, MaxNameLen, false)
		checkLine(&v, f+"frequency", it.Frequency, MaxNameLen, false)
		checkLine(&v, f+"duration", it.Duration, MaxNameLen, false)
	}
	return v.Err()
}

// PrescriptionUpdate is a partial update of a prescription.
type PrescriptionUpdate struct {
	Items *[]PrescriptionItem `json:"items"`
}

// Apply applies the update to p.
func (u *PrescriptionUpdate) Apply(p *Prescription) error {
	if u.Items != nil {
		p.Items = *u.Items
	}
	return p.Validate()
}
