package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/doctest"
	"github.com/clinicpulse/clinicpulse/internal/testdb"
)

// mainEnv makes this test binary the clinicpulse command: TestDocs puts it
// on the documents' PATH under that name, and with mainEnv=1 it runs main
// (serve, tail, …) instead of the tests.
const mainEnv = "CLINICPULSE_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestDocs runs every runnable sh block of docs/*.md (see internal/doctest)
// with bash and the real curl, one document at a time, each in a fresh
// directory and on the test's own database (testdb: a Postgres schema in
// make test's Postgres pass). The documents start the server themselves
// ("ADDR=localhost:8080 clinicpulse &"): clinicpulse is this binary running
// main, and each localhost port of a document becomes a free loopback port.
// A command whose exit status, HTTP status or output is not what the
// document says fails the test on the document's line.
func TestDocs(t *testing.T) {
	// node and openssl: docs/webhooks.md runs a receiver and checks a
	// signature by hand.
	for _, tool := range []string{"bash", "curl", "jq", "node", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI=true but %s is not installed", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
	dir, err := doctest.Dir()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil || len(docs) == 0 {
		t.Fatalf("no documents in %s (%v)", dir, err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(bin, "clinicpulse")); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, doc := range docs {
		t.Run(filepath.Base(doc), func(t *testing.T) {
			dbURL, _ := testdb.URL(t)
			res, err := doctest.Run(context.Background(), doc, doctest.Config{
				Bin: bin, Timeout: 3 * time.Minute,
				// ADDR: a server the document starts without naming its
				// address (ADDR=localhost:PORT, which becomes a free
				// loopback port) fails at once instead of taking :8080.
				Env: []string{mainEnv + "=1", "DATABASE_URL=" + dbURL, "ADDR=ADDR-not-set-by-the-document"},
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range res.Failures {
				t.Errorf("%s %s", filepath.Base(doc), f)
			}
			if t.Failed() && res.Logs != "" {
				t.Logf("logs the commands left:\n%s", res.Logs)
			}
			if res.Commands > 0 {
				t.Logf("%d of %d commands ran", res.Ran, res.Commands)
			}
			total += res.Commands
		})
	}
	if total == 0 {
		t.Error("the documents hold no runnable command")
	}
}

// curlLine finds a curl command anywhere in a block.
var curlLine = regexp.MustCompile(`(?m)(^|[\s;|&(])curl\s`)

// TestDocsRunEveryCurl: a curl command in a block TestDocs does not run
// (another language, or sh norun) would drift unseen; each one fails here.
func TestDocsRunEveryCurl(t *testing.T) {
	dir, err := doctest.Dir()
	if err != nil {
		t.Fatal(err)
	}
	docs, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	for _, doc := range docs {
		blocks, err := doctest.Blocks(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks {
			if !b.Runs() && curlLine.MatchString(b.Text) {
				t.Errorf("%s: a curl command in a block no test runs (```%s %s)", b.Where(), b.Lang, strings.TrimSpace(attrs(b)))
			}
		}
	}
}

func attrs(b doctest.Block) string {
	var s []string
	for k, v := range b.Attrs {
		if v != "" {
			k += "=" + v
		}
		s = append(s, k)
	}
	return strings.Join(s, " ")
}
