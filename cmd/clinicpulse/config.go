package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clinicpulse/clinicpulse/auth"
	"github.com/clinicpulse/clinicpulse/auth/jwks"
	"github.com/clinicpulse/clinicpulse/internal/app"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/polling"
	"github.com/clinicpulse/clinicpulse/sse"
	"github.com/clinicpulse/clinicpulse/store"
	"github.com/clinicpulse/clinicpulse/webhooks"
	"golang.org/x/time/rate"
)

// Fixed HTTP server timeouts (RFC 9112 leaves them to the server).
const (
	// readHeaderTimeout bounds reading a request's line and headers (and,
	// with TLS, the handshake).
	readHeaderTimeout = 10 * time.Second
	// idleTimeout bounds the wait for the next request on a kept-alive
	// connection (HTTP/1.1), or on an HTTP/2 connection without streams.
	idleTimeout = 120 * time.Second
)

// Defaults of the connection limits.
const (
	defaultReadTimeout  = 30 * time.Second
	defaultWriteTimeout = 90 * time.Second
	// writeMargin is what REQUEST_WRITE_TIMEOUT must leave a long-poll to
	// answer after its longest wait.
	writeMargin = 5 * time.Second
	// fdReserve is how many file descriptors MAX_CONNECTIONS leaves to
	// everything else the process opens: the database pool (up to 32
	// Postgres connections, or SQLite's database, WAL and shared-memory
	// files), the LISTEN connection, the debug listener and its
	// connections (at most debugMaxConns), standard input, output and
	// error, the runtime's poller, and /proc reads by the metrics sampler.
	// That is about 60; the rest is margin.
	fdReserve = 128
	// minConnections is the least a derived MAX_CONNECTIONS may be.
	minConnections = 16
	// maxDerivedConnections caps the default when the open-file limit is
	// unlimited or huge.
	maxDerivedConnections = 1 << 20
)

// serverConfig is everything serve reads from the environment (see the
// README's configuration table).
type serverConfig struct {
	App       app.Config
	Addr      string      // ADDR
	DebugAddr string      // DEBUG_ADDR; "" serves no profiles
	TLS       *tls.Config // TLS_CERT_FILE, TLS_KEY_FILE; nil serves plain HTTP
	// ReadTimeout bounds reading a request, headers and body
	// (REQUEST_READ_TIMEOUT); see newHTTPServer.
	ReadTimeout time.Duration
	// WriteTimeout bounds a response, from the end of its request's
	// headers to its last byte (REQUEST_WRITE_TIMEOUT); a stream lifts it
	// with its first write. See newHTTPServer.
	WriteTimeout time.Duration
	// MaxConnections caps the connections open at once (MAX_CONNECTIONS);
	// further clients wait in the kernel's accept queue until one closes.
	MaxConnections int
}

