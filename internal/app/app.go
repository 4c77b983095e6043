// Package app wires the store, the relay, authentication and the HTTP
// packages into one server. The main package reads configuration and runs
// it; tests start it on a loopback listener.
package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/clinicpulse/clinicpulse/api"
	"github.com/clinicpulse/clinicpulse/api/openapi"
	"github.com/clinicpulse/clinicpulse/auth"
	"github.com/clinicpulse/clinicpulse/auth/jwks"
	"github.com/clinicpulse/clinicpulse/metrics"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/pglisten"
	"github.com/clinicpulse/clinicpulse/polling"
	"github.com/clinicpulse/clinicpulse/relay"
	"github.com/clinicpulse/clinicpulse/sse"
	"github.com/clinicpulse/clinicpulse/static"
	"github.com/clinicpulse/clinicpulse/store"
	"github.com/clinicpulse/clinicpulse/webhooks"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// Config is the server's configuration (see the README's table).
type Config struct {
	DatabaseURL       string
	JWTSecret         []byte
	JWTIssuer         string
	JWTAudience       string
	Heartbeat         time.Duration
	StreamMaxDuration time.Duration
	EventRetention    time.Duration
	CORSOrigins       []string
	// EmbedOrigins are the CSP frame-ancestors sources of the dashboards
	// (see ParseEmbedOrigins); nil is 'self'.
	EmbedOrigins []string
	// WriteVisibilityTimeout bounds how long a write waits for its events
	// to be dispatched on this instance before it is answered (read your
	// own writes); 0 is DefaultWriteVisibilityTimeout, negative disables
	// the wait.
	WriteVisibilityTimeout time.Duration
	Dev                    bool
	// Polling configures the poll fallback; zero values take its defaults.
	Polling polling.Config
	// Streams bounds the SSE streams per identity and tenant, and stream
	// opens and ticket mints per identity; zero values take its defaults.
	Streams sse.Limits
	// MaxDeltaEvents bounds the change-log rows one list delta examines
	// (store.Options.MaxDeltaEvents; 0 is its default).
	MaxDeltaEvents int
	// RelayScan is the relay's safety-net scan period.
	RelayScan time.Duration
	Location  *time.Location
	Now       func() time.Time
	Logger    *slog.Logger

	// BookingPastGrace is how long before now an appointment may start
	// when booked or rescheduled (0: 15 minutes; negative: none).
	BookingPastGrace time.Duration
	// DefaultConsultMinutes is the clinic's default consultation length,
	// the wait estimate's prior for doctors without their own (0: 10).
	DefaultConsultMinutes int

	// JWKS, when its URL or issuer is set, also accepts tokens signed by a
	// key of an identity provider's key set (see package auth/jwks; the
	// main package sets Issuer for OIDC discovery). Its Logger defaults to
	// Logger.
	JWKS jwks.Config
	// JWTTenantClaim, JWTRoleClaim and JWTSubjectClaim say where the key
	// set's tokens carry the tenant, role and ClinicPulse identity
	// (auth.ParseClaimPath); "" reads tenant_id, role and sub.
	JWTTenantClaim, JWTRoleClaim, JWTSubjectClaim string
	// Webhooks configures webhook delivery (WEBHOOK_*); zero values take
	// its defaults. Its Policy's AllowHTTPHosts is WEBHOOK_ALLOW_HTTP_HOSTS.
	Webhooks webhooks.Config
}

// App is a running ClinicPulse instance.
type App struct {
	Config Config
	Store  *store.Store
	Relay  *relay.Relay
	Auth   *auth.Authenticator
	// KeySet is the identity provider's key set (nil without one).
	KeySet *jwks.Set
	Echo   *echo.Echo
	Logger *slog.Logger
	// Listener follows other instances' commits (Postgres only; nil on SQLite).
	Listener *pglisten.Listener
	Metrics  *metrics.Metrics
	Sampler  *metrics.Sampler
	Poller   *polling.Poller
	// Webhooks delivers the webhook subscriptions.
	Webhooks *webhooks.Deliverer
	gauges   Gauges
	routes   *routeTable

	cancel context.CancelFunc
	wg     sync.WaitGroup
	// closers run on shutdown, before the database closes (streams, long-polls).
	closers   []func(context.Context)
	closeOnce sync.Once
}

