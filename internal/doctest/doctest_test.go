package doctest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeDoc(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "doc.md")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBlocks(t *testing.T) {
	p := writeDoc(t, "# T\n\n```sh\necho a\n```\n\n````nginx name=x\n```\nserver {}\n````\n\n```sh norun\nmake run\n```\n")
	bs, err := Blocks(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 3 {
		t.Fatalf("%d blocks: %+v", len(bs), bs)
	}
	if bs[0].Lang != "sh" || bs[0].Line != 3 || bs[0].Text != "echo a\n" || !bs[0].Runs() {
		t.Errorf("block 0: %+v", bs[0])
	}
	if bs[1].Lang != "nginx" || bs[1].Attrs["name"] != "x" || bs[1].Text != "```\nserver {}\n" || bs[1].Runs() {
		t.Errorf("block 1: %+v", bs[1])
	}
	if bs[2].Runs() {
		t.Errorf("a norun block runs: %+v", bs[2])
	}
	if _, err := Blocks(writeDoc(t, "```sh\necho never closed\n")); err == nil {
		t.Error("an unclosed fence was accepted")
	}
	if b, err := Find(p, "nginx", "x"); err != nil || b.Line != 7 {
		t.Errorf("Find: %+v %v", b, err)
	}
	if _, err := Find(p, "nginx", "y"); err == nil {
		t.Error("Find found a block that is not there")
	}
}

func TestCommands(t *testing.T) {
	b := Block{File: "d.md", Line: 10, Lang: "sh", Text: "# prose\ncurl -s \\\n  localhost:8080/x\n# → 200\n# | {\"a\":…}\n\nX=$(clinicpulse token)\necho \"$X\"\n# | t…\n"}
	cs, err := Commands(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 {
		t.Fatalf("%d commands: %+v", len(cs), cs)
	}
	if cs[0].Line != 12 || cs[0].Status != 200 || len(cs[0].Expect) != 1 || !cs[0].UsesCurl() || cs[0].Bounded() {
		t.Errorf("command 0: %+v", cs[0])
	}
	if cs[1].UsesCurl() || cs[2].Expect[0] != "t…" {
		t.Errorf("commands 1, 2: %+v", cs[1:])
	}
	for _, bad := range []string{
		"curl -s x\n",                   // no status
		"curl -s x\n\n# → 200\n",        // status detached from its command
		"# → 200\n",                     // under no command
		"curl -s x\n# → 20\n",           // malformed
		"curl -s x\n# → 200\n# → 201\n", // twice
		"# | x\n",                       // output check under no command
	} {
		if _, err := Commands(Block{File: "d.md", Lang: "sh", Text: bad}); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if c := (Command{Text: "curl -sN --max-time 2 x"}); !c.Bounded() {
		t.Error("--max-time not seen")
	}
}

func TestMatch(t *testing.T) {
	out := "retry: 3000\r\n\r\nid: 7.abcdefgh\nevent: doctors.created\ndata: {\"seq\":7}\n"
	if p, ok := Match(out, []string{"retry: …", "event: doctors.created", "data: {\"seq\":…}"}); !ok {
		t.Errorf("no match for %q", p)
	}
	if _, ok := Match(out, []string{"event: doctors.created", "retry: …"}); ok {
		t.Error("out of order matched")
	}
	if _, ok := Match(out, []string{"event: doctors"}); ok {
		t.Error("a pattern matched part of a line")
	}
}

// TestRun runs documents against a real curl and a loopback server: a
// right document passes; a wrong status, a missing output line or a failing
// command is reported on its line, and the script stops there.
func TestRun(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but curl is not installed")
		}
		t.Skip("curl is not installed")
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte(`{"status":"ok"}` + "\n"))
		case "/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write([]byte("id: 1\n\n"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			http.NotFound(w, r)
		}
	}))
	defer ts.Close()
	cfg := Config{Ports: map[string]string{"8080": ts.Listener.Addr().String()}, Timeout: 30 * time.Second}
	run := func(doc string) *Result {
		t.Helper()
		res, err := Run(context.Background(), writeDoc(t, doc), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	good := run("```sh\nBASE=http://localhost:8080\ncurl -s $BASE/ok\n# → 200\n# | {\"status\":…}\n" +
		"curl -sN --max-time 1 $BASE/stream\n# → 200\n# | id: …\nexport X=1\n```\n\n```sh norun\nexit 1\n```\n\n```sh\necho \"$X\" > x.log\n```\n")
	if len(good.Failures) != 0 || good.Ran != 5 || good.Commands != 5 {
		t.Fatalf("a right document: %+v", good)
	}
	if !strings.Contains(good.Logs, "== x.log\n1") {
		t.Errorf("logs: %q", good.Logs)
	}

	bad := run("```sh\ncurl -s http://localhost:8080/ok\n# → 404\ncurl -s http://localhost:8080/ok\n# → 200\n# | nope\nfalse\necho never\n```\n")
	if len(bad.Failures) != 3 || bad.Ran != 3 {
		t.Fatalf("a wrong document: %d failures, %d ran: %+v", len(bad.Failures), bad.Ran, bad.Failures)
	}
	for i, want := range []string{"line 2: HTTP status 200, the document says 404", `line 4: no line of its output matches "nope"`, "line 7: exit status 1"} {
		if got := bad.Failures[i].String(); !strings.HasPrefix(got, want) {
			t.Errorf("failure %d: %q, want %q…", i, got, want)
		}
	}
}
