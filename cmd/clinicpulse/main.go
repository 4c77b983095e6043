// Command clinicpulse serves the ClinicPulse API, streams and dashboards.
//
//	clinicpulse            serve (configured by environment variables)
//	clinicpulse tail ...   follow a tenant's stream, one JSON event per line
//	clinicpulse token ...  print a token signed with JWT_SECRET
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/internal/seed"
	"github.com/clinicpulse/clinicpulse/models"
)

// usage is the help of the command line: the server takes no arguments
// (its configuration is the environment, see the README), the two tools
// take flags.
const usage = `usage:
  clinicpulse                 serve (configured by environment variables: see the README's Configuration)
  clinicpulse token --tenant T --role R --sub S [--ttl 12h]
                              print a token signed with JWT_SECRET
  clinicpulse tail --url URL [--token JWT] [--since CURSOR] [--topics a,b]
                              follow a tenant's stream, one JSON event per line
  clinicpulse help            this help
`

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "tail":
			if err := runTail(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "clinicpulse tail:", err)
				os.Exit(1)
			}
			return
		case "token":
			os.Exit(runToken(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
		case "help", "-h", "-help", "--help":
			fmt.Print(usage)
			return
		default:
			// Never start a server on an argument it does not know (a
			// mistyped tool name or flag would bind a port and open the
			// database).
			fmt.Fprintf(os.Stderr, "clinicpulse: unknown command or flag %q\n\n%s", os.Args[1], usage)
			os.Exit(2)
		}
	}
	if err := serve(); err != nil {
		fmt.Fprintln(os.Stderr, "clinicpulse:", err)
		os.Exit(1)
	}
}

// devSecretFile keeps DEV=1's random JWT secret, so that demo links keep
// working across restarts.
const devSecretFile = "data/dev-jwt-secret"

func devSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	b := make([]byte, 32)
	rand.Read(b)
	secret := hex.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return "", fmt.Errorf("dev secret: %w", err)
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("dev secret: %w", err)
	}
	return secret, nil
}

// serve reads the configuration from the environment and serves until
// SIGINT or SIGTERM.
func serve() error {
	sc, err := loadConfig(os.Getenv, openFileLimit())
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, sc, nil)
}

// run serves sc until ctx ends, then shuts down in order (see
// app.Shutdown). ready, if not nil, is called with the listening address
// once the server accepts connections.
func run(ctx context.Context, sc serverConfig, ready func(net.Addr)) error {
	cfg := sc.App
	a, err := app.New(ctx, cfg)
	if err != nil {
		return err
	}
	// fail stops what has started (the database, the relay) and returns err.
	fail := func(err error) error {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return errors.Join(err, a.Shutdown(sctx, nil))
	}
	tcp, err := net.Listen("tcp", sc.Addr)
	if err != nil {
		return fail(fmt.Errorf("listen %s: %w", sc.Addr, err))
	}
	ln := limitListen(tcp, sc.MaxConnections, cfg.Logger)
	defer ln.Close()
	if sc.DebugAddr != "" {
		if _, err := serveDebug(ctx, sc.DebugAddr, cfg.Logger); err != nil {
			return fail(err)
		}
	}
	if err := a.Start(ctx); err != nil {
		return fail(err)
	}
	if cfg.Dev {
		if err := printDemo(ctx, a, ln.Addr()); err != nil {
			return fail(err)
		}
	}
	srv := newHTTPServer(sc, a.Echo, cfg.Logger)
	errc := make(chan error, 1)
	go func() { errc <- serveHTTP(srv, ln, sc.TLS) }()
	cfg.Logger.Info("listening", "addr", ln.Addr().String(), "database", dialectOf(cfg.DatabaseURL), "tls", sc.TLS != nil,
		"max_connections", sc.MaxConnections, "request_read_timeout", sc.ReadTimeout.String(),
		"request_write_timeout", sc.WriteTimeout.String())
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err := <-errc:
		return fail(fmt.Errorf("serve: %w", err))
	case <-ctx.Done():
	}
	cfg.Logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return a.Shutdown(sctx, srv)
}

// newHTTPServer returns the HTTP server for h: every phase of a request
// that waits on the client has a deadline — the TLS handshake and the
// headers (readHeaderTimeout), the body (sc.ReadTimeout), the response
// (sc.WriteTimeout), the next request on a kept-alive connection
// (idleTimeout).
//
// net/http lifts the read deadline once the body has been read
// (connReader.startBackgroundRead; TestReadTimeoutSparesLongPollsAndStreams
// holds it to that), so long-polls and streams are not cut by it; on
// HTTP/2 ReadTimeout bounds request bodies only. WriteTimeout is longer
// than a long-poll's longest wait (loadConfig checks it). A stream lifts
// it with its first write: the stream sets a deadline of its own around
// each write and clears it after (sse's flush; HTTP/2 would reset a stream
// whose deadline passes even while it idles), which replaces the server's.
func newHTTPServer(sc serverConfig, h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       sc.ReadTimeout,
		WriteTimeout:      sc.WriteTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

func dialectOf(url string) string {
	if strings.HasPrefix(url, "postgres") {
		return "postgres"
	}
	return "sqlite"
}

func printDemo(ctx context.Context, a *app.App, addr net.Addr) error {
	doctor, patient, err := seed.Demo(ctx, a.Store, time.Now(), a.Store.Location())
	if err != nil {
		return err
	}
	host := addr.String()
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		host = fmt.Sprintf("localhost:%d", tcp.Port)
	}
	base := "http://" + host
	fmt.Printf("\nClinicPulse (DEV) on %s — demo tenant %q\n\n", base, seed.DemoTenant)
	for _, p := range []struct {
		page string
		role models.Role
		sub  string
	}{
		{"frontdesk", models.RoleCoordinator, "coordinator-1"},
		{"doctor", models.RoleDoctor, doctor},
		{"patient", models.RolePatient, patient},
		{"display", models.RoleDisplay, "display-1"},
		{"ops", models.RoleAdmin, "admin-1"},
	} {
		tok, err := a.Auth.Sign(models.Actor{Subject: p.sub, TenantID: seed.DemoTenant, Role: p.role}, 12*time.Hour)
		if err != nil {
			return err
		}
		fmt.Printf("  %-10s %s/static/%s.html#token=%s\n", p.page, base, p.page, tok)
	}
	fmt.Println()
	return nil
}
