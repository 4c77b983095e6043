package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
)

// TestWebhookProgress: the deliverer's state moves in batches. One
// transaction saves several subscriptions' progress: each moves only from
// the cursor the deliverer last saved and under its lease (a replay, a
// disable or another instance's lease leaves that one alone, "lost", and
// the others saved); To > From clears the failures; the version comes back
// so a change is noticed; LeaseUntilMS 0 releases. Leases are taken in one
// statement for several subscriptions, never from a live holder. Records
// are trimmed to the newest keepDeliveries per subscription. On SQLite,
// and on Postgres with DATABASE_URL.
func TestWebhookProgress(t *testing.T) {
	url, _ := testdb.URL(t)
	s, err := Open(context.Background(), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := models.NewContextWithActor(context.Background(), models.Actor{Subject: "a", TenantID: "t1", Role: models.RoleAdmin})
	var ids []string
	for range 3 {
		wh := &models.Webhook{URL: "https://example.com/hook", Enabled: true, Secret: models.NewWebhookSecret()}
		if err := s.CreateWebhook(ctx, wh); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, wh.ID)
	}
	for i := range 20 {
		if _, err := s.Create(ctx, &models.Doctor{Name: fmt.Sprintf("Dr. %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	const me, other = "inst_me", "inst_other"
	got, err := s.AcquireWebhooks(ctx, ids[:2], me, 1000, 5000)
	if err != nil || len(got) != 2 {
		t.Fatalf("acquire: %v %v", got, err)
	}
	if got, err := s.AcquireWebhooks(ctx, ids, other, 2000, 6000); err != nil || len(got) != 1 || got[0] != ids[2] {
		t.Fatalf("another instance took %v (%v): only the free one may be taken", got, err)
	}
	if got, err := s.AcquireWebhooks(ctx, ids[:1], other, 5001, 9000); err != nil || len(got) != 1 {
		t.Fatalf("an expired lease was not taken over: %v %v", got, err)
	}
	if _, err := s.AcquireWebhooks(ctx, ids[:1], me, 5002, 12000); err != nil {
		t.Fatal(err)
	}
	// ids[0] is other's now, ids[1] mine, ids[2] other's.
	a, _ := s.LeasedWebhook(ctx, ids[1], me)
	if err := s.db.Exec(`UPDATE webhooks SET failures = 3 WHERE id = ?`, ids[1]).Error; err != nil {
		t.Fatal(err)
	}
	batch := []WebhookProgress{
		{WebhookID: ids[0], TenantID: "t1", From: 0, To: 5, LeaseUntilMS: 20000},
		{WebhookID: ids[1], TenantID: "t1", From: a.Cursor, To: a.Cursor + 10, LeaseUntilMS: 20000,
			Deliveries: []models.WebhookDelivery{{FirstSeq: a.Cursor + 2, LastSeq: a.Cursor + 10, Status: 204, Result: "success", LatencyMS: 7}}},
	}
	res, err := s.SaveWebhookProgress(ctx, me, batch)
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Lost || res[1].Lost || res[1].Version != a.Version {
		t.Fatalf("results %+v", res)
	}
	b, err := s.LeasedWebhook(ctx, ids[1], me)
	if err != nil || b.Cursor != a.Cursor+10 || b.Failures != 0 || b.LeaseUntilMS != 20000 {
		t.Fatalf("after the save: %+v %v", b, err)
	}
	if o, _ := s.LeasedWebhook(ctx, ids[0], other); o == nil || o.Cursor != 0 {
		t.Fatalf("another's subscription moved: %+v", o)
	}
	ds, err := s.WebhookDeliveries(ctx, ids[1], 10)
	if err != nil || len(ds) != 1 || ds[0].FirstSeq != a.Cursor+2 || ds[0].LastSeq != a.Cursor+10 || ds[0].MessageID != "" {
		t.Fatalf("records %+v %v", ds, err)
	}

	// A save from a cursor a replay moved is lost; so is a renewal.
	if _, err := s.ReplayWebhook(ctx, ids[1], 3); err != nil {
		t.Fatal(err)
	}
	res, err = s.SaveWebhookProgress(ctx, me, []WebhookProgress{{WebhookID: ids[1], TenantID: "t1", From: b.Cursor, To: b.Cursor + 1, LeaseUntilMS: 30000}})
	if err != nil || !res[0].Lost {
		t.Fatalf("a save after a replay: %+v %v", res, err)
	}
	// A change of the subscription shows in the version; a release frees it.
	up, err := s.UpdateWebhook(ctx, ids[1], 0, func(wh *models.Webhook, _ time.Time) error { wh.URL = "https://example.org/"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	res, err = s.SaveWebhookProgress(ctx, me, []WebhookProgress{{WebhookID: ids[1], TenantID: "t1", From: 3, To: 3}})
	if err != nil || res[0].Lost || res[0].Version != up.Version || up.Version == a.Version {
		t.Fatalf("release: %+v %v (version %d → %d)", res, err, a.Version, up.Version)
	}
	if _, err := s.LeasedWebhook(ctx, ids[1], me); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("still leased after a release: %v", err)
	}
	if got, _ := s.AcquireWebhooks(ctx, ids[1:2], other, 1, 2); len(got) != 1 {
		t.Fatalf("a released lease was not free")
	}

	// Trimming keeps the newest keepDeliveries of each subscription,
	// whatever the others write between them.
	if _, err := s.AcquireWebhooks(ctx, ids[1:2], me, 1<<40, 1<<41); err != nil {
		t.Fatal(err)
	}
	cursor := int64(3)
	for i := range 2*keepDeliveries/10 + 20 {
		ps := []WebhookProgress{{WebhookID: ids[1], TenantID: "t1", From: cursor, To: cursor, LeaseUntilMS: 1 << 41}}
		for j := range 10 {
			ps[0].Deliveries = append(ps[0].Deliveries, models.WebhookDelivery{FirstSeq: int64(i*10 + j), LastSeq: int64(i*10 + j), Status: 200, Result: "success"})
		}
		if _, err := s.SaveWebhookProgress(ctx, me, ps); err != nil {
			t.Fatal(err)
		}
		ps[0].WebhookID, ps[0].From, ps[0].To = ids[2], 2, 2
		if res, err := s.SaveWebhookProgress(ctx, other, ps); err != nil || res[0].Lost {
			t.Fatal(res, err)
		}
	}
	for _, id := range ids[1:] {
		var n int64
		s.db.Model(&models.WebhookDelivery{}).Where("webhook_id = ?", id).Count(&n)
		if n < keepDeliveries || n > keepDeliveries+trimEvery*10 {
			t.Errorf("%s keeps %d records, want about %d", id, n, keepDeliveries)
		}
	}
}
