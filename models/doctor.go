package models

// Doctor is a clinician who takes a queue. Deleting archives it.
type Doctor struct {
	Meta
	Name      string `json:"name" gorm:"not null"`
	Specialty string `json:"specialty" gorm:"not null"`
	Room      string `json:"room" gorm:"not null"`
}

func (*Doctor) Entity() string  { return EntityDoctor }
func (*Doctor) Patient() string { return "" }

// Validate checks the fields a client sets.
func (d *Doctor) Validate() error {
	var v Validation
	checkLine(&v, "name", d.Name, MaxNameLen, true)
	checkFreeText(&v, "specialty", d.Specialty, MaxTextLen, false)
	checkLine(&v, "room", d.Room, maxShort, false)
	return v.Err()
}

// DoctorUpdate is a partial update of a doctor.
type DoctorUpdate struct {
	Name      *string `json:"name"`
	Specialty *string `json:"specialty"`
	Room      *string `json:"room"`
}

// Apply applies the update to d and validates the result.
func (u *DoctorUpdate) Apply(d *Doctor) error {
	set(&d.Name, u.Name)
	set(&d.Specialty, u.Specialty)
	set(&d.Room, u.Room)
	return d.Validate()
}