// loadConfig reads and validates the whole configuration through getenv
// (os.Getenv in main). noFile is the process's open-file limit
// (RLIMIT_NOFILE), from which MAX_CONNECTIONS is derived and against which
// it is checked. Every invalid variable is reported, each error naming it.
// With DEV=1 and no JWT_SECRET it creates (or reads) the development
// secret file.
func loadConfig(getenv func(string) string, noFile uint64) (serverConfig, error) {
	e := &envReader{get: getenv}
	var sc serverConfig
	cfg := &sc.App
	cfg.Dev = e.boolean("DEV", false)
	cfg.DatabaseURL = e.str("DATABASE_URL", "sqlite:./data/clinicpulse.db")
	cfg.JWTIssuer, cfg.JWTAudience = getenv("JWT_ISSUER"), getenv("JWT_AUDIENCE")
	cfg.CORSOrigins = app.ParseOrigins(getenv("CORS_ORIGINS"))
	cfg.Heartbeat = e.duration("HEARTBEAT", 15*time.Second, time.Millisecond)
	cfg.StreamMaxDuration = e.duration("STREAM_MAX_DURATION", 0, 0)
	cfg.EventRetention = e.duration("EVENT_RETENTION", 168*time.Hour, time.Second)
	sc.ReadTimeout = e.duration("REQUEST_READ_TIMEOUT", defaultReadTimeout, time.Millisecond)
	// A long-poll holds its response for up to its wait: the write
	// deadline must leave it that and a margin.
	maxWait := cfg.Polling.MaxWait
	if maxWait <= 0 {
		maxWait = polling.DefaultConfig().MaxWait
	}
	sc.WriteTimeout = e.duration("REQUEST_WRITE_TIMEOUT", defaultWriteTimeout, maxWait+writeMargin)
	if tz := getenv("CLINIC_TIMEZONE"); tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			e.fail("CLINIC_TIMEZONE", tz, "not an IANA time zone (e.g. Europe/Paris)")
		}
		cfg.Location = loc
	} else {
		cfg.Location = time.Local
	}
	if v := getenv("EMBED_ORIGINS"); v != "" {
		origins, err := app.ParseEmbedOrigins(v)
		if err != nil {
			e.fail("EMBED_ORIGINS", v, err.Error())
		}
		cfg.EmbedOrigins = origins
	}
	if v := getenv("WRITE_VISIBILITY_TIMEOUT"); strings.TrimSpace(v) == "off" {
		cfg.WriteVisibilityTimeout = -1
	} else {
		cfg.WriteVisibilityTimeout = e.duration("WRITE_VISIBILITY_TIMEOUT", app.DefaultWriteVisibilityTimeout, time.Millisecond)
	}
	st := &cfg.Streams
	st.PerIdentityStaff = e.holds("STREAMS_PER_STAFF", sse.DefaultStreamsPerIdentityStaff)
	st.PerIdentityPublic = e.holds("STREAMS_PER_PUBLIC", sse.DefaultStreamsPerIdentityPublic)
	st.PerTenant = e.holds("STREAMS_PER_TENANT", sse.DefaultStreamsPerTenant)
	st.OpenRate = float64(e.integer("STREAM_OPENS_PER_SECOND", sse.DefaultOpenRate, 1, 10000, "at most 10000"))
	st.OpenBurst = e.integer("STREAM_OPENS_BURST", sse.DefaultOpenBurst, 1, 10000, "at most 10000")
	pd := polling.DefaultConfig()
	pc := &cfg.Polling
	pc.LongPollsPerStaff = e.holds("LONGPOLLS_PER_STAFF", pd.LongPollsPerStaff)
	pc.LongPollsPerPatient = e.holds("LONGPOLLS_PER_PATIENT", pd.LongPollsPerPatient)
	pc.LongPollsPerDisplay = e.holds("LONGPOLLS_PER_DISPLAY", pd.LongPollsPerDisplay)
	pc.LongPollsPerTenant = e.holds("LONGPOLLS_PER_TENANT", pd.LongPollsPerTenant)
	pc.Rate = rate.Limit(e.integer("POLLS_PER_SECOND", int(pd.Rate), 1, 1_000_000, "at most 1000000"))
	pc.Burst = e.integer("POLLS_BURST", pd.Burst, 1, 1_000_000, "at most 1000000")
	cfg.MaxDeltaEvents = e.integer("MAX_DELTA_EVENTS", store.DefaultMaxDeltaEvents, 1, 10_000_000, "at most 10000000")
	cfg.BookingPastGrace = e.duration("BOOKING_PAST_GRACE", models.DefaultBookingPastGrace, 0)
	if cfg.BookingPastGrace == 0 {
		cfg.BookingPastGrace = -1 // "0s": no grace (the store reads 0 as its default)
	}
	cfg.DefaultConsultMinutes = e.integer("DEFAULT_CONSULT_MINUTES", models.DefaultConsultMinutes, 1, 480, "at most 480 (8 hours)")
	wc := &cfg.Webhooks
	wc.Policy.AllowHTTPHosts = map[string]bool{}
	for _, h := range strings.Split(getenv("WEBHOOK_ALLOW_HTTP_HOSTS"), ",") {
		if h = strings.Trim(strings.ToLower(strings.TrimSpace(h)), "[]"); h != "" {
			if _, err := netip.ParseAddr(h); err != nil && strings.ContainsAny(h, "/:@ \t") {
				e.fail("WEBHOOK_ALLOW_HTTP_HOSTS", h, "a comma-separated list of host names or IP addresses, without scheme or port")
			}
			wc.Policy.AllowHTTPHosts[strings.TrimSuffix(h, ".")] = true
		}
	}
	wc.Workers = e.integer("WEBHOOK_WORKERS", webhooks.DefaultWorkers, 1, 4096, "at most 4096")
	wc.MaxFailures = e.integer("WEBHOOK_MAX_FAILURES", webhooks.DefaultMaxFailures, 1, 1_000_000, "at most 1000000")
	wc.Timeout = e.duration("WEBHOOK_TIMEOUT", webhooks.DefaultTimeout, 100*time.Millisecond)
	wc.BackoffMin = e.duration("WEBHOOK_BACKOFF_MIN", webhooks.DefaultBackoffMin, time.Millisecond)
	wc.BackoffMax = e.duration("WEBHOOK_BACKOFF_MAX", webhooks.DefaultBackoffMax, time.Millisecond)
	wc.Lease = e.duration("WEBHOOK_LEASE", webhooks.DefaultLease, time.Second)
	if wc.Lease <= wc.Timeout {
		e.errs = append(e.errs, errors.New("WEBHOOK_LEASE must be longer than WEBHOOK_TIMEOUT (a lease outlives one request)"))
	}
	if wc.BackoffMax < wc.BackoffMin {
		e.errs = append(e.errs, errors.New("WEBHOOK_BACKOFF_MAX must be at least WEBHOOK_BACKOFF_MIN"))
	}
	sc.Addr = e.str("ADDR", ":8080")
	sc.DebugAddr = getenv("DEBUG_ADDR")

	limit, derived := connectionLimit(noFile)
	if getenv("MAX_CONNECTIONS") == "" && derived < minConnections {
		e.errs = append(e.errs, fmt.Errorf("MAX_CONNECTIONS: the open-file limit (%d) leaves fewer than %d connections after %d descriptors reserved for the database and logs; raise it (ulimit -n)",
			noFile, minConnections, fdReserve))
	}
	sc.MaxConnections = e.integer("MAX_CONNECTIONS", derived, 1, limit,
		fmt.Sprintf("at most the open-file limit (%d) minus %d reserved for the database and logs", noFile, fdReserve))

	var err error
	if sc.TLS, err = tlsConfig(getenv); err != nil {
		e.errs = append(e.errs, err)
	}
	secret := getenv("JWT_SECRET")
	switch {
	case secret == "" && !cfg.Dev:
		e.errs = append(e.errs, errors.New("JWT_SECRET is required (or DEV=1 for a random development secret)"))
	case secret == "":
		if secret, err = devSecret(devSecretFile); err != nil {
			e.errs = append(e.errs, err)
		} else {
			fmt.Fprintf(os.Stderr, "DEV: JWT_SECRET from %s (demo links survive restarts)\n", devSecretFile)
		}
	case len(secret) < 32:
		e.errs = append(e.errs, errors.New("JWT_SECRET must be at least 32 bytes"))
	}
	cfg.JWTSecret = []byte(secret)
	e.identityProvider(cfg)
	if len(e.errs) > 0 {
		return sc, fmt.Errorf("configuration: %w", errors.Join(e.errs...))
	}
	if cfg.Dev {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	} else {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return sc, nil
}

