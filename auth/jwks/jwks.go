// Package jwks holds an identity provider's signing keys: a JWK Set (RFC
// 7517) fetched over HTTPS and kept fresh by github.com/MicahParks/keyfunc/v3
// and github.com/MicahParks/jwkset, at a URL given or found by OpenID
// Connect discovery from the issuer. *Set implements auth.KeySet.
//
// Behaviour, with the defaults:
//   - The set is fetched at start, then every Refresh (15 min); a fetch
//     replaces the whole set, so a key removed by the provider stops
//     verifying from the next fetch on.
//   - A token naming a kid the set lacks triggers a fetch at once, at most
//     one per UnknownKIDEvery (30 s) across all requests; a request never
//     waits on that limit longer than Timeout — past it the kid is unknown.
//   - A fetch that fails (server down, status other than 200, a body over
//     MaxBytes, invalid JSON, a key that does not parse) changes nothing:
//     the keys already held keep working, and the failure is logged.
//   - When the first fetch fails, New still returns: tokens of the set are
//     refused (auth.ErrKeySetNotLoaded) until a fetch succeeds; HS256
//     tokens are unaffected. With discovery, a failed discovery is retried
//     in the background, from DiscoveryRetry doubling up to 5 minutes.
package jwks

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/clinicpulse/clinicpulse/auth"
	"golang.org/x/time/rate"
)

// Defaults of Config.
const (
	DefaultRefresh         = 15 * time.Minute
	DefaultUnknownKIDEvery = 30 * time.Second
	DefaultDiscoveryRetry  = 2 * time.Second
	maxDiscoveryRetry      = 5 * time.Minute
)

// Config says where the keys are and how they are fetched. Zero values
// take the defaults.
type Config struct {
	// URL is the JWK Set's URL (JWT_JWKS_URL). When empty, it is found by
	// discovery from Issuer.
	URL string
	// Issuer is the provider's issuer (JWT_ISSUER), for discovery.
	Issuer string
	// Refresh is the period of the scheduled fetch (JWT_JWKS_REFRESH).
	Refresh time.Duration
	// UnknownKIDEvery is the least time between two fetches triggered by
	// tokens naming an unknown kid.
	UnknownKIDEvery time.Duration
	// DiscoveryRetry is the first wait before retrying a failed discovery.
	DiscoveryRetry time.Duration
	// Timeout bounds each request (DefaultTimeout); MaxBytes each
	// response body (DefaultMaxBytes).
	Timeout  time.Duration
	MaxBytes int64
	// Logger receives fetch failures (URL and error, never a token).
	Logger *slog.Logger
}

// Set is an identity provider's key set. Its methods are safe for
// concurrent use.
type Set struct {
	cfg    Config
	client *http.Client
	ctx    context.Context // ends the refresh goroutine and the discovery retries
	cancel context.CancelFunc
	wg     sync.WaitGroup
	store  atomic.Pointer[storage] // nil until the set's URL is known
}

type storage struct {
	url string
	jwkset.Storage
}

var _ auth.KeySet = (*Set)(nil)

// New checks cfg and starts fetching the keys: it returns once the first
// fetch (or discovery and fetch) succeeded or failed, after at most about
// twice Timeout. An invalid cfg is an error, and so is ctx ending first; an
// unreachable provider is logged and retried (see the package comment).
// ctx bounds New only; Close stops the background work.
func New(ctx context.Context, cfg Config) (*Set, error) {
	if cfg.URL == "" && cfg.Issuer == "" {
		return nil, errors.New("jwks: neither a key set URL nor an issuer to discover it from")
	}
	if cfg.URL != "" {
		if err := CheckURL(cfg.URL); err != nil {
			return nil, fmt.Errorf("jwks: the key set URL %w", err)
		}
	} else if err := CheckURL(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("jwks: discovery needs an issuer that is a URL: it %w", err)
	}
	cfg.Refresh = orDefault(cfg.Refresh, DefaultRefresh)
	cfg.UnknownKIDEvery = orDefault(cfg.UnknownKIDEvery, DefaultUnknownKIDEvery)
	cfg.DiscoveryRetry = orDefault(cfg.DiscoveryRetry, DefaultDiscoveryRetry)
	cfg.Timeout = orDefault(cfg.Timeout, DefaultTimeout)
	cfg.MaxBytes = orDefault(cfg.MaxBytes, DefaultMaxBytes)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Set{cfg: cfg, client: newClient(cfg.Timeout, cfg.MaxBytes)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, s.cancel)
	defer stop()
	if cfg.URL != "" {
		if err := s.load(cfg.URL); err != nil {
			s.cancel()
			return nil, err
		}
	} else if !s.discover() {
		s.wg.Add(1)
		go s.retryDiscovery()
	}
	if err := ctx.Err(); err != nil {
		s.Close()
		return nil, fmt.Errorf("jwks: %w", err)
	}
	return s, nil
}

