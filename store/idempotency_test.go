package store

import (
	"context"
	"io/fs"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/testdb"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/pressly/goose/v3"
)

// TestIdempotencyMigration: migration 00003 moves the keys of the old
// single-column form (sub + ":" + key) into subject and key columns where
// that split is unambiguous, drops the rest, and a kept key still answers
// its caller's repeat; Down and Up again run on both databases.
func TestIdempotencyMigration(t *testing.T) {
	ctx := context.Background()
	url, _ := testdb.URL(t)
	s, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	sub, err := fs.Sub(migrations, "migrations/"+s.dialect)
	if err != nil {
		t.Fatal(err)
	}
	gd := goose.DialectSQLite3
	if s.dialect == Postgres {
		gd = goose.DialectPostgres
	}
	p, err := goose.NewProvider(gd, s.sqlDB, sub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 2); err != nil {
		t.Fatalf("down: %v", err)
	}
	now := time.Now().UTC()
	for _, r := range []struct{ tenant, key string }{
		{"t1", "u:k1"}, {"t1", "v:x"}, {"t2", "u:k1"}, // one colon: kept, split
		{"t1", "u:a:b"}, {"t1", "nocolon"}, // ambiguous or foreign: dropped
	} {
		if err := s.db.Exec(`INSERT INTO idempotency_keys (tenant_id, key, request_hash, response, created_at) VALUES (?, ?, 'h1', ?, ?)`,
			r.tenant, r.key, `{"legacy":"`+r.tenant+" "+r.key+`"}`, now).Error; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.migrate(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	var rows []idempotencyRow
	if err := s.db.Order("tenant_id, subject, key").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.TenantID+"|"+r.Subject+"|"+r.Key)
	}
	if want := []string{"t1|u|k1", "t1|v|x", "t2|u|k1"}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("rows after 00003: %q, want %q", got, want)
	}
	// The kept key answers its own caller's repeat, and nobody else's.
	as := func(tenant, subject string) context.Context {
		ctx := models.NewContextWithActor(ctx, models.Actor{Subject: subject, TenantID: tenant, Role: models.RoleAdmin})
		return models.NewContextWithIdempotencyKey(ctx, models.IdempotencyKey{Key: "k1", Hash: "h1"})
	}
	b, err := s.Create(as("t1", "u"), &models.Doctor{Name: "Dr New"})
	if err != nil || string(b) != `{"legacy":"t1 u:k1"}` {
		t.Fatalf("repeat of a migrated key: %s %v", b, err)
	}
	b, err = s.Create(as("t1", "w"), &models.Doctor{Name: "Dr New"})
	if err != nil || string(b) == `{"legacy":"t1 u:k1"}` {
		t.Fatalf("another subject's equal key: %s %v", b, err)
	}
	var n int64
	if err := s.db.Table("idempotency_keys").Where("tenant_id = 't1' AND subject = 'w' AND key = 'k1'").Count(&n).Error; err != nil || n != 1 {
		t.Fatalf("the new caller's key row: %d %v", n, err)
	}
}