// identityProvider reads the identity provider's settings (docs/identity.md):
// JWT_JWKS_URL (a URL, or "off"), OIDC discovery when it is unset and
// JWT_ISSUER is an http(s) URL, JWT_JWKS_REFRESH, JWT_TENANT_CLAIM,
// JWT_ROLE_CLAIM and JWT_SUBJECT_CLAIM. A key set needs JWT_ISSUER and JWT_AUDIENCE: without them
// a token the provider issued to another application, or to another
// tenant of a shared provider, would be accepted.
func (e *envReader) identityProvider(cfg *app.Config) {
	switch u := strings.TrimSpace(e.get("JWT_JWKS_URL")); {
	case u == "off":
	case u != "":
		if err := jwks.CheckURL(u); err != nil {
			e.fail("JWT_JWKS_URL", u, err.Error()+", or off")
		}
		cfg.JWKS.URL = u
	case isHTTPURL(cfg.JWTIssuer):
		if err := jwks.CheckURL(cfg.JWTIssuer); err != nil {
			e.fail("JWT_ISSUER", cfg.JWTIssuer, "OpenID Connect discovery from this issuer: it "+err.Error()+"; set JWT_JWKS_URL=off to accept HS256 tokens only")
		}
		cfg.JWKS.Issuer = cfg.JWTIssuer
	}
	keySet := cfg.JWKS.URL != "" || cfg.JWKS.Issuer != ""
	const why = "applies to an identity provider's key set: set JWT_JWKS_URL, or a JWT_ISSUER URL for discovery"
	for _, c := range []struct {
		name string
		dst  *string
	}{{"JWT_TENANT_CLAIM", &cfg.JWTTenantClaim}, {"JWT_ROLE_CLAIM", &cfg.JWTRoleClaim}, {"JWT_SUBJECT_CLAIM", &cfg.JWTSubjectClaim}} {
		v := e.get(c.name)
		if v == "" {
			continue
		}
		if _, err := auth.ParseClaimPath(v); err != nil {
			e.fail(c.name, v, "a claim name or dotted path: "+err.Error())
		} else if !keySet {
			e.fail(c.name, v, why)
		}
		*c.dst = v
	}
	if v := e.get("JWT_JWKS_REFRESH"); v != "" && !keySet {
		e.fail("JWT_JWKS_REFRESH", v, why)
	}
	cfg.JWKS.Refresh = e.duration("JWT_JWKS_REFRESH", jwks.DefaultRefresh, time.Minute)
	if cfg.JWKS.Refresh > 24*time.Hour {
		e.fail("JWT_JWKS_REFRESH", e.get("JWT_JWKS_REFRESH"), "must be at most 24h")
	}
	if keySet && cfg.JWTIssuer == "" {
		e.errs = append(e.errs, errors.New("JWT_ISSUER is required with an identity provider's key set (JWT_JWKS_URL): the provider's iss, e.g. https://tenant.example.com/"))
	}
	if keySet && cfg.JWTAudience == "" {
		e.errs = append(e.errs, errors.New("JWT_AUDIENCE is required with an identity provider's key set: the aud of the provider's tokens for ClinicPulse (an API identifier or client id), so that its tokens for other applications are refused"))
	}
}

