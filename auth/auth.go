// Package auth verifies the callers of the API: JWTs with pinned
// algorithms, issuer and audience — HS256 with the server's secret, and
// RS256, ES256 or EdDSA with a key of an identity provider's key set (see
// KeySet) — and single-use stream tickets for browsers' EventSource, which
// cannot send an Authorization header.
package auth

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	jsonv1 "encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
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
	// Secret verifies HS256 tokens and keys stream tickets.
	Secret   []byte
	Issuer   string // required in tokens when set
	Audience string // required in tokens when set
	// KeySet, when not nil, also accepts RS256, ES256 and EdDSA tokens
	// signed by one of its keys.
	KeySet KeySet
	// TenantClaim, RoleClaim and SubjectClaim say where tokens verified
	// with KeySet carry the tenant, the role and the caller's ClinicPulse
	// identity (a patient's or doctor's id for those roles); the zero
	// ClaimPath reads tenant_id, role and sub. Tokens signed with Secret
	// always use tenant_id, role and sub.
	TenantClaim, RoleClaim, SubjectClaim ClaimPath
	Now                                  func() time.Time
	Spender                              Spender
}

// Authenticator verifies tokens and tickets.
type Authenticator struct {
	cfg       Config
	ticketKey []byte
	parser    *jwt.Parser
	verified  *verified
	mapping   *claimMapping // nil when no claim is mapped
}

// leeway is the clock skew allowed on exp and nbf.
const leeway = 5 * time.Second

// New returns an Authenticator.
func New(cfg Config) *Authenticator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	methods := []string{jwt.SigningMethodHS256.Alg()}
	if cfg.KeySet != nil {
		methods = append(methods, algRS256, algES256, algEdDSA)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
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
	a := &Authenticator{cfg: cfg, ticketKey: m.Sum(nil), parser: jwt.NewParser(opts...), verified: newVerified(10000)}
	if cfg.KeySet != nil && (!cfg.TenantClaim.IsZero() || !cfg.RoleClaim.IsZero() || !cfg.SubjectClaim.IsZero()) {
		a.mapping = &claimMapping{tenant: cfg.TenantClaim, role: cfg.RoleClaim, subject: cfg.SubjectClaim}
	}
	return a
}

// Claims are the token's claims.
type Claims struct {
	TenantID string `json:"tenant_id"`
	Role     string `json:"role"`
	jwt.RegisteredClaims

	mapping *claimMapping // set before decoding: the claims to read besides
	mapped  mappedClaims  // what mapping found
}

// Reasons a token is refused beyond golang-jwt's own checks; tokenProblem
// names them in the 401.
var (
	errCritical    = errors.New(`the header names critical extensions ("crit"), none of which this server understands`)
	errHeaderJSON  = errors.New("the header is not strict JSON (a repeated name, or text that is not UTF-8)")
	errClaimsJSON  = errors.New("the claims are not strict JSON (a repeated name, or text that is not UTF-8)")
	errNumericDate = errors.New("exp, nbf and iat must be JSON numbers of seconds (RFC 7519 NumericDate)")
)

// strictDates decodes exp, nbf and iat only from a JSON number. golang-jwt's
// NumericDate.UnmarshalJSON decodes through a json.Number, which encoding/json
// also fills from a string holding a number, so "exp":"1800000000" would pass.
var strictDates = json.WithUnmarshalers(json.UnmarshalFunc(func(b []byte, d **jwt.NumericDate) error {
	if jsontext.Value(b).Kind() != '0' {
		return errNumericDate
	}
	*d = new(jwt.NumericDate)
	return (*d).UnmarshalJSON(b)
}))

