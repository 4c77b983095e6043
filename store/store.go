// Package store keeps the clinic's records and its per-tenant change log in
// Postgres or SQLite through GORM. Every write runs in one transaction that
// applies the domain rule, saves the records, appends their events with the
// next per-tenant sequence numbers, and commits; only then is the relay
// nudged.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/glebarez/sqlite"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

//go:embed migrations
var migrations embed.FS

// Dialects.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// Options configures a Store.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Location is the clinic's time zone: it decides a queue's day and the
	// appointments of a date. UTC when nil.
	Location *time.Location
	// OnCommit is called after every committed write with the tenant, its
	// new head seq and the number of events the write appended. It must not
	// block.
	OnCommit func(tenantID string, head int64, events int)
	// Logger receives GORM's slow-query and error logs; silent when nil.
	Logger logger.Interface
	// MaxDeltaEvents bounds the change-log rows one list delta (?since=)
	// examines; a delta with more changes answers EGONE (410: refetch the
	// snapshot). DefaultMaxDeltaEvents when 0.
	MaxDeltaEvents int
	// BookingPastGrace is how long before now an appointment may start
	// when it is booked or rescheduled: 0 means
	// models.DefaultBookingPastGrace (15 minutes), a negative value none.
	BookingPastGrace time.Duration
	// DefaultConsultMinutes is the clinic's default consultation, the prior
	// of the wait estimate for doctors without their own: 0 means
	// models.DefaultConsultMinutes (10).
	DefaultConsultMinutes int
}

// DefaultMaxDeltaEvents is the default Options.MaxDeltaEvents: a clinic's
// busiest day of one resource, far more than a list page (1,000).
const DefaultMaxDeltaEvents = 10000

// Store is the GORM-backed implementation of the clinic's data and change log.
type Store struct {
	db      *gorm.DB
	sqlDB   *sql.DB
	dialect string
	now     func() time.Time
	loc     *time.Location
	commit  func(string, int64, int)
	// maxDelta bounds the log rows one delta examines.
	maxDelta int
	grace    time.Duration
	consult  int
}

// Open connects to the database named by url (postgres://…, sqlite:PATH or
// a bare path), runs the migrations, and returns the store.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	dialect, dsn := ParseURL(url)
	var dial gorm.Dialector
	switch dialect {
	case Postgres:
		dial = postgres.Open(dsn)
	default:
		if dir := filepath.Dir(dsn); dir != "." && !strings.HasPrefix(dsn, "file::memory:") {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("store: create %s: %w", dir, err)
			}
		}
		// WAL lets readers of other processes (backups, sqlite3 CLI) work
		// beside us; one connection serialises writers in Go instead of in
		// SQLite's busy loop, which keeps commit order equal to seq order.
		dial = sqlite.Open("file:" + dsn + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate")
	}
	lg := opts.Logger
	if lg == nil {
		lg = logger.Discard
	}
	db, err := gorm.Open(dial, &gorm.Config{Logger: lg, TranslateError: true, SkipDefaultTransaction: true, NowFunc: func() time.Time { return time.Now().UTC() }})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dialect, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if dialect == SQLite {
		sqlDB.SetMaxOpenConns(1)
	} else {
		sqlDB.SetMaxOpenConns(32)
		sqlDB.SetMaxIdleConns(32)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	s := &Store{db: db, sqlDB: sqlDB, dialect: dialect, now: opts.Now, loc: opts.Location, commit: opts.OnCommit, maxDelta: opts.MaxDeltaEvents}
	if s.maxDelta <= 0 {
		s.maxDelta = DefaultMaxDeltaEvents
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.loc == nil {
		s.loc = time.UTC
	}
	switch s.grace = opts.BookingPastGrace; {
	case s.grace == 0:
		s.grace = models.DefaultBookingPastGrace
	case s.grace < 0:
		s.grace = 0
	}
	if s.consult = opts.DefaultConsultMinutes; s.consult <= 0 {
		s.consult = models.DefaultConsultMinutes
	}
	if err := s.migrate(ctx); err != nil {
		sqlDB.Close()
		return nil, err
	}
	if err := s.indexUnsearchable(ctx); err != nil {
		sqlDB.Close()
		return nil, err
	}
	return s, nil
}

// ParseURL splits a DATABASE_URL into its dialect and driver DSN.
func ParseURL(url string) (dialect, dsn string) {
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return Postgres, url
	case strings.HasPrefix(url, "sqlite:"):
		return SQLite, strings.TrimPrefix(url, "sqlite:")
	}
	return SQLite, url
}

func (s *Store) migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrations, "migrations/"+s.dialect)
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	var opts []goose.ProviderOption
	gd := goose.DialectSQLite3
	if s.dialect == Postgres {
		gd = goose.DialectPostgres
		// Several replicas may start at once: an advisory lock lets one migrate.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("store: migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gd, s.sqlDB, sub, opts...)
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// Dialect returns Postgres or SQLite.
func (s *Store) Dialect() string { return s.dialect }

// Location returns the clinic's time zone.
func (s *Store) Location() *time.Location { return s.loc }

// Today returns the clinic's current date, YYYY-MM-DD.
func (s *Store) Today() string { return s.now().In(s.loc).Format(time.DateOnly) }

// DB returns the underlying handle, for tests and for the LISTEN path.
func (s *Store) DB() *gorm.DB { return s.db }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.sqlDB.Close() }

// wrap turns an unexpected error into EUNAVAILABLE when the database does
// not answer, and adds the operation's name otherwise.
func (s *Store) wrap(ctx context.Context, op string, err error) error {
	var me *models.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &me):
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", op, err)
	case s.Ping(context.WithoutCancel(ctx)) != nil:
		return &models.Error{Code: models.EUNAVAILABLE, Message: "The database is unreachable; try again shortly."}
	}
	return fmt.Errorf("%s: %w", op, err)
}
