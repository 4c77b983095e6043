package doctest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config says how Run runs a document's commands.
type Config struct {
	// Bin is a directory put first on PATH: it holds the clinicpulse
	// command the documents call.
	Bin string
	// Env is the environment of the commands besides PATH, HOME, LANG,
	// TMPDIR and Run's own variables (DOCTEST_*). Nothing else of the
	// test's environment reaches them.
	Env []string
	// Ports maps a port the document names (8080 in localhost:8080) to the
	// loopback address that replaces it; ports not in it get a free one.
	Ports map[string]string
	// Timeout bounds the whole document (default 2 minutes).
	Timeout time.Duration
}

// Failure is one command of a document that did not do what the document
// says.
type Failure struct {
	Command Command
	Problem string
	Output  string // what it printed (stdout, then stderr), cut to 4 KiB
}

func (f Failure) String() string {
	return fmt.Sprintf("line %d: %s\n  $ %s\n%s", f.Command.Line, f.Problem,
		strings.ReplaceAll(f.Command.Text, "\n", "\n    "), indent(f.Output))
}

// Result is what Run found.
type Result struct {
	Commands int       // commands in the document's runnable blocks
	Ran      int       // commands that ran (Run stops at the first that fails)
	Failures []Failure // in document order
	Logs     string    // the tails of the *.log files the commands left in their directory
}

// hostPortRE finds the loopback addresses a document names.
var hostPortRE = regexp.MustCompile(`\b(?:localhost|127\.0\.0\.1):(\d{2,5})\b`)