func orDefault[T time.Duration | int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// discover looks up the key set's URL and loads it; it reports success.
func (s *Set) discover() bool {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	u, err := discover(ctx, s.client, s.cfg.Issuer)
	if err != nil {
		if s.ctx.Err() == nil {
			s.cfg.Logger.Warn("identity provider: discovery failed; tokens of its key set are refused until it succeeds (HS256 tokens are unaffected)",
				"issuer", s.cfg.Issuer, "error", err.Error())
		}
		return false
	}
	if err := s.load(u); err != nil {
		s.cfg.Logger.Error("identity provider: discovery named an unusable key set URL", "issuer", s.cfg.Issuer, "error", err.Error())
		return false
	}
	return true
}

func (s *Set) retryDiscovery() {
	defer s.wg.Done()
	wait := s.cfg.DiscoveryRetry
	for {
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if s.discover() {
			return
		}
		wait = min(2*wait, maxDiscoveryRetry)
	}
}

// load starts keyfunc's storage for u: one fetch now (bounded by Timeout;
// a failure is logged, not returned), then the refresh goroutine.
func (s *Set) load(u string) error {
	kf, err := keyfunc.NewDefaultOverrideCtx(s.ctx, []string{u}, keyfunc.Override{
		Client:      s.client,
		HTTPTimeout: s.cfg.Timeout,
		// RateLimitWaitMax bounds both the wait for the unknown-kid
		// limiter and the fetch that follows, as one context: a request
		// whose turn is further away fails at once instead of queueing
		// (rate.Limiter.Wait refuses a wait past its context's deadline).
		RateLimitWaitMax:  s.cfg.Timeout,
		RefreshInterval:   s.cfg.Refresh,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(s.cfg.UnknownKIDEvery), 1),
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				if s.ctx.Err() != nil {
					return
				}
				s.cfg.Logger.Warn("identity provider: fetching the key set failed; the keys already held stay in use",
					"url", u, "error", err.Error())
			}
		},
	})
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	st := &storage{url: u, Storage: kf.Storage()}
	s.store.Store(st)
	if n := s.count(st); n > 0 {
		s.cfg.Logger.Info("identity provider: key set loaded", "url", u, "keys", n)
	} else {
		s.cfg.Logger.Warn("identity provider: no key loaded; its tokens are refused until a fetch succeeds (HS256 tokens are unaffected)", "url", u)
	}
	return nil
}

func (s *Set) count(st *storage) int {
	all, err := st.KeyReadAll(s.ctx)
	if err != nil {
		return 0
	}
	return len(all)
}

// Loaded reports whether the set holds at least one key.
func (s *Set) Loaded() bool {
	st := s.store.Load()
	return st != nil && s.count(st) > 0
}

// Key implements auth.KeySet: the key of the set whose kid is kid, when
// its JWK parameters allow verifying alg — its "alg", if given, equal to
// alg (RFC 7517 §4.4); its "use", if given, "sig" (§4.2); its "key_ops",
// if given, including "verify" (§4.3). An unknown kid fetches the set
// again (rate-limited, within ctx and Timeout) before failing with
// auth.ErrUnknownKey. The key's type is checked by the caller.
func (s *Set) Key(ctx context.Context, kid, alg string) (crypto.PublicKey, error) {
	st := s.store.Load()
	if st == nil {
		return nil, auth.ErrKeySetNotLoaded
	}
	jwk, err := st.KeyRead(ctx, kid)
	if err != nil {
		if s.count(st) == 0 {
			return nil, auth.ErrKeySetNotLoaded
		}
		return nil, auth.ErrUnknownKey
	}
	m := jwk.Marshal()
	switch {
	case m.ALG != "" && string(m.ALG) != alg,
		m.USE != "" && m.USE != jwkset.UseSig,
		len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify):
		return nil, auth.ErrKeyMismatch
	}
	return jwk.Key(), nil
}

// Close stops the scheduled fetches and discovery retries. Keys already
// held still answer Key.
func (s *Set) Close() {
	s.cancel()
	s.wg.Wait()
}
