package seed_test

import (
	"context"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/seed"
	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/store"
)

func TestDemoSeedIsIdempotent(t *testing.T) {
	url, _ := testdb.URL(t)
	st, err := store.Open(context.Background(), url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	doc, pat, err := seed.Demo(context.Background(), st, time.Now(), time.UTC)
	if err != nil || !models.ValidID(models.EntityDoctor, doc) || !models.ValidID(models.EntityPatient, pat) {
		t.Fatalf("seed: %q %q %v", doc, pat, err)
	}
	doc2, pat2, err := seed.Demo(context.Background(), st, time.Now(), time.UTC)
	if err != nil || doc2 == "" || pat2 == "" {
		t.Fatalf("second seed: %v", err)
	}
	ctx := models.NewContextWithActor(context.Background(), models.Actor{Subject: "t", TenantID: seed.DemoTenant, Role: models.RoleAdmin})
	for entity, want := range map[string]int{models.EntityDoctor: 3, models.EntityPatient: 12, models.EntityAppointment: 9, models.EntityQueue: 8} {
		page, err := st.List(ctx, entity, models.ListQuery{Limit: 100})
		if err != nil || len(page.Items) != want {
			t.Errorf("%s: %d items (%v), want %d", entity, len(page.Items), err, want)
		}
	}
	boards, _, err := st.Boards(ctx, seed.DemoTenant)
	if err != nil || len(boards) != 3 || boards[0].WaitingCount == 0 {
		t.Fatalf("boards: %+v %v", boards, err)
	}
}
