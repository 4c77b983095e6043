package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestUsage: help is printed for help, -h, -help and --help; any other
// argument is refused with exit status 2 before anything is served — a
// mistyped tool name or flag once started a server on :8080 and opened
// ./data/clinicpulse.db.
func TestUsage(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	run := func(arg string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, exe, arg)
		dir := t.TempDir()
		cmd.Dir = dir
		// A server, if one started, would fail the test by outliving it.
		cmd.Env = append(os.Environ(), mainEnv+"=1", "ADDR=127.0.0.1:0", "DEV=1")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case ctx.Err() != nil:
			t.Fatalf("clinicpulse %s kept running (a server started?): %s", arg, out)
		case errors.As(err, &ee):
			return string(out), ee.ExitCode()
		case err != nil:
			t.Fatal(err)
		}
		if _, err := os.Stat(dir + "/data"); err == nil {
			t.Fatalf("clinicpulse %s created ./data", arg)
		}
		return string(out), 0
	}
	for _, arg := range []string{"help", "-h", "-help", "--help"} {
		if out, code := run(arg); code != 0 || !strings.Contains(out, "clinicpulse token --tenant") {
			t.Errorf("%s: exit %d, %q", arg, code, out)
		}
	}
	for _, arg := range []string{"--bogus", "serve", "tokn", "-addr=:9"} {
		if out, code := run(arg); code != 2 || !strings.Contains(out, "unknown command or flag") {
			t.Errorf("%s: exit %d, %q", arg, code, out)
		}
	}
}