// New opens the database and builds the server; Start runs its background work.
func New(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = boundLogger(cfg.Logger)
	if cfg.WriteVisibilityTimeout == 0 {
		cfg.WriteVisibilityTimeout = DefaultWriteVisibilityTimeout
	}
	if cfg.EmbedOrigins == nil {
		cfg.EmbedOrigins = []string{"'self'"}
	}
	for _, o := range cfg.EmbedOrigins {
		if err := checkEmbedOrigin(o); err != nil {
			return nil, err
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.EventRetention <= 0 {
		cfg.EventRetention = 168 * time.Hour
	}
	if cfg.RelayScan <= 0 {
		cfg.RelayScan = 2 * time.Second
	}
	a := &App{Config: cfg, Logger: cfg.Logger, Metrics: metrics.New(cfg.Now)}
	var rl *relay.Relay
	st, err := store.Open(ctx, cfg.DatabaseURL, store.Options{
		MaxDeltaEvents: cfg.MaxDeltaEvents,
		Now:            cfg.Now, Location: cfg.Location,
		BookingPastGrace: cfg.BookingPastGrace, DefaultConsultMinutes: cfg.DefaultConsultMinutes,
		OnCommit: func(tenant string, head int64, n int) {
			a.Metrics.Committed.Add(float64(n))
			rl.Nudge(tenant, head)
		},
	})
	if err != nil {
		return nil, err
	}
	rl = relay.New(st, cfg.RelayScan, cfg.Logger)
	rl.AddSink(a.Metrics)
	a.Store, a.Relay = st, rl
	if a.Auth, err = a.newAuth(ctx, st); err != nil {
		return nil, errors.Join(err, st.Close())
	}
	a.Echo = a.newEcho()
	v1 := a.API(false)
	h := &api.Handler{Store: st}
	if c := a.mountConsistency(); c != nil {
		h.Consistency = c
	}
	h.Register(v1, a.listMiddleware())
	a.mountSSE()
	a.mountPolling(v1)
	a.mountWebhooks(v1)
	a.mountListener()
	a.mountMetrics()
	return a, nil
}

// newAuth builds the authenticator, with the identity provider's key set
// when one is configured.
func (a *App) newAuth(ctx context.Context, spender auth.Spender) (*auth.Authenticator, error) {
	cfg := a.Config
	ac := auth.Config{Secret: cfg.JWTSecret, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, Now: cfg.Now, Spender: spender}
	if cfg.JWKS.URL == "" && cfg.JWKS.Issuer == "" {
		return auth.New(ac), nil
	}
	var err error
	for _, c := range []struct {
		name, value string
		path        *auth.ClaimPath
	}{{"tenant", cfg.JWTTenantClaim, &ac.TenantClaim}, {"role", cfg.JWTRoleClaim, &ac.RoleClaim}, {"subject", cfg.JWTSubjectClaim, &ac.SubjectClaim}} {
		if c.value == "" {
			continue
		}
		if *c.path, err = auth.ParseClaimPath(c.value); err != nil {
			return nil, fmt.Errorf("the %s claim %q: %w", c.name, c.value, err)
		}
	}
	jc := cfg.JWKS
	if jc.Logger == nil {
		jc.Logger = a.Logger
	}
	if a.KeySet, err = jwks.New(ctx, jc); err != nil {
		return nil, err
	}
	ac.KeySet = a.KeySet
	return auth.New(ac), nil
}

// OnShutdown registers work to run when the server stops, before the
// database closes (ending streams and long-polls).
func (a *App) OnShutdown(fn func(context.Context)) { a.closers = append(a.closers, fn) }

func (a *App) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// Before any route: every GET route gets its HEAD, and labels and
	// Allow headers come from the routes.
	a.routes = newRouteTable(e)
	e.HTTPErrorHandler = api.ErrorHandler(a.Logger)
	e.Use(requestID)
	e.Use(a.requestLog)
	e.Use(a.Metrics.Middleware(func(err error) int { return api.ProblemOf(err).Status }, a.routes.labels, isStream, isPoll))
	e.Use(middleware.Recover())
	if len(a.Config.CORSOrigins) > 0 {
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			// An OPTIONS without Origin is no CORS preflight: the route
			// table answers it (204 with Allow), as without CORS_ORIGINS.
			Skipper: func(c echo.Context) bool {
				return c.Request().Method == http.MethodOptions && c.Request().Header.Get("Origin") == ""
			},
			AllowOrigins:  a.Config.CORSOrigins,
			AllowMethods:  []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPatch, http.MethodDelete, http.MethodOptions},
			AllowHeaders:  []string{"Authorization", "Content-Type", "If-None-Match", "If-Match", "Idempotency-Key", "Last-Event-ID", "X-Tenant-ID"},
			ExposeHeaders: []string{"ETag", "X-Poll-Interval", "Retry-After", "Location", api.CursorHeader},
			MaxAge:        600,
		}))
	}
	e.Use(securityHeaders(a.Config.EmbedOrigins))
	e.Use(a.routes.methodNotAllowed)
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", func(c echo.Context) error {
		if err := a.Store.Ping(c.Request().Context()); err != nil {
			return &models.Error{Code: models.EUNAVAILABLE, Message: "the database is unreachable"}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	sub, _ := fs.Sub(static.FS, ".")
	e.StaticFS("/static", sub)
	// The API's OpenAPI document needs no token: it is registered on the
	// server, not on the authenticated /api/v1 group (the router prefers
	// this static path to the group's catch-all).
	e.GET(openapi.Path, openapi.Serve)
	e.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusFound, "/static/index.html") })
	return e
}

