package models

import "strconv"

// PrescriptionItem is one drug of a prescription.
type PrescriptionItem struct {
	Drug      string `json:"drug"`
	Dose      string `json:"dose"`
	Route     string `json:"route"`
	Frequency string `json:"frequency"`
	Duration  string `json:"duration"`
}

// Prescription belongs to a visit; it can change while the visit is open.
type Prescription struct {
	Meta
	VisitID   string             `json:"visit_id" gorm:"not null"`
	PatientID string             `json:"patient_id" gorm:"not null"`
	DoctorID  string             `json:"doctor_id" gorm:"not null"`
	Items     []PrescriptionItem `json:"items" gorm:"serializer:json;not null"`
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
