package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/store"
)

// seedLog appends n events to the tenant's log in one statement (a
// recursive CTE: no round trip per row) and sets its head. The mix is a
// clinic whose log is mostly patients' records: 1 % board events, 0.01 %
// doctor events, the rest spread over 2,000 patients (pat_0 … pat_1999)
// and the six patient entities. Each data is ~300 bytes, as a real record.
func seedLog(t testing.TB, s *store.Store, tenant string, n int) {
	t.Helper()
	pad := strings.Repeat("x", 280)
	q := fmt.Sprintf(`WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < %d)
INSERT INTO events (tenant_id, seq, type, entity, entity_id, version, at, actor, patient_id, data)
SELECT ?, n, CASE WHEN n %% 100 = 0 THEN 'queue.board' ELSE e || '.updated' END,
	CASE WHEN n %% 100 = 0 THEN 'board' ELSE e END,
	'e_' || n, 1, ?, 'seed',
	CASE WHEN n %% 100 = 0 OR e = 'doctors' THEN '' ELSE 'pat_' || (n %% 2000) END,
	'{"n":' || n || ',"pad":"' || ? || '"}'
FROM (SELECT n, CASE WHEN n %% 10000 = 5 THEN 'doctors' ELSE
	CASE (n / 7) %% 6 WHEN 0 THEN 'patients' WHEN 1 THEN 'appointments' WHEN 2 THEN 'queue'
	WHEN 3 THEN 'visits' WHEN 4 THEN 'prescriptions' ELSE 'invoices' END END AS e FROM s) AS g`, n)
	db := s.DB()
	if err := db.Exec(q, tenant, time.Now().UTC(), pad).Error; err != nil {
		t.Fatalf("seed %d events: %v", n, err)
	}
	if err := db.Exec("INSERT INTO tenant_heads (tenant_id, seq, pruned_through) VALUES (?, ?, 0)", tenant, n).Error; err != nil {
		t.Fatalf("seed head: %v", err)
	}
}

// analyze updates Postgres's statistics of the events table, as autovacuum
// does after a while (SQLite's reads name their indexes and need none).
func analyze(t testing.TB, s *store.Store) {
	t.Helper()
	if s.Dialect() == store.Postgres {
		if err := s.DB().Exec("ANALYZE events").Error; err != nil {
			t.Fatal(err)
		}
	}
}