// Run runs the runnable sh blocks of the document at path, in order, as one
// bash script in a fresh working directory, with:
//   - every localhost:PORT and 127.0.0.1:PORT of the document replaced by a
//     free loopback port (cfg.Ports first), one per port it names, so that
//     "ADDR=localhost:8080 clinicpulse &" and "BASE=http://localhost:8080"
//     meet on a port of the test's own;
//   - the real curl, given one extra option (-D) that records the
//     response headers, from which each "# → NNN" check reads the status.
//
// Each command's exit status must be 0, or 28 (curl's "operation timed
// out") for a command bounded with --max-time; the script stops at the
// first other. Processes a command left running (a server started with &)
// get SIGTERM when the script ends, then SIGKILL after 15 s. A document
// without runnable blocks returns a zero Result.
func Run(ctx context.Context, path string, cfg Config) (*Result, error) {
	blocks, err := Blocks(path)
	if err != nil {
		return nil, err
	}
	var cmds []Command
	for _, b := range blocks {
		if !b.Runs() {
			continue
		}
		cs, err := Commands(b)
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, cs...)
	}
	res := &Result{Commands: len(cmds)}
	if len(cmds) == 0 {
		return res, nil
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		return nil, err
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	dir, err := os.MkdirTemp("", "doctest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	work, shims, home := filepath.Join(dir, "work"), filepath.Join(dir, "shims"), filepath.Join(dir, "home")
	for _, d := range []string{work, shims, home} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	shim := "#!/bin/sh\nexec " + shellQuote(curl) + ` -D "$DOCTEST_DIR/h.$DOCTEST_N" "$@"` + "\n"
	if err := os.WriteFile(filepath.Join(shims, "curl"), []byte(shim), 0o700); err != nil {
		return nil, err
	}
	ports, err := mapPorts(cmds, cfg.Ports)
	if err != nil {
		return nil, err
	}

	var sc strings.Builder
	sc.WriteString("cd \"$DOCTEST_WORK\" || exit 99\n")
	for i, c := range cmds {
		text := hostPortRE.ReplaceAllStringFunc(c.Text, func(s string) string {
			return ports[s[strings.LastIndexByte(s, ':')+1:]]
		})
		ok := "0"
		if c.Bounded() {
			ok = "0|28"
		}
		fmt.Fprintf(&sc, "# %s:%d\nexport DOCTEST_N=%d\n{\n%s\n} >\"$DOCTEST_DIR/o.%[3]d\" 2>\"$DOCTEST_DIR/e.%[3]d\" </dev/null\n"+
			"__rc=$?; echo \"$__rc\" >\"$DOCTEST_DIR/r.%[3]d\"\ncase \"$__rc\" in %[5]s) ;; *) exit 0 ;; esac\n",
			filepath.Base(path), c.Line, i, text, ok)
	}
	script := filepath.Join(dir, "script.sh")
	if err := os.WriteFile(script, []byte(sc.String()), 0o600); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	out, err := os.Create(filepath.Join(dir, "bash.out"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(bash, "--noprofile", "--norc", script)
	cmd.Dir = work
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append([]string{
		"PATH=" + cfg.Bin + string(os.PathListSeparator) + shims + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + home, "LANG=C.UTF-8", "TMPDIR=" + dir, "DOCTEST_DIR=" + dir, "DOCTEST_WORK=" + work,
	}, cfg.Env...)
	// Its own process group: what the commands leave running is stopped
	// with it, and only it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timedOut bool
	select {
	case err = <-done:
	case <-ctx.Done():
		timedOut = true
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = <-done
	}
	stopGroup(cmd.Process.Pid)
	if err != nil && !timedOut {
		b, _ := os.ReadFile(filepath.Join(dir, "bash.out"))
		return nil, fmt.Errorf("bash: %v: %s", err, b)
	}
	res.Logs = logTails(work)

	for i, c := range cmds {
		read := func(kind string) (string, bool) {
			b, err := os.ReadFile(filepath.Join(dir, kind+"."+strconv.Itoa(i)))
			return string(b), err == nil
		}
		stdout, _ := read("o")
		stderr, _ := read("e")
		output := cut(stdout+stderr, 4<<10)
		fail := func(format string, args ...any) {
			res.Failures = append(res.Failures, Failure{Command: c, Problem: fmt.Sprintf(format, args...), Output: output})
		}
		rc, ran := read("r")
		if !ran {
			if timedOut {
				fail("did not finish within %v", cfg.Timeout)
			}
			break // the script stopped at a failure already reported
		}
		res.Ran++
		if code := strings.TrimSpace(rc); code != "0" && (code != "28" || !c.Bounded()) {
			fail("exit status %s", code)
			break
		}
		if c.Status != 0 {
			hdr, _ := read("h")
			if got := lastStatus(hdr); got != c.Status {
				fail("HTTP status %d, the document says %d", got, c.Status)
			}
		}
		if p, ok := Match(stdout, c.Expect); !ok {
			fail("no line of its output matches %q", p)
		}
		if strings.Contains(stdout+stderr, "WARNING: DATA RACE") {
			fail("a data race was reported")
		}
	}
	if strings.Contains(res.Logs, "WARNING: DATA RACE") {
		res.Failures = append(res.Failures, Failure{Problem: "a data race was reported in the logs"})
	}
	return res, nil
}

// mapPorts gives each port the commands name a loopback address.
func mapPorts(cmds []Command, fixed map[string]string) (map[string]string, error) {
	ports := map[string]string{}
	for _, c := range cmds {
		for _, m := range hostPortRE.FindAllStringSubmatch(c.Text, -1) {
			p := m[1]
			if _, ok := ports[p]; ok {
				continue
			}
			if a, ok := fixed[p]; ok {
				ports[p] = a
				continue
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			ports[p] = ln.Addr().String()
			ln.Close()
		}
	}
	return ports, nil
}

// stopGroup ends what is left of the process group: SIGTERM (a server
// shuts down cleanly), then SIGKILL after 15 s.
func stopGroup(pgid int) {
	if syscall.Kill(-pgid, syscall.SIGTERM) != nil {
		return // nothing left
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// lastStatus returns the status of the last response in a header dump
// (after redirects or 100 Continue), 0 if there is none.
func lastStatus(hdr string) int {
	status := 0
	for _, line := range strings.Split(hdr, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && strings.HasPrefix(f[0], "HTTP/") {
			status, _ = strconv.Atoi(f[1])
		}
	}
	return status
}

// logTails returns the last 4 KiB of each *.log file in dir.
func logTails(dir string) string {
	paths, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	sort.Strings(paths)
	var b strings.Builder
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if len(data) > 4<<10 {
			data = append([]byte("…"), data[len(data)-4<<10:]...)
		}
		fmt.Fprintf(&b, "== %s\n%s\n", filepath.Base(p), data)
	}
	return b.String()
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    | " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    | ")
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
