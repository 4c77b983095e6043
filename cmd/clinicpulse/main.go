// Command clinicpulse serves the ClinicPulse API, streams and dashboards.
//
//	clinicpulse            serve (configured by environment variables)
//	clinicpulse tail ...   follow a tenant's stream, one JSON event per line
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

func main() {
	if len(os.Args) > 1 && os.Args[1] == "tail" {
		if err := runTail(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "clinicpulse tail:", err)
			os.Exit(1)
		}
		return
	}
	if err := serve(); err != nil {
		fmt.Fprintln(os.Stderr, "clinicpulse:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func envDuration(name, def string) (time.Duration, error) {
	d, err := time.ParseDuration(env(name, def))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return d, nil
}

func config() (app.Config, string, error) {
	var cfg app.Config
	var err error
	cfg.Dev = env("DEV", "0") == "1"
	cfg.DatabaseURL = env("DATABASE_URL", "sqlite:./data/clinicpulse.db")
	cfg.JWTIssuer, cfg.JWTAudience = os.Getenv("JWT_ISSUER"), os.Getenv("JWT_AUDIENCE")
	cfg.CORSOrigins = app.ParseOrigins(os.Getenv("CORS_ORIGINS"))
	if cfg.Heartbeat, err = envDuration("HEARTBEAT", "15s"); err != nil {
		return cfg, "", err
	}
	if cfg.StreamMaxDuration, err = envDuration("STREAM_MAX_DURATION", "0s"); err != nil {
		return cfg, "", err
	}
	if cfg.EventRetention, err = envDuration("EVENT_RETENTION", "168h"); err != nil {
		return cfg, "", err
	}
	if tz := os.Getenv("CLINIC_TIMEZONE"); tz != "" {
		if cfg.Location, err = time.LoadLocation(tz); err != nil {
			return cfg, "", fmt.Errorf("CLINIC_TIMEZONE: %w", err)
		}
	} else {
		cfg.Location = time.Local
	}
	secret := os.Getenv("JWT_SECRET")
	switch {
	case secret == "" && !cfg.Dev:
		return cfg, "", errors.New("JWT_SECRET is required (or DEV=1 for a random development secret)")
	case secret == "":
		if secret, err = devSecret(devSecretFile); err != nil {
			return cfg, "", err
		}
		fmt.Fprintf(os.Stderr, "DEV: JWT_SECRET from %s (demo links survive restarts)\n", devSecretFile)
	case len(secret) < 32:
		return cfg, "", errors.New("JWT_SECRET must be at least 32 bytes")
	}
	cfg.JWTSecret = []byte(secret)
	if cfg.Dev {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	} else {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return cfg, env("ADDR", ":8080"), nil
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

func serve() error {
	cfg, addr, err := config()
	if err != nil {
		return err
	}
	tlsCfg, err := tlsConfig(os.Getenv)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.New(ctx, cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	if d := os.Getenv("DEBUG_ADDR"); d != "" {
		if _, err := serveDebug(ctx, d, cfg.Logger); err != nil {
			return err
		}
	}
	if err := a.Start(ctx); err != nil {
		return err
	}
	if cfg.Dev {
		if err := printDemo(ctx, a, ln.Addr()); err != nil {
			return err
		}
	}
	// No WriteTimeout: it would cut every stream; streams set per-write
	// deadlines through http.ResponseController instead.
	srv := &http.Server{Handler: a.Echo, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- serveHTTP(srv, ln, tlsCfg) }()
	cfg.Logger.Info("listening", "addr", ln.Addr().String(), "database", dialectOf(cfg.DatabaseURL), "tls", tlsCfg != nil)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	cfg.Logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return a.Shutdown(sctx, srv)
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
