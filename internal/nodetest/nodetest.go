// Package nodetest readies Node.js tools for Go tests: the node binary and
// a test's npm packages, installed from its lock file.
package nodetest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Require returns the path of node after making sure the npm package pkg is
// installed in dir (running `npm ci` there, bounded to 3 minutes, when its
// node_modules lacks it). Without node or npm the test is skipped — except
// under CI=true, where it fails naming what (a test we did not write must
// run in CI).
func Require(t testing.TB, dir, pkg, what string) string {
	t.Helper()
	missing := func(format string, a ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format+" (CI=true: the "+what+" must run)", a...)
		}
		t.Skipf(format, a...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			missing("npm is not installed")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			missing("npm ci in %s: %v\n%s", dir, err, out)
		}
	}
	return node
}
