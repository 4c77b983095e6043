package doctest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DocBlock returns the block of a document in docs/ (such as "deploy.md")
// with the language and name, failing the test if there is not exactly one.
func DocBlock(t testing.TB, doc, lang, name string) Block {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Find(filepath.Join(dir, doc), lang, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	listenRE    = regexp.MustCompile(`(?m)^(\s*)listen\s+[^;]+;`)
	proxyPassRE = regexp.MustCompile(`proxy_pass\s+http://[0-9.]+:\d+`)
	upstreamRE  = regexp.MustCompile(`^\s*upstream\s+\S+\s*\{`)
	serverRE    = regexp.MustCompile(`^(\s*)server\s+\S+(\s[^;]*)?;`)
)

// Localize turns a configuration of a ```nginx block (what goes in nginx's
// http {} context) into the same configuration on this machine: its
// listen directive listens on listen, a proxy_pass to a literal address
// goes to upstreams[0], and the server lines of an upstream {} block name
// upstreams in turn (their parameters, such as max_fails, are kept). Every
// other line is the document's. It is an error when the block does not
// name as many upstream servers as there are upstreams, or has no listen.
func Localize(conf, listen string, upstreams ...string) (string, error) {
	if !listenRE.MatchString(conf) {
		return "", fmt.Errorf("the configuration has no listen directive")
	}
	conf = listenRE.ReplaceAllString(conf, "${1}listen "+listen+";")
	var out []string
	inUpstream, n := false, 0
	for _, line := range strings.Split(conf, "\n") {
		switch {
		case upstreamRE.MatchString(line):
			inUpstream = true
		case inUpstream && strings.TrimSpace(line) == "}":
			inUpstream = false
		case inUpstream && serverRE.MatchString(line):
			if n >= len(upstreams) {
				return "", fmt.Errorf("the upstream block names more servers than the %d given", len(upstreams))
			}
			line = serverRE.ReplaceAllString(line, "${1}server "+hostPort(upstreams[n])+"${2};")
			n++
		case proxyPassRE.MatchString(line):
			if len(upstreams) == 0 {
				return "", fmt.Errorf("no upstream given for %q", strings.TrimSpace(line))
			}
			line = proxyPassRE.ReplaceAllString(line, "proxy_pass http://"+hostPort(upstreams[0]))
		}
		out = append(out, line)
	}
	if n != 0 && n != len(upstreams) {
		return "", fmt.Errorf("the upstream block names %d servers, %d given", n, len(upstreams))
	}
	return strings.Join(out, "\n"), nil
}

// hostPort strips the scheme of a base URL: "http://127.0.0.1:1234" → "127.0.0.1:1234".
func hostPort(u string) string {
	return strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/")
}

// NginxPath returns the nginx binary: on PATH or Debian's /usr/sbin/nginx.
// Missing, it skips the test — or fails it under CI=true, where nginx must
// be installed.
func NginxPath(t testing.TB) string {
	t.Helper()
	if bin, err := exec.LookPath("nginx"); err == nil {
		return bin
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but nginx is not installed")
	}
	t.Skip("nginx is not installed")
	return ""
}

// Nginx runs nginx on a free loopback port with the block's configuration
// (see Localize) in front of upstreams (base URLs such as
// "http://127.0.0.1:1234"), inside a minimal main configuration of its own
// (process, temp paths, no access log). It returns nginx's base URL and
// stops nginx when the test ends.
func Nginx(t testing.TB, b Block, upstreams ...string) string {
	t.Helper()
	bin := NginxPath(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conf, err := Localize(b.Text, addr, upstreams...)
	if err != nil {
		t.Fatalf("%s: %v", b.Where(), err)
	}
	dir := t.TempDir()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	main := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
%[2]s
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  # %[3]s
%[4]s
}
`, dir, user, b.Where(), conf)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-c", path).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t refuses the configuration of %s: %v\n%s\n%s", b.Where(), err, out, main)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", path)
	// Its own process group: the workers go with the master, whatever
	// happens to it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("nginx: %v", err)
	}
	t.Cleanup(func() {
		// SIGTERM is nginx's fast shutdown: the master stops its workers
		// and exits. A master killed outright would leave them running.
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		}
		stopGroup(pgid)
	})
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 200 {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "http://" + addr
}
