package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/store"
	"gorm.io/gorm"
)

var (
	firstNames = []string{"María", "José", "Ana", "Luis", "Zoë", "Hans", "Aiko", "Olúwaseun", "Chloé", "Mateo", "Fatima", "Noah",
		"Élodie", "Søren", "Priya", "Wei", "Jürgen", "Inés", "Kwame", "Lucía"}
	syllables = []string{"gon", "zá", "lez", "ro", "ssi", "mar", "tí", "nez", "ber", "ko", "van", "der", "ha", "lo", "ñu",
		"pe", "ri", "sa", "to", "yu", "el", "an", "os", "ka"}
)

// seedPatients writes n patients of one tenant straight into the tables
// (with their search tokens, as the store's write keeps them), in batches:
// a read benchmark needs the rows, not n write transactions.
func seedPatients(tb testing.TB, db *gorm.DB, tenant string, n int) {
	tb.Helper()
	now := time.Now().UTC()
	type row = map[string]any
	for start := 0; start < n; start += 1000 {
		var pats, toks []row
		for i := start; i < min(n, start+1000); i++ {
			s1, s2, s3 := syllables[i%24], syllables[(i/24)%24], syllables[(i/576)%24]
			p := &models.Patient{Name: firstNames[i%20] + " " + strings.ToUpper(string([]rune(s1)[:1])) + string([]rune(s1)[1:]) + s2 + s3,
				Phone: fmt.Sprintf("+1 555 %07d", i), MRN: fmt.Sprintf("MRN-%07d", i)}
			p.ID = fmt.Sprintf("pat_%020d", i)
			pats = append(pats, row{"id": p.ID, "tenant_id": tenant, "version": 1, "created_at": now, "updated_at": now,
				"name": p.Name, "date_of_birth": "", "phone": p.Phone, "mrn": p.MRN})
			for _, t := range p.SearchTokens() {
				toks = append(toks, row{"tenant_id": tenant, "token": t, "patient_id": p.ID})
			}
		}
		if err := db.Table("patients").Create(pats).Error; err != nil {
			tb.Fatal(err)
		}
		if err := db.Table("patient_search").CreateInBatches(toks, 500).Error; err != nil {
			tb.Fatal(err)
		}
	}
	if err := db.Exec("ANALYZE").Error; err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkPatientSearch: one page (limit 50) of ?q= over 100,000 patients
// of one tenant, on the database of DATABASE_URL (SQLite by default).
func BenchmarkPatientSearch(b *testing.B) {
	s := openStore(b, store.Options{})
	const tenant = "search-bench"
	seedPatients(b, s.DB(), tenant, 100_000)
	ctx := staff(tenant)
	for _, q := range []string{"gonzá", "maría gonzá", "rossi", "MRN-0031337", "0031337", "ma", "an"} {
		sq, err := models.ParseSearch(q)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("q="+q, func(b *testing.B) {
			var found int
			for b.Loop() {
				page, err := s.List(ctx, models.EntityPatient, models.ListQuery{Limit: 50, Search: sq})
				if err != nil {
					b.Fatal(err)
				}
				found = len(page.Items)
			}
			b.ReportMetric(float64(found), "items")
		})
	}
	explain(b, s)
}

// explain logs the plan of a search's token lookup.
func explain(b *testing.B, s *store.Store) {
	stmt := "SELECT patient_id FROM patient_search WHERE tenant_id = 'search-bench' AND token >= 'n:gonza' AND token < 'n:gonza\U0010FFFF'"
	prefix := "EXPLAIN QUERY PLAN "
	if strings.HasPrefix(s.DB().Dialector.Name(), "postgres") {
		prefix = "EXPLAIN "
	}
	rows, err := s.DB().WithContext(context.Background()).Raw(prefix + stmt).Rows()
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var plan []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			b.Fatal(err)
		}
		plan = append(plan, fmt.Sprint(vals[len(vals)-1]))
	}
	b.Logf("plan: %s", strings.Join(plan, " | "))
	if !strings.Contains(strings.Join(plan, " "), "patient_search_pkey") && !strings.Contains(strings.Join(plan, " "), "INDEX") {
		b.Errorf("the token lookup does not use the primary key: %s", plan)
	}
}
