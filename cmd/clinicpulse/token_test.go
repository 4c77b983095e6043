package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestTokenFlags: every flag is checked as the server checks the claim it
// becomes; a refusal exits 2 (1 without a usable secret) with a message
// on standard error and nothing on standard output.
func TestTokenFlags(t *testing.T) {
	env := envOf(map[string]string{"JWT_SECRET": testSecret})
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--role", "admin", "--sub", "a"}, exitUsage, "--tenant is required for role admin"},
		{[]string{"--tenant", "t1", "--sub", "a"}, exitUsage, "--role is required"},
		{[]string{"--tenant", "t1", "--role", "root", "--sub", "a"}, exitUsage, `--role "root": want admin, coordinator`},
		{[]string{"--tenant", "t1", "--role", "Admin", "--sub", "a"}, exitUsage, `--role "Admin"`},
		{[]string{"--tenant", "t1", "--role", "admin"}, exitUsage, "--sub is required"},
		{[]string{"--tenant", "a b", "--role", "admin", "--sub", "a"}, exitUsage, `--tenant "a b": want 1 to 64`},
		{[]string{"--tenant", strings.Repeat("t", 65), "--role", "admin", "--sub", "a"}, exitUsage, "--tenant"},
		{[]string{"--tenant", "-t", "--role", "admin", "--sub", "a"}, exitUsage, "--tenant"},
		{[]string{"--tenant", "t1", "--role", "admin", "--sub", "a\nb"}, exitUsage, "--sub: at most 255 characters, without control characters"},
		{[]string{"--tenant", "t1", "--role", "admin", "--sub", strings.Repeat("s", 256)}, exitUsage, "--sub"},
		{[]string{"--tenant", "t1", "--role", "admin", "--sub", "a", "--ttl", "12"}, exitUsage, `--ttl "12": not a duration`},
		{[]string{"--tenant", "t1", "--role", "admin", "--sub", "a", "--ttl", "30s"}, exitUsage, "--ttl 30s: must be from 1m0s to 720h0m0s"},
		{[]string{"--tenant", "t1", "--role", "admin", "--sub", "a", "--ttl", "721h"}, exitUsage, "--ttl 721h0m0s"},
		{[]string{"--tenant", "t1", "--role", "admin", "--sub", "a", "--ttl", "-1h"}, exitUsage, "--ttl -1h0m0s"},
		{[]string{"--tenant", "t1", "--role", "admin", "--role", "platform", "--sub", "a"}, exitUsage, "given twice"},
		{[]string{"--tenant", "t1", "--role", "admin", "--sub", "a", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"--tenant=t1", "--role=admin", "--sub=a", "--secret", "x"}, exitUsage, "flag provided but not defined: -secret"},
	} {
		var stdout, stderr bytes.Buffer
		code := runToken(tc.args, env, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) || stdout.Len() > 0 {
			t.Errorf("%q: exit %d, stderr %q, stdout %q; want exit %d and %q", tc.args, code, stderr.String(), stdout.String(), tc.code, tc.want)
		}
	}
	args := []string{"--tenant", "t1", "--role", "admin", "--sub", "a"}
	for _, env := range []map[string]string{{}, {"JWT_SECRET": "short"}, {"DEV": "no"}} {
		var stdout, stderr bytes.Buffer
		if code := runToken(args, envOf(env), &stdout, &stderr); code != exitConfig || !strings.Contains(stderr.String(), "JWT_SECRET") || stdout.Len() > 0 {
			t.Errorf("%v: exit %d, %q", env, code, stderr.String())
		}
		if strings.Contains(stderr.String(), "short") {
			t.Errorf("the error quotes the secret: %q", stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := runToken([]string{"--help"}, env, &stdout, &stderr); code != exitOK || !strings.Contains(stderr.String(), "usage: clinicpulse token") {
		t.Errorf("--help: exit %d, %q", code, stderr.String())
	}
}

// TestTokenHelperProcess is `clinicpulse token` in a process of its own,
// for TestTokenCommand (the arguments follow "--").
func TestTokenHelperProcess(t *testing.T) {
	if os.Getenv("CLINICPULSE_TOKEN_HELPER") != "1" {
		return
	}
	i := slices.Index(os.Args, "--")
	os.Exit(runToken(os.Args[i+1:], os.Getenv, os.Stdout, os.Stderr))
}

// clinicpulseToken runs `clinicpulse token args` as a process in dir with
// env and returns its exit status, standard output and standard error.
func clinicpulseToken(t *testing.T, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{"-test.run=^TestTokenHelperProcess$", "--"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append([]string{"CLINICPULSE_TOKEN_HELPER=1", "PATH=" + os.Getenv("PATH")}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// TestTokenCommand: `clinicpulse token` as a process prints one token on
// standard output, its expiry on standard error, and the real server
// (configured by the same environment) accepts it with the role, tenant
// and lifetime asked for. With DEV=1 and no JWT_SECRET it signs with the
// development secret file, which a DEV server then uses.
func TestTokenCommand(t *testing.T) {
	env := map[string]string{"JWT_ISSUER": "clinicpulse-test", "JWT_AUDIENCE": "integrations"}
	s := startServer(t, env)
	procEnv := []string{"JWT_SECRET=" + testSecret, "JWT_ISSUER=clinicpulse-test", "JWT_AUDIENCE=integrations"}
	mint := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := clinicpulseToken(t, t.TempDir(), procEnv, args...)
		if code != 0 || strings.Count(stdout, "\n") != 1 || !strings.HasPrefix(stderr, "clinicpulse token: expires ") {
			t.Fatalf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
		if strings.Contains(stderr, strings.TrimSpace(stdout)) {
			t.Fatal("the token reached standard error")
		}
		return strings.TrimSpace(stdout)
	}
	get := func(tok, path string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	admin := mint("--tenant", "clinic-7", "--role", "admin", "--sub", "integration-1", "--ttl", "90m")
	if st := get(admin, "/api/v1/patients"); st != http.StatusOK {
		t.Fatalf("the admin token: %d", st)
	}
	var c struct {
		Sub, Role, Iss string
		TenantID       string `json:"tenant_id"`
		Aud            []string
		Exp, Iat       int64
	}
	seg := strings.Split(admin, ".")[1]
	raw, _ := base64.RawURLEncoding.DecodeString(seg)
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if c.Sub != "integration-1" || c.TenantID != "clinic-7" || c.Role != "admin" || c.Iss != "clinicpulse-test" ||
		!slices.Equal(c.Aud, []string{"integrations"}) || c.Exp-c.Iat != 90*60 {
		t.Fatalf("claims %+v", c)
	}
	display := mint("--tenant", "clinic-7", "--role", "display", "--sub", "lobby-screen")
	if st := get(display, "/api/v1/queue/board"); st != http.StatusOK {
		t.Fatalf("the display token on the board: %d", st)
	}
	if st := get(display, "/api/v1/patients"); st != http.StatusForbidden {
		t.Fatalf("the display token on patients: %d, want 403", st)
	}
	platform := mint("--role", "platform", "--sub", "ops-1")
	if st := get(platform, "/api/v1/patients?tenant_id=clinic-7"); st != http.StatusOK {
		t.Fatalf("the platform token: %d", st)
	}
	if code, _, stderr := clinicpulseToken(t, t.TempDir(), procEnv, "--tenant", "clinic 7", "--role", "admin", "--sub", "x"); code != exitUsage || !strings.Contains(stderr, "--tenant") {
		t.Fatalf("an invalid tenant: exit %d, %q", code, stderr)
	}
	if code, stdout, stderr := clinicpulseToken(t, t.TempDir(), nil, "--tenant", "t", "--role", "admin", "--sub", "x"); code != exitConfig || stdout != "" || !strings.Contains(stderr, "JWT_SECRET is required") {
		t.Fatalf("no secret: exit %d, %q %q", code, stdout, stderr)
	}

	// DEV=1: the token and the server share data/dev-jwt-secret.
	dir := t.TempDir()
	code, stdout, stderr := clinicpulseToken(t, dir, []string{"DEV=1"}, "--tenant", "demo", "--role", "doctor", "--sub", "d1")
	if code != 0 {
		t.Fatalf("DEV=1: exit %d, %q", code, stderr)
	}
	secret, err := os.ReadFile(filepath.Join(dir, devSecretFile))
	if err != nil {
		t.Fatalf("DEV=1 wrote no secret file: %v", err)
	}
	dev := startServer(t, map[string]string{"JWT_SECRET": strings.TrimSpace(string(secret))})
	req, _ := http.NewRequest(http.MethodGet, dev.base+"/api/v1/doctors", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(stdout))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("the DEV token on a server with the DEV secret: %d", res.StatusCode)
	}
}
