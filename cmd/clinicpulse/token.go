package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/clinicpulse/clinicpulse/auth"
	"github.com/clinicpulse/clinicpulse/models"
)

// Lifetimes of a token made by `clinicpulse token`.
const (
	defaultTokenTTL = 12 * time.Hour
	minTokenTTL     = time.Minute
	// maxTokenTTL bounds a token that cannot be revoked but by changing
	// JWT_SECRET (which revokes every token): a display's token is
	// replaced at least monthly (see the README's fragment swap).
	maxTokenTTL = 30 * 24 * time.Hour
)

const tokenUsage = `usage: clinicpulse token --tenant T --role R --sub S [--ttl 12h]

Prints a token (a JWT signed with HS256 and JWT_SECRET) on standard output,
for an integration or a waiting-room display; its expiry goes to standard
error.

  --tenant  the tenant: 1 to 64 of A-Z a-z 0-9 _ . - starting with a letter
            or digit; may be left out for role platform
  --role    admin, coordinator, doctor, patient, display or platform
  --sub     who calls: 1 to 255 characters without control characters (a
            patient's token: the patient's id; a doctor's: the doctor's id)
  --ttl     lifetime, from 1m to 720h (30 days); default 12h

Environment: JWT_SECRET, the server's (at least 32 bytes; with DEV=1 and no
JWT_SECRET, the development secret in data/dev-jwt-secret); JWT_ISSUER and
JWT_AUDIENCE, written into the token when set, as the server requires them.

Exit status: 0 printed; 2 an invalid or missing flag; 1 no usable secret.
`

// Exit statuses of `clinicpulse token`.
const (
	exitOK     = 0
	exitConfig = 1
	exitUsage  = 2
)

// runToken runs `clinicpulse token args` with the environment getenv and
// returns its exit status. The token never reaches standard error.
func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "clinicpulse token: "+format+"\n", a...)
		return code
	}
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, tokenUsage) }
	var tenant, role, sub, ttl string
	once := func(name string, dst *string) {
		set := false
		fs.Func(name, "", func(v string) error {
			if set {
				return errors.New("given twice")
			}
			set, *dst = true, v
			return nil
		})
	}
	once("tenant", &tenant)
	once("role", &role)
	once("sub", &sub)
	once("ttl", &ttl)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage // the flag package printed the error and the usage
	}
	if fs.NArg() > 0 {
		return fail(exitUsage, "unexpected argument %q (flags only; see --help)", short(fs.Arg(0)))
	}
	actor, lifetime, err := tokenRequest(tenant, role, sub, ttl)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	secret, err := tokenSecret(getenv)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	now := time.Now()
	a := auth.New(auth.Config{Secret: secret, Issuer: getenv("JWT_ISSUER"), Audience: getenv("JWT_AUDIENCE"), Now: func() time.Time { return now }})
	tok, err := a.Sign(actor, lifetime)
	if err != nil {
		return fail(exitConfig, "signing: %v", err)
	}
	fmt.Fprintln(stdout, tok)
	fmt.Fprintf(stderr, "clinicpulse token: expires %s (in %s)\n", now.Add(lifetime).UTC().Format(time.RFC3339), lifetime)
	return exitOK
}

// tokenRequest checks the flags as the server checks a token's claims.
func tokenRequest(tenant, role, sub, ttl string) (models.Actor, time.Duration, error) {
	r := models.Role(role)
	switch {
	case role == "":
		return models.Actor{}, 0, errors.New("--role is required: admin, coordinator, doctor, patient, display or platform")
	case !r.Valid():
		return models.Actor{}, 0, fmt.Errorf("--role %q: want admin, coordinator, doctor, patient, display or platform", short(role))
	case tenant == "" && r != models.RolePlatform:
		return models.Actor{}, 0, fmt.Errorf("--tenant is required for role %s", r)
	case tenant != "" && !auth.ValidTenantID(tenant):
		return models.Actor{}, 0, fmt.Errorf("--tenant %q: want 1 to 64 of A-Z a-z 0-9 _ . - starting with a letter or digit", short(tenant))
	case sub == "":
		return models.Actor{}, 0, errors.New("--sub is required: who calls (a patient's id for role patient, a doctor's id for role doctor)")
	case !models.ValidLine(sub, auth.MaxSubject):
		return models.Actor{}, 0, fmt.Errorf("--sub: at most %d characters, without control characters", auth.MaxSubject)
	}
	lifetime := defaultTokenTTL
	if ttl != "" {
		d, err := time.ParseDuration(strings.TrimSpace(ttl))
		switch {
		case err != nil:
			return models.Actor{}, 0, fmt.Errorf("--ttl %q: not a duration (e.g. 90m, 12h, 720h)", short(ttl))
		case d < minTokenTTL || d > maxTokenTTL:
			return models.Actor{}, 0, fmt.Errorf("--ttl %s: must be from %s to %s (30 days)", d, minTokenTTL, maxTokenTTL)
		}
		lifetime = d
	}
	return models.Actor{Subject: sub, TenantID: tenant, Role: r}, lifetime, nil
}

// tokenSecret reads JWT_SECRET as the server does (see loadConfig); the
// secret never appears in an error.
func tokenSecret(getenv func(string) string) ([]byte, error) {
	secret := getenv("JWT_SECRET")
	if secret == "" {
		dev, err := strconv.ParseBool(strings.TrimSpace(getenv("DEV")))
		if err != nil || !dev {
			return nil, errors.New("JWT_SECRET is required: the server's secret (or DEV=1 for the development secret)")
		}
		if secret, err = devSecret(devSecretFile); err != nil {
			return nil, err
		}
	}
	if len(secret) < 32 {
		return nil, errors.New("JWT_SECRET must be at least 32 bytes, as the server requires")
	}
	return []byte(secret), nil
}
