package store_test

import (
	"errors"
	"testing"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/store"
)

// TestPositionAfterRestore: back up at head 3, commit 4–8 (a client's cursor
// is 8), restore the backup, commit 8 new events. The plain cursor 8 cannot
// tell (it resumes after 8, as the contract has always said); the tagged
// cursor "8.<tag>" is refused as gone, carrying the new head.
func TestPositionAfterRestore(t *testing.T) {
	s := openStore(t, store.Options{})
	ctx := staff("restore")
	tenant := "restore"
	for range 3 {
		mustCreate(t, s, ctx, &models.Doctor{Name: "Dr. Before"})
	}
	for range 5 {
		mustCreate(t, s, ctx, &models.Doctor{Name: "Dr. Lost"})
	}
	evs, err := s.ReadEvents(ctx, models.EventQuery{TenantID: tenant, After: 0, Limit: 100})
	if err != nil || len(evs) != 8 {
		t.Fatalf("read: %d events, %v", len(evs), err)
	}
	atThree, atEight := models.EventPosition(&evs[2]), models.EventPosition(&evs[7])
	if err := s.CheckPosition(ctx, tenant, atEight); err != nil {
		t.Fatalf("the current history refuses its own cursor %s: %v", atEight, err)
	}

	// The restore: the log as it was at head 3 (what a backup at head 3 holds).
	db := s.DB()
	if err := db.Exec("DELETE FROM events WHERE tenant_id = ? AND seq > 3", tenant).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("UPDATE tenant_heads SET seq = 3 WHERE tenant_id = ?", tenant).Error; err != nil {
		t.Fatal(err)
	}
	for range 8 {
		mustCreate(t, s, ctx, &models.Doctor{Name: "Dr. After"})
	}

	err = s.CheckPosition(ctx, tenant, atEight)
	var me *models.Error
	if !errors.As(err, &me) || me.Code != models.EGONE || me.Cursor == nil || *me.Cursor != 11 || !errors.Is(err, store.ErrOtherHistory) {
		t.Fatalf("cursor %s from the lost history: %v, want EGONE with head 11", atEight, err)
	}
	if p, err := s.PositionAt(ctx, tenant, 8); err != nil || p == atEight || p.Seq != 8 || len(p.Tag) != models.TagLen {
		t.Fatalf("PositionAt(8) after the restore: %v %v, want a tag other than %s", p, err, atEight)
	}
	if p, err := s.PositionAt(ctx, tenant, 3); err != nil || p != atThree {
		t.Fatalf("PositionAt(3): %v %v, want %s", p, err, atThree)
	}
	if p, err := s.PositionAt(ctx, tenant, 99); err != nil || p != (models.Position{Seq: 99}) {
		t.Fatalf("PositionAt past the head: %v %v, want it untagged", p, err)
	}
	if err := s.CheckPosition(ctx, tenant, atThree); err != nil {
		t.Fatalf("cursor %s from before the backup is still this history: %v", atThree, err)
	}
	if err := s.CheckPosition(ctx, tenant, models.Position{Seq: 8}); err != nil {
		t.Fatalf("a plain integer cursor is unchecked by contract: %v", err)
	}
	ahead := models.Position{Seq: 12, Tag: atEight.Tag}
	if err := s.CheckPosition(ctx, tenant, ahead); !errors.As(err, &me) || me.Code != models.EGONE {
		t.Fatalf("tagged cursor ahead of the head: %v, want EGONE", err)
	}
	if err := s.CheckPosition(ctx, "other-tenant", atThree); !errors.As(err, &me) || me.Code != models.EGONE {
		t.Fatalf("tagged cursor on a tenant without a log: %v, want EGONE", err)
	}
}
