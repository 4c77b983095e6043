package models

import "time"

// Patient is a person the clinic sees. Deleting archives it.
type Patient struct {
	Meta
	Name        string `json:"name" gorm:"not null"`
	DateOfBirth string `json:"date_of_birth" gorm:"not null"`
	Phone       string `json:"phone" gorm:"not null"`
	MRN         string `json:"mrn" gorm:"column:mrn;not null"`
}

func (*Patient) Entity() string    { return EntityPatient }
func (p *Patient) Patient() string { return p.ID }

// Validate checks the fields a client sets.
func (p *Patient) Validate() error {
	var v Validation
	checkLine(&v, "name", p.Name, MaxNameLen, true)
	if p.DateOfBirth != "" {
		if _, err := time.Parse(time.DateOnly, p.DateOfBirth); err != nil {
			v.Add("date_of_birth", "must be a date YYYY-MM-DD")
		}
	}
	checkLine(&v, "phone", p.Phone, maxShort, false)
	checkLine(&v, "mrn", p.MRN, maxShort, false)
	return v.Err()
}

// PatientUpdate is a partial update of a patient.
type PatientUpdate struct {
	Name        *string `json:"name"`
	DateOfBirth *string `json:"date_of_birth"`
	Phone       *string `json:"phone"`
	MRN         *string `json:"mrn"`
}

// Apply applies the update to p and validates the result.
func (u *PatientUpdate) Apply(p *Patient) error {
	set(&p.Name, u.Name)
	set(&p.DateOfBirth, u.DateOfBirth)
	set(&p.Phone, u.Phone)
	set(&p.MRN, u.MRN)
	if u.MRN != nil && *u.MRN == "" {
		return Invalid("mrn", "cannot be empty")
	}
	return p.Validate()
}

func set[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}