// API returns the authenticated /api/v1 group; stream routes may pass
// allowTicket.
func (a *App) API(allowTicket bool) *echo.Group {
	return a.Echo.Group("/api/v1", a.Auth.Middleware(allowTicket))
}

// requestLog writes one line per request: method (a routed method or
// "other"), route pattern (never the path: ids are patient-linked data, and
// the stream's ticket travels in the query), status, duration, request id
// (see requestID). No header, body, token or personal data is logged, and
// every field is from a fixed set or bounded.
func (a *App) requestLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		a.logRequest(c, start, err)
		return err
	}
}

// logRequest is kept out of requestLog's frame: a stream's goroutine sits in
// that frame for hours, and a small frame lets the GC shrink an idle stream's
// stack to half (measured: 18.4 → 10.2 KB per idle stream).
//
//go:noinline
func (a *App) logRequest(c echo.Context, start time.Time, err error) {
	status := c.Response().Status
	if err != nil {
		status = api.ProblemOf(err).Status
	}
	route, method := a.routes.labels(c)
	a.Logger.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
		slog.String("id", c.Response().Header().Get(echo.HeaderXRequestID)),
		slog.String("method", method), slog.String("route", route),
		slog.Int("status", status), slog.Duration("duration", time.Since(start)))
}

// Start begins the relay and the log janitor. The relay reads every tenant's
// head before it returns, so events committed after Start are dispatched.
func (a *App) Start(ctx context.Context) error {
	if err := a.Relay.Start(ctx); err != nil {
		return err
	}
	ctx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	a.wg.Add(4)
	go func() { defer a.wg.Done(); a.Webhooks.Run(ctx) }()
	go func() { defer a.wg.Done(); a.Sampler.Run(ctx) }()
	go func() { defer a.wg.Done(); a.Relay.Run(ctx) }()
	go func() { defer a.wg.Done(); a.janitor(ctx) }()
	a.startListener(ctx, &a.wg)
	return nil
}

func (a *App) janitor(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := a.Store.Prune(ctx, a.Config.EventRetention); err != nil && ctx.Err() == nil {
			a.Logger.Warn("prune failed", "err", err)
		} else if n > 0 {
			a.Logger.Info("pruned events", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Closers returns the registered shutdown hooks.
func (a *App) Closers() []func(context.Context) { return a.closers }

// Shutdown stops the instance in order: stop accepting; end streams and
// long-polls so clients move to another instance; wait (within ctx) for the
// HTTP server's requests to finish; stop the relay, listener and janitor;
// close the database.
func (a *App) Shutdown(ctx context.Context, srv *http.Server) error {
	closeStreams := func() {
		a.closeOnce.Do(func() {
			for _, fn := range a.closers {
				fn(ctx)
			}
		})
	}
	var errs []error
	if srv != nil {
		// Called by srv.Shutdown once its listeners are closed.
		srv.RegisterOnShutdown(closeStreams)
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
	}
	closeStreams()
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
	if a.KeySet != nil {
		a.KeySet.Close()
	}
	if err := a.Store.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ParseOrigins splits CORS_ORIGINS.
func ParseOrigins(s string) []string {
	var out []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}