// isHTTPURL reports whether s starts as an http(s) URL does (an issuer
// such as "clinicpulse" is a plain name, not a provider to discover).
func isHTTPURL(s string) bool {
	s = strings.ToLower(s)
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}

// connectionLimit returns the most MAX_CONNECTIONS may be under the
// open-file limit noFile, and its default: the same, capped at
// maxDerivedConnections. Each connection holds one descriptor; fdReserve
// are left for the rest (see its comment).
func connectionLimit(noFile uint64) (limit, derived int) {
	if noFile <= fdReserve {
		return 0, 0
	}
	n := noFile - fdReserve
	if n > math.MaxInt32 {
		n = math.MaxInt32
	}
	return int(n), min(int(n), maxDerivedConnections)
}

// openFileLimit returns the process's open-file limit (RLIMIT_NOFILE, soft:
// Go raises it to the hard limit at start on Linux).
func openFileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 1024 // the common default
	}
	return l.Cur
}

// envReader reads variables, collecting one error per invalid one.
type envReader struct {
	get  func(string) string
	errs []error
}

func (e *envReader) fail(name, value, want string) {
	e.errs = append(e.errs, fmt.Errorf("%s=%s: %s", name, strconv.Quote(short(value)), want))
}

// short bounds a value quoted in an error (an operator's typo, not a
// secret: secrets are never quoted).
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// str returns the variable, or def when it is unset or empty.
func (e *envReader) str(name, def string) string {
	if v := e.get(name); v != "" {
		return v
	}
	return def
}

// duration parses a Go duration ("15s", "500ms", "2h") of at least least.
func (e *envReader) duration(name string, def, least time.Duration) time.Duration {
	v := e.get(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	switch {
	case err != nil:
		e.fail(name, v, "not a duration (e.g. 15s, 500ms, 2h)")
	case d < least && least == 0:
		e.fail(name, v, "must not be negative")
	case d < least:
		e.fail(name, v, "must be at least "+least.String())
	}
	return d
}

// integer parses a decimal integer in [lo, hi]; why says what hi is.
func (e *envReader) integer(name string, def, lo, hi int, why string) int {
	v := e.get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	switch {
	case err != nil:
		e.fail(name, v, "not an integer")
	case n < lo:
		e.fail(name, v, fmt.Sprintf("must be at least %d", lo))
	case n > hi:
		e.fail(name, v, fmt.Sprintf("must be %s", why))
	}
	return n
}

// maxHolds bounds the per-identity and per-tenant limit variables.
const maxHolds = 1 << 20

// holds parses a concurrency bound (streams or long-polls held at once) in
// 1..maxHolds.
func (e *envReader) holds(name string, def int) int {
	return e.integer(name, def, 1, maxHolds, fmt.Sprintf("at most %d", maxHolds))
}

// boolean parses 1/0, true/false (strconv.ParseBool).
func (e *envReader) boolean(name string, def bool) bool {
	v := e.get(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		e.fail(name, v, "must be 1 or 0")
	}
	return b
}