// UnmarshalJSON decodes the claims set strictly (RFC 7519 §4, RFC 8259 §8.1):
// a claim name given twice, text that is not UTF-8 or a lone surrogate escape
// is an error rather than last-wins or U+FFFD; names match case-sensitively
// ("SUB" is not "sub"; unknown claims are ignored); exp, nbf and iat must be
// JSON numbers (a JSON null or string is an error). golang-jwt's parser calls
// it through encoding/json with the raw claims segment.
func (c *Claims) UnmarshalJSON(b []byte) error {
	type plain Claims // the same fields, without this method
	err := json.Unmarshal(b, (*plain)(c), strictDates)
	if _, ok := errors.AsType[*jsontext.SyntacticError](err); ok {
		return errClaimsJSON
	}
	if err == nil && c.mapping != nil {
		c.mapped = c.mapping.resolve(b)
	}
	return err
}

var tenantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidTenantID reports whether s can name a tenant.
func ValidTenantID(s string) bool { return tenantRE.MatchString(s) }

func unauthorized(msg string) error { return models.Errorf(models.EUNAUTHORIZED, "%s", msg) }

// Verify is VerifyContext without a deadline: a token of an unknown kid
// may wait for the key set's refresh.
func (a *Authenticator) Verify(token string) (models.Actor, error) {
	return a.VerifyContext(context.Background(), token)
}

// VerifyContext checks a JWT and returns its actor. A platform actor has no
// tenant yet: the request names it. ctx bounds the key set's refresh when
// the token names a kid the set does not hold. Errors are EUNAUTHORIZED with
// a detail naming the reason, never the token.
func (a *Authenticator) VerifyContext(ctx context.Context, token string) (models.Actor, error) {
	// Bounded before it is parsed or remembered (the verified-token cache
	// keeps MaxToken × its size at most): identity providers' tokens with
	// many groups stay under 8 KiB.
	if len(token) > MaxToken {
		return models.Actor{}, unauthorized("invalid token: longer than " + strconv.Itoa(MaxToken) + " bytes")
	}
	if e, ok := a.verified.get(token, a.cfg.Now()); ok {
		if e.key == nil || a.stillInSet(ctx, e) {
			return e.actor, nil
		}
		a.verified.drop(token)
	}
	c := Claims{mapping: a.mapping}
	var used usedKey
	if _, err := a.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) { return a.key(ctx, t, &used) }); err != nil {
		return models.Actor{}, unauthorized("invalid token: " + tokenProblem(err))
	}
	actor, err := a.actor(&c, used.key != nil)
	if err != nil {
		return models.Actor{}, err
	}
	a.verified.put(token, verifiedEntry{actor: actor, until: c.ExpiresAt.Add(leeway), kid: used.kid, alg: used.alg, key: used.key})
	return actor, nil
}

// actor reads the caller from verified claims. A key set's token may
// carry its tenant, role and subject elsewhere (see ClaimPath, when
// fromKeySet); the values found are held to the same rules as the native
// claims, and a refusal names the claim it read.
func (a *Authenticator) actor(c *Claims, fromKeySet bool) (models.Actor, error) {
	tenant, role, subject := c.TenantID, models.Role(c.Role), c.Subject
	tenantName, roleName, subjectName := "tenant_id", "role", "sub"
	if fromKeySet && a.mapping != nil {
		for _, m := range []struct {
			path  ClaimPath
			what  string
			value string
			err   error
			name  *string
			dst   *string
		}{
			{a.cfg.TenantClaim, "tenant", c.mapped.tenant, c.mapped.tenantErr, &tenantName, &tenant},
			{a.cfg.RoleClaim, "role", c.mapped.role, c.mapped.roleErr, &roleName, (*string)(&role)},
			{a.cfg.SubjectClaim, "sub", c.mapped.subject, c.mapped.subjectErr, &subjectName, &subject},
		} {
			if m.path.IsZero() {
				continue
			}
			*m.name = fmt.Sprintf("%s (claim %q)", m.what, m.path)
			if errors.Is(m.err, errClaimNotString) {
				return models.Actor{}, unauthorized("invalid token: the " + *m.name + " is not a JSON string")
			}
			*m.dst = m.value // "" when missing: a platform token may name no tenant
		}
	}
	switch {
	case subject == "":
		return models.Actor{}, unauthorized("invalid token: missing " + subjectName)
	case !models.ValidLine(subject, MaxSubject):
		return models.Actor{}, unauthorized("invalid token: " + subjectName + " must be at most 255 characters without control, format or invisible characters")
	case !role.Valid():
		return models.Actor{}, unauthorized("invalid token: missing or unknown " + roleName)
	case role != models.RolePlatform && !ValidTenantID(tenant):
		return models.Actor{}, unauthorized("invalid token: missing or malformed " + tenantName)
	}
	return models.Actor{Subject: subject, TenantID: tenant, Role: role}, nil
}

