// Package auth verifies the callers of the API: HS256 JWTs with pinned
// algorithm, issuer and audience, and single-use stream tickets for
// browsers' EventSource, which cannot send an Authorization header.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"
)

// TicketTTL is how long a stream ticket can be redeemed.
const TicketTTL = 60 * time.Second

// Spender records a ticket's nonce as used, failing on a second use.
type Spender interface {
	SpendTicket(ctx context.Context, nonce string, expires time.Time) error
}

// Config configures an Authenticator.
type Config struct {
	Secret   []byte
	Issuer   string // required in tokens when set
	Audience string // required in tokens when set
	Now      func() time.Time
	Spender  Spender
}

// Authenticator verifies tokens and tickets.
type Authenticator struct {
	cfg       Config
	ticketKey []byte
	parser    *jwt.Parser
	verified  *verified
}

// leeway is the clock skew allowed on exp and nbf.
const leeway = 5 * time.Second

// New returns an Authenticator.
func New(cfg Config) *Authenticator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithLeeway(leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	m := hmac.New(sha256.New, cfg.Secret)
	m.Write([]byte("clinicpulse stream ticket v1"))
	return &Authenticator{cfg: cfg, ticketKey: m.Sum(nil), parser: jwt.NewParser(opts...), verified: newVerified(10000)}
}

// Claims are the token's claims.
type Claims struct {
	TenantID string `json:"tenant_id"`
	Role     string `json:"role"`
	jwt.RegisteredClaims
}

var tenantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidTenantID reports whether s can name a tenant.
func ValidTenantID(s string) bool { return tenantRE.MatchString(s) }

func unauthorized(msg string) error { return models.Errorf(models.EUNAUTHORIZED, "%s", msg) }

// Verify checks a JWT and returns its actor. A platform actor has no tenant
// yet: the request names it.
func (a *Authenticator) Verify(token string) (models.Actor, error) {
	if actor, ok := a.verified.get(token, a.cfg.Now()); ok {
		return actor, nil
	}
	var c Claims
	if _, err := a.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.cfg.Secret, nil }); err != nil {
		return models.Actor{}, unauthorized("invalid token: " + tokenProblem(err))
	}
	role := models.Role(c.Role)
	switch {
	case c.Subject == "":
		return models.Actor{}, unauthorized("invalid token: missing sub")
	case !role.Valid():
		return models.Actor{}, unauthorized("invalid token: missing or unknown role")
	case role != models.RolePlatform && !ValidTenantID(c.TenantID):
		return models.Actor{}, unauthorized("invalid token: missing or malformed tenant_id")
	}
	actor := models.Actor{Subject: c.Subject, TenantID: c.TenantID, Role: role}
	a.verified.put(token, actor, c.ExpiresAt.Add(leeway))
	return actor, nil
}

// tokenProblem names what was wrong without echoing the token.
func tokenProblem(err error) string {
	for _, e := range []struct {
		err error
		msg string
	}{
		{jwt.ErrTokenExpired, "expired"},
		{jwt.ErrTokenNotValidYet, "not valid yet"},
		{jwt.ErrTokenRequiredClaimMissing, "a required claim is missing"},
		{jwt.ErrTokenInvalidIssuer, "wrong issuer"},
		{jwt.ErrTokenInvalidAudience, "wrong audience"},
		{jwt.ErrTokenSignatureInvalid, "bad signature"},
		{jwt.ErrTokenUnverifiable, "algorithm not allowed"},
		{jwt.ErrTokenMalformed, "malformed"},
	} {
		if errors.Is(err, e.err) {
			return e.msg
		}
	}
	return "rejected"
}

// Sign issues an HS256 token for an actor, for DEV=1 demo tokens and tests.
func (a *Authenticator) Sign(actor models.Actor, ttl time.Duration) (string, error) {
	now := a.cfg.Now()
	c := Claims{TenantID: actor.TenantID, Role: string(actor.Role), RegisteredClaims: jwt.RegisteredClaims{
		Subject: actor.Subject, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		Issuer: a.cfg.Issuer,
	}}
	if a.cfg.Audience != "" {
		c.Audience = jwt.ClaimStrings{a.cfg.Audience}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.cfg.Secret)
}

type ticket struct {
	Tenant  string `json:"t"`
	Subject string `json:"s"`
	Role    string `json:"r"`
	Expires int64  `json:"e"`
	Nonce   string `json:"n"`
}

// MintTicket returns a single-use stream ticket bound to the actor, valid
// for TicketTTL.
func (a *Authenticator) MintTicket(actor models.Actor) (string, time.Time) {
	exp := a.cfg.Now().Add(TicketTTL).Truncate(time.Second)
	payload, _ := json.Marshal(ticket{actor.TenantID, actor.Subject, string(actor.Role), exp.Unix(), models.NewID("n")})
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(a.mac(p)), exp
}

func (a *Authenticator) mac(p string) []byte {
	m := hmac.New(sha256.New, a.ticketKey)
	m.Write([]byte(p))
	return m.Sum(nil)
}

// RedeemTicket verifies a ticket, spends it and returns its actor.
func (a *Authenticator) RedeemTicket(ctx context.Context, t string) (models.Actor, error) {
	p, sig, ok := strings.Cut(t, ".")
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(mac, a.mac(p)) {
		return models.Actor{}, unauthorized("invalid stream ticket")
	}
	raw, err := base64.RawURLEncoding.DecodeString(p)
	var tk ticket
	if err != nil || json.Unmarshal(raw, &tk) != nil {
		return models.Actor{}, unauthorized("invalid stream ticket")
	}
	exp := time.Unix(tk.Expires, 0)
	if !a.cfg.Now().Before(exp) {
		return models.Actor{}, unauthorized("the stream ticket expired; mint a new one")
	}
	if a.cfg.Spender != nil {
		if err := a.cfg.Spender.SpendTicket(ctx, tk.Nonce, exp); err != nil {
			return models.Actor{}, err
		}
	}
	return models.Actor{Subject: tk.Subject, TenantID: tk.Tenant, Role: models.Role(tk.Role)}, nil
}

// Middleware authenticates a request by its bearer token; with
// allowTicket, a ?ticket= query parameter is accepted instead (the stream).
// It puts the actor in the request's context. A platform actor names its
// tenant with ?tenant_id= or X-Tenant-ID.
func (a *Authenticator) Middleware(allowTicket bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			var actor models.Actor
			var err error
			h := r.Header.Get("Authorization")
			switch {
			case len(h) > 7 && strings.EqualFold(h[:7], "bearer "):
				actor, err = a.Verify(strings.TrimSpace(h[7:]))
			case allowTicket && c.QueryParam("ticket") != "":
				actor, err = a.RedeemTicket(r.Context(), c.QueryParam("ticket"))
			default:
				err = unauthorized("missing bearer token")
			}
			if err != nil {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="clinicpulse"`)
				return err
			}
			if actor.Role == models.RolePlatform {
				t := c.QueryParam("tenant_id")
				if t == "" {
					t = r.Header.Get("X-Tenant-ID")
				}
				if t == "" {
					t = actor.TenantID
				}
				if !ValidTenantID(t) {
					return models.Invalid("tenant_id", "a platform token names its tenant with ?tenant_id= or X-Tenant-ID")
				}
				actor.TenantID = t
			}
			c.SetRequest(r.WithContext(models.NewContextWithActor(r.Context(), actor)))
			return next(c)
		}
	}
}
