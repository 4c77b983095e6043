package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/store"
)

// scopes are the audiences the scoped-read tests read as.
var scopes = map[string]models.Scope{
	"staff":   {},
	"patient": {PatientID: "pat_7"},
	"display": {BoardOnly: true},
}

// TestScopedReadsAreExact: every scoped read of the log (a union of index
// ranges merged in seq order) returns exactly the first Limit events after
// After (and up to Until) that models.Scope.Visible accepts, as the scope
// receives them (no actor for display and patient audiences).
func TestScopedReadsAreExact(t *testing.T) {
	s := openStore(t, store.Options{})
	const n = 3000
	seedLog(t, s, "exact", n)
	seedLog(t, s, "other", 500) // another tenant's events never leak in
	ctx := context.Background()
	all, err := s.ReadEvents(ctx, models.EventQuery{TenantID: "exact", Limit: n + 10})
	if err != nil || len(all) != n {
		t.Fatalf("staff read of the whole log: %d events, %v", len(all), err)
	}
	topicSets := []models.Topics{nil, {"queue": true, "board": true}, {"doctors": true}, {"invoices": true, "doctors": true}, {"board": true}}
	rng := rand.New(rand.NewPCG(1, 2))
	for name, scope := range scopes {
		for _, topics := range topicSets {
			for range 12 {
				q := models.EventQuery{TenantID: "exact", After: rng.Int64N(n), Limit: 1 + rng.IntN(300), Scope: scope, Topics: topics}
				if rng.IntN(2) == 0 {
					q.Until = q.After + rng.Int64N(n-q.After+1)
				}
				var want []int64
				for i := range all {
					e := all[i]
					if e.Seq > q.After && (q.Until == 0 || e.Seq <= q.Until) && scope.Visible(&e, topics) && len(want) < q.Limit {
						want = append(want, e.Seq)
					}
				}
				got, err := s.ReadEvents(ctx, q)
				if err != nil {
					t.Fatalf("%s %v: %v", name, q, err)
				}
				var seqs []int64
				for _, e := range got {
					seqs = append(seqs, e.Seq)
					if e.TenantID != "exact" || !scope.Visible(&e, topics) {
						t.Fatalf("%s: event %d of %s is not visible", name, e.Seq, e.TenantID)
					}
					if (e.Actor == "") == scope.SeesActors() {
						t.Fatalf("%s: event %d has actor %q", name, e.Seq, e.Actor)
					}
				}
				if !slices.Equal(seqs, want) {
					t.Fatalf("%s topics %s after %d until %d limit %d: got %v, want %v", name, topics.Key(), q.After, q.Until, q.Limit, seqs, want)
				}
			}
		}
	}
}

// TestScopedReadPlans: each scoped read of the log — events page, stream
// replay, resource delta — is planned as index range scans of the indexes
// its ranges match (the primary key, events_entity,
// events_patient), never a scan of the table or of the tenant's
// whole log. On Postgres the plan is executed (EXPLAIN ANALYZE) on a
// 20,000-event log, before and after ANALYZE: no row is removed by a
// filter, and no range reads more than its limit.
func TestScopedReadPlans(t *testing.T) {
	s := openStore(t, store.Options{})
	const n, limit = 20000, 101
	seedLog(t, s, "plans", n)
	pk := map[string]string{store.SQLite: "sqlite_autoindex_events_1", store.Postgres: "events_pkey"}[s.Dialect()]
	type read struct {
		name    string
		sql     string
		args    []any
		indexes []string // one per range, in any order
	}
	var reads []read
	ev := func(name string, q models.EventQuery, indexes ...string) {
		q.TenantID, q.Limit = "plans", limit
		sql, args, ok := s.EventRead(q)
		if !ok {
			t.Fatalf("%s: no read", name)
		}
		reads = append(reads, read{name, sql, args, indexes})
	}
	const ent, pat = "events_entity", "events_patient"
	ev("staff page", models.EventQuery{After: 0}, pk)
	ev("staff replay", models.EventQuery{After: 5000, Until: 15000}, pk)
	ev("staff topics", models.EventQuery{Topics: models.Topics{"queue": true, "board": true, "doctors": true}}, ent, ent, ent)
	ev("display", models.EventQuery{Scope: scopes["display"]}, ent)
	ev("display replay", models.EventQuery{After: 100, Until: n, Scope: scopes["display"]}, ent)
	ev("patient", models.EventQuery{Scope: scopes["patient"]}, ent, ent, pat)
	ev("patient replay", models.EventQuery{After: 100, Until: n, Scope: scopes["patient"]}, ent, ent, pat)
	ev("patient topics", models.EventQuery{Scope: scopes["patient"], Topics: models.Topics{"queue": true, "board": true}}, ent, pat)
	if _, _, ok := s.EventRead(models.EventQuery{TenantID: "plans", Scope: scopes["display"], Topics: models.Topics{"doctors": true}}); ok {
		t.Fatal("a display's read of doctors' events runs a query")
	}
	for _, d := range []struct {
		name   string
		actor  models.Actor
		entity string
		index  string
	}{
		{"staff delta", models.Actor{TenantID: "plans", Role: models.RoleAdmin}, "queue", ent},
		{"patient delta", models.Actor{TenantID: "plans", Role: models.RolePatient, Subject: "pat_7"}, "appointments", pat},
		{"patient delta of doctors", models.Actor{TenantID: "plans", Role: models.RolePatient, Subject: "pat_7"}, "doctors", ent},
	} {
		sql, args, ok := s.DeltaRead(d.actor, d.entity, 0, n, limit)
		if !ok {
			t.Fatalf("%s: no read", d.name)
		}
		reads = append(reads, read{d.name, sql, args, []string{d.index}})
	}

	check := func(stats string) {
		for _, r := range reads {
			if stats == "(no statistics)" && strings.HasPrefix(r.name, "staff page") {
				// Without statistics Postgres guesses the tenant's whole
				// log (20,000 rows) is 51 and sorts it: the staff read of
				// the primary key needs ANALYZE, which autovacuum runs as
				// a table grows. The scoped reads never do.
				continue
			}
			if used, plan, ok := readPlan(t, s, r.sql, r.args, limit); !ok {
				t.Errorf("%s %s: not index ranges of at most %d rows each:\n%s", r.name, stats, limit, plan)
			} else if slices.Sort(used); !slices.Equal(used, slices.Sorted(slices.Values(r.indexes))) {
				t.Errorf("%s %s: ranges read with %v, want %v:\n%s", r.name, stats, used, r.indexes, plan)
			}
		}
	}
	check("(no statistics)")
	if s.Dialect() == store.Postgres {
		analyze(t, s)
		check("(after ANALYZE)")
	}
}

