// Package seed fills a demo tenant with a day of clinic data (DEV=1).
package seed

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
)

// Store is what seeding needs.
type Store interface {
	Create(ctx context.Context, rec models.Record) (json.RawMessage, error)
	Update(ctx context.Context, entity, id string, ifMatch int64, update any) (json.RawMessage, error)
	List(ctx context.Context, entity string, q models.ListQuery) (*models.Page, error)
}

// DemoTenant is the tenant DEV=1 seeds.
const DemoTenant = "demo-clinic"

// Demo seeds the demo tenant unless it already has doctors. It returns the
// first doctor's and the first patient's ids (for the demo tokens).
func Demo(ctx context.Context, st Store, now time.Time, loc *time.Location) (doctor, patient string, err error) {
	ctx = models.NewContextWithActor(ctx, models.Actor{Subject: "seed", TenantID: DemoTenant, Role: models.RoleAdmin})
	existing, err := st.List(ctx, models.EntityDoctor, models.ListQuery{Limit: 1})
	if err != nil {
		return "", "", fmt.Errorf("seed: %w", err)
	}
	if len(existing.Items) > 0 {
		pats, err := st.List(ctx, models.EntityPatient, models.ListQuery{Limit: 1})
		if err != nil || len(pats.Items) == 0 {
			return "", "", fmt.Errorf("seed: find patient: %w", err)
		}
		return existing.Items[0].Base().ID, pats.Items[0].Base().ID, nil
	}
	create := func(rec models.Record) (string, error) {
		b, err := st.Create(ctx, rec)
		if err != nil {
			return "", fmt.Errorf("seed %s: %w", rec.Entity(), err)
		}
		var m struct{ ID string }
		_ = json.Unmarshal(b, &m)
		return m.ID, nil
	}
	var doctors []string
	for _, d := range []models.Doctor{
		{Name: "Dr. Amara Okafor", Specialty: "General practice", Room: "1"},
		{Name: "Dr. Lukas Berg", Specialty: "Paediatrics", Room: "2"},
		{Name: "Dr. Priya Raman", Specialty: "Dermatology", Room: "3"},
	} {
		id, err := create(&d)
		if err != nil {
			return "", "", err
		}
		doctors = append(doctors, id)
	}
	names := []string{"Maria Silva", "James Chen", "Fatima Noor", "Oliver Smith", "Aiko Tanaka", "Kwame Mensah",
		"Sofia Rossi", "Liam O'Brien", "Nadia Haddad", "Ethan Brown", "Chloé Martin", "Ravi Patel"}
	var patients []string
	for i, n := range names {
		id, err := create(&models.Patient{Name: n, DateOfBirth: fmt.Sprintf("%d-%02d-%02d", 1950+i*4, i%12+1, i*2+1),
			Phone: fmt.Sprintf("+1 555 01%02d", i), MRN: fmt.Sprintf("MRN-%05d", 1001+i)})
		if err != nil {
			return "", "", err
		}
		patients = append(patients, id)
	}
	// The day's appointments start at the next ten-minute mark: bookings in
	// the past are refused, and the first five patients have arrived early.
	start := now.In(loc).Truncate(10 * time.Minute).Add(10 * time.Minute)
	var appts []string
	for i := range 9 {
		at := start.Add(time.Duration(i) * 20 * time.Minute)
		id, err := create(&models.Appointment{PatientID: patients[i], DoctorID: doctors[i%3], StartsAt: at, EndsAt: at.Add(20 * time.Minute),
			Reason: []string{"Follow-up", "Annual check-up", "Rash", "Fever", "Vaccination"}[i%5]})
		if err != nil {
			return "", "", err
		}
		appts = append(appts, id)
	}
	// Check in the first five (each gets its queue entry), call one, and add walk-ins.
	checkedIn := models.AppointmentCheckedIn
	for _, id := range appts[:5] {
		if _, err := st.Update(ctx, models.EntityAppointment, id, 0, &models.AppointmentUpdate{Status: &checkedIn}); err != nil {
			return "", "", fmt.Errorf("seed check-in: %w", err)
		}
	}
	urgent := models.PriorityUrgent
	for i, p := range patients[9:] {
		prio := models.PriorityNormal
		if i == 0 {
			prio = urgent
		}
		if _, err := create(&models.QueueEntry{PatientID: p, DoctorID: doctors[i%3], Priority: prio}); err != nil {
			return "", "", err
		}
	}
	return doctors[0], patients[0], nil
}
