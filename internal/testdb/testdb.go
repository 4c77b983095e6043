// Package testdb gives each test its own database: a fresh Postgres schema
// when DATABASE_URL names Postgres, a SQLite file in t.TempDir() otherwise.
// Under CI=true a DATABASE_URL that does not answer fails the test; it never
// silently falls back.
package testdb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clinicpulse/clinicpulse/models"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to create schemas
)

// URL returns a DATABASE_URL for a fresh database of this test, and the
// dialect's name. With DATABASE_URL=postgres://… it creates a schema that
// the test drops when it ends.
func URL(t testing.TB) (string, string) {
	t.Helper()
	base := os.Getenv("DATABASE_URL")
	if !strings.HasPrefix(base, "postgres") {
		return "sqlite:" + filepath.Join(t.TempDir(), "test.db"), "sqlite"
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	defer db.Close()
	schema := "t_" + strings.ToLower(models.NewID("s")[2:])
	if _, err := db.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("testdb: create schema (is Postgres up at DATABASE_URL?): %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err == nil {
			db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			db.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testdb: DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), "postgres"
}

// Postgres reports whether tests run against Postgres.
func Postgres() bool { return strings.HasPrefix(os.Getenv("DATABASE_URL"), "postgres") }

// RequirePostgres skips a Postgres-only test when DATABASE_URL is not
// Postgres, and fails it under CI=true, where Postgres must be there.
func RequirePostgres(t testing.TB) {
	t.Helper()
	if Postgres() {
		return
	}
	if os.Getenv("CLINICPULSE_DB_PASS") == "sqlite" {
		t.Skip("Postgres-only: runs in make test's Postgres pass")
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but DATABASE_URL does not name Postgres")
	}
	t.Skip("set DATABASE_URL=postgres://… to run this test")
}

// Describe names the database for test logs.
func Describe(dialect string) string { return fmt.Sprintf("[%s]", dialect) }