// readPlan explains a read of the events table: the indexes its scans of
// events use, the plan as text, and whether every scan of events is an
// index range read in seq order (on SQLite: with no sort, so that the merge
// pulls only what it outputs; on Postgres, executed: reading at most limit
// rows, none removed by a filter).
func readPlan(t *testing.T, s *store.Store, sql string, args []any, limit int) (used []string, plan string, ok bool) {
	t.Helper()
	ok = true
	if s.Dialect() == store.SQLite {
		var rows []struct{ Detail string }
		if err := s.DB().Raw("EXPLAIN QUERY PLAN "+sql, args...).Scan(&rows).Error; err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		search := regexp.MustCompile(`^SEARCH events USING (?:COVERING )?INDEX (\w+) \(tenant_id=\?`)
		var lines []string
		for _, row := range rows {
			lines = append(lines, row.Detail)
			if m := search.FindStringSubmatch(row.Detail); m != nil {
				used = append(used, m[1])
			} else if strings.Contains(row.Detail, " events") || strings.Contains(row.Detail, "TEMP B-TREE") {
				// A scan of events, or a sort: a range read whole
				// before the merge.
				ok = false
			}
		}
		return used, strings.Join(lines, "\n"), ok
	}
	var out []struct {
		QueryPlan string `gorm:"column:QUERY PLAN"`
	}
	if err := s.DB().Raw("EXPLAIN (ANALYZE, FORMAT JSON) "+sql, args...).Scan(&out).Error; err != nil || len(out) != 1 {
		t.Fatalf("%s: %v", sql, err)
	}
	var root []struct{ Plan pgNode }
	if err := json.Unmarshal([]byte(out[0].QueryPlan), &root); err != nil || len(root) != 1 {
		t.Fatalf("plan %s: %v", out[0].QueryPlan, err)
	}
	root[0].Plan.walk(func(p *pgNode) {
		if p.Relation != "events" {
			return
		}
		used = append(used, p.Index)
		if (p.Type != "Index Scan" && p.Type != "Index Only Scan") || p.RemovedByFilter > 0 || p.ActualRows > limit {
			ok = false
		}
	})
	return used, out[0].QueryPlan, ok
}

// pgNode is a node of Postgres's EXPLAIN (FORMAT JSON).
type pgNode struct {
	Type            string   `json:"Node Type"`
	Relation        string   `json:"Relation Name"`
	Index           string   `json:"Index Name"`
	ActualRows      int      `json:"Actual Rows"`
	RemovedByFilter int      `json:"Rows Removed by Filter"`
	Plans           []pgNode `json:"Plans"`
}

func (p *pgNode) walk(fn func(*pgNode)) {
	fn(p)
	for i := range p.Plans {
		p.Plans[i].walk(fn)
	}
}

// TestDeltaBound: a list delta examines at most Options.MaxDeltaEvents
// events of the log; a longer one answers 410 (cursor-expired) with the
// head as the cursor, so the client refetches the snapshot page by page.
func TestDeltaBound(t *testing.T) {
	s := openStore(t, store.Options{MaxDeltaEvents: 5})
	ctx := staff("delta")
	var ids []string
	for i := range 3 {
		ids = append(ids, mustCreate(t, s, ctx, &models.Doctor{Name: fmt.Sprint("Dr ", i)}))
	}
	for _, id := range ids[:2] {
		if _, err := s.Update(ctx, models.EntityDoctor, id, 0, &models.DoctorUpdate{Room: ptr("9")}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := s.List(ctx, models.EntityDoctor, models.ListQuery{Limit: 100, Since: 1})
	if err != nil || len(page.Items) != 3 {
		t.Fatalf("delta of 4 events: %v %v", page, err)
	}
	if _, err := s.Update(ctx, models.EntityDoctor, ids[2], 0, &models.DoctorUpdate{Room: ptr("8")}); err != nil {
		t.Fatal(err)
	}
	if page, err := s.List(ctx, models.EntityDoctor, models.ListQuery{Limit: 100, Since: 1}); err != nil || len(page.Items) != 3 {
		t.Fatalf("delta of 5 events: %v %v", page, err)
	}
	if _, err := s.Update(ctx, models.EntityDoctor, ids[0], 0, &models.DoctorUpdate{Room: ptr("7")}); err != nil {
		t.Fatal(err)
	}
	h, _ := s.LogHead(context.Background(), "delta")
	_, err = s.List(ctx, models.EntityDoctor, models.ListQuery{Limit: 100, Since: 1})
	var me *models.Error
	if !errors.As(err, &me) || me.Code != models.EGONE || me.Cursor == nil || *me.Cursor != h.Seq {
		t.Fatalf("delta of 6 events: %v, want EGONE with cursor %d", err, h.Seq)
	}
}

func ptr[T any](v T) *T { return &v }