// usedKey is the key set's key that verified a token (key nil for HS256).
type usedKey struct {
	kid, alg string
	key      crypto.PublicKey
}

// stillInSet reports whether the key that verified a remembered token is
// still the key set's key for its kid: a key removed from the set stops
// verifying the tokens it signed from the refresh that removes it.
func (a *Authenticator) stillInSet(ctx context.Context, e verifiedEntry) bool {
	if a.cfg.KeySet == nil {
		return false
	}
	k, err := a.cfg.KeySet.Key(ctx, e.kid, e.alg)
	return err == nil && sameKey(k, e.key)
}

// MaxSubject bounds a token's sub in characters: it is stored as the actor
// of every event and scopes the caller's idempotency keys.
const MaxSubject = 255

// MaxToken bounds a token's length in bytes (16 KiB).
const MaxToken = 16 << 10

// key is the parser's Keyfunc: it runs once the token is decoded, before the
// signature is checked, and refuses what golang-jwt does not check itself.
//
// RFC 7515 §4.1.11: a recipient that does not understand every extension
// listed in "crit" must reject the JWS, and an empty list is not allowed.
// This server understands none, so any "crit" is refused. The header is
// also held to strict JSON, as the claims are (see Claims.UnmarshalJSON):
// encoding/json keeps the last of two "alg" members where another parser may
// keep the first.
//
// HS256 is verified with the secret alone, whatever the header's kid. The
// public-key algorithms (only admitted by the parser with a KeySet) need a
// kid naming a key of the set whose type fits the alg (keyFits); the key is
// recorded in used.
func (a *Authenticator) key(ctx context.Context, t *jwt.Token, used *usedKey) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errCritical
	}
	seg, _, _ := strings.Cut(t.Raw, ".")
	if h, err := a.parser.DecodeSegment(seg); err != nil || !jsontext.Value(h).IsValid() {
		return nil, errHeaderJSON
	}
	alg := t.Method.Alg()
	if alg == jwt.SigningMethodHS256.Alg() {
		return a.cfg.Secret, nil
	}
	if a.cfg.KeySet == nil {
		return nil, jwt.ErrTokenUnverifiable // not reached: the parser admits HS256 only
	}
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return nil, errNoKID
	}
	key, err := a.cfg.KeySet.Key(ctx, kid, alg)
	if err != nil {
		return nil, err
	}
	if !keyFits(alg, key) {
		return nil, ErrKeyMismatch
	}
	*used = usedKey{kid: kid, alg: alg, key: key}
	return key, nil
}

// tokenProblem names what was wrong without echoing the token.
func tokenProblem(err error) string {
	for _, e := range []struct {
		err error
		msg string
	}{
		{errCritical, errCritical.Error()},
		{errHeaderJSON, errHeaderJSON.Error()},
		{errClaimsJSON, errClaimsJSON.Error()},
		{errNumericDate, errNumericDate.Error()},
		{errNoKID, errNoKID.Error()},
		{ErrKeySetNotLoaded, ErrKeySetNotLoaded.Error()},
		{ErrUnknownKey, ErrUnknownKey.Error()},
		{ErrKeyMismatch, ErrKeyMismatch.Error()},
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

// Sign issues an HS256 token for an actor, for DEV=1 demo tokens,
// `clinicpulse token` and tests.
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
	payload, _ := jsonv1.Marshal(ticket{actor.TenantID, actor.Subject, string(actor.Role), exp.Unix(), models.NewID("n")})
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
	if err != nil || jsonv1.Unmarshal(raw, &tk) != nil {
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
				actor, err = a.VerifyContext(r.Context(), strings.TrimSpace(h[7:]))
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
