package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func baseEnv() map[string]string {
	return map[string]string{"JWT_SECRET": testSecret, "DATABASE_URL": "sqlite:unused"}
}

func TestLoadConfigDefaults(t *testing.T) {
	sc, err := loadConfig(envOf(baseEnv()), 20000)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Addr != ":8080" || sc.ReadTimeout != 30*time.Second || sc.WriteTimeout != 90*time.Second || sc.MaxConnections != 20000-fdReserve ||
		sc.App.Heartbeat != 15*time.Second || sc.App.StreamMaxDuration != 0 || sc.App.EventRetention != 168*time.Hour ||
		sc.TLS != nil || sc.App.Dev || sc.App.Logger == nil {
		t.Fatalf("defaults: %+v", sc)
	}
	// An unlimited open-file limit does not make an unlimited default.
	if sc, err := loadConfig(envOf(baseEnv()), math.MaxUint64); err != nil || sc.MaxConnections != maxDerivedConnections {
		t.Fatalf("unlimited: %d %v", sc.MaxConnections, err)
	}
	env := baseEnv()
	env["MAX_CONNECTIONS"] = "500"
	env["REQUEST_READ_TIMEOUT"] = "1.5s"
	env["HEARTBEAT"] = "5s"
	if sc, err := loadConfig(envOf(env), 1024); err != nil || sc.MaxConnections != 500 || sc.ReadTimeout != 1500*time.Millisecond || sc.App.Heartbeat != 5*time.Second {
		t.Fatalf("set: %+v %v", sc, err)
	}
}

// TestLoadConfigErrors: each invalid variable is an error naming it; all
// of them are reported at once; the secret is never quoted.
func TestLoadConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		noFile      uint64
		want        string
	}{
		{"HEARTBEAT", "15", 0, `HEARTBEAT="15": not a duration`},
		{"HEARTBEAT", "0s", 0, `HEARTBEAT="0s": must be at least 1ms`},
		{"STREAM_MAX_DURATION", "-1s", 0, `STREAM_MAX_DURATION="-1s": must not be negative`},
		{"EVENT_RETENTION", "a week", 0, `EVENT_RETENTION="a week": not a duration`},
		{"REQUEST_READ_TIMEOUT", "0", 0, `REQUEST_READ_TIMEOUT="0": must be at least 1ms`},
		{"REQUEST_READ_TIMEOUT", "30", 0, `REQUEST_READ_TIMEOUT="30": not a duration`},
		{"REQUEST_WRITE_TIMEOUT", "30s", 0, `REQUEST_WRITE_TIMEOUT="30s": must be at least 1m0s`},
		{"MAX_CONNECTIONS", "many", 0, `MAX_CONNECTIONS="many": not an integer`},
		{"MAX_CONNECTIONS", "0", 0, `MAX_CONNECTIONS="0": must be at least 1`},
		{"MAX_CONNECTIONS", "1000", 1024, `MAX_CONNECTIONS="1000": must be at most the open-file limit (1024) minus 128`},
		{"MAX_CONNECTIONS", "", 100, `MAX_CONNECTIONS: the open-file limit (100) leaves fewer than 16 connections`},
		{"DEV", "yes", 0, `DEV="yes": must be 1 or 0`},
		{"EMBED_ORIGINS", "javascript:alert(1)", 0, `EMBED_ORIGINS="javascript:alert(1)"`},
		{"WRITE_VISIBILITY_TIMEOUT", "2", 0, `WRITE_VISIBILITY_TIMEOUT="2": not a duration`},
		{"STREAMS_PER_PUBLIC", "0", 0, `STREAMS_PER_PUBLIC="0": must be at least 1`},
		{"STREAMS_PER_STAFF", "lots", 0, `STREAMS_PER_STAFF="lots": not an integer`},
		{"STREAMS_PER_TENANT", "99999999", 0, `STREAMS_PER_TENANT="99999999": must be at most`},
		{"STREAM_OPENS_PER_SECOND", "0", 0, `STREAM_OPENS_PER_SECOND="0": must be at least 1`},
		{"LONGPOLLS_PER_DISPLAY", "-1", 0, `LONGPOLLS_PER_DISPLAY="-1": must be at least 1`},
		{"LONGPOLLS_PER_TENANT", "x", 0, `LONGPOLLS_PER_TENANT="x": not an integer`},
		{"MAX_DELTA_EVENTS", "0", 0, `MAX_DELTA_EVENTS="0": must be at least 1`},
		{"BOOKING_PAST_GRACE", "-5m", 0, `BOOKING_PAST_GRACE="-5m": must not be negative`},
		{"DEFAULT_CONSULT_MINUTES", "0", 0, `DEFAULT_CONSULT_MINUTES="0": must be at least 1`},
		{"CLINIC_TIMEZONE", "Mars/Olympus", 0, `CLINIC_TIMEZONE="Mars/Olympus": not an IANA time zone`},
		{"JWT_SECRET", "short-secret-value", 0, "JWT_SECRET must be at least 32 bytes"},
		{"TLS_CERT_FILE", "/nonexistent.pem", 0, "TLS_CERT_FILE and TLS_KEY_FILE must be set together"},
	} {
		env := baseEnv()
		env[tc.name] = tc.value
		noFile := tc.noFile
		if noFile == 0 {
			noFile = 20000
		}
		_, err := loadConfig(envOf(env), noFile)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: error %v, want %q", tc.name, tc.value, err, tc.want)
		}
		if err != nil && tc.name == "JWT_SECRET" && strings.Contains(err.Error(), tc.value) {
			t.Errorf("the error quotes the secret: %v", err)
		}
	}
	env := baseEnv()
	env["HEARTBEAT"], env["MAX_CONNECTIONS"] = "x", "y"
	_, err := loadConfig(envOf(env), 20000)
	if err == nil || !strings.Contains(err.Error(), "HEARTBEAT") || !strings.Contains(err.Error(), "MAX_CONNECTIONS") {
		t.Errorf("two invalid variables: %v", err)
	}
}

// FuzzLoadConfig: no value of a variable panics or is accepted out of
// range.
func FuzzLoadConfig(f *testing.F) {
	for _, s := range []string{"15s", "1", "-1", "0", "1e9", "9223372036854775807", "2562047h", " 5s ", "\x00", "١٢"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, name := range []string{"HEARTBEAT", "REQUEST_READ_TIMEOUT", "REQUEST_WRITE_TIMEOUT", "STREAM_MAX_DURATION", "MAX_CONNECTIONS", "DEV"} {
			env := baseEnv()
			env[name] = v
			sc, err := loadConfig(envOf(env), 4096)
			if err != nil {
				if !strings.Contains(err.Error(), name) {
					t.Fatalf("%s=%q: the error does not name it: %v", name, v, err)
				}
				continue
			}
			if sc.MaxConnections < 1 || sc.MaxConnections > 4096-fdReserve || sc.ReadTimeout <= 0 || sc.WriteTimeout < time.Minute || sc.App.Heartbeat <= 0 || sc.App.StreamMaxDuration < 0 {
				t.Fatalf("%s=%q accepted out of range: %+v", name, v, sc)
			}
		}
	})
}

// TestLoadConfigLimits: the limit variables reach the fields the layers read.
func TestLoadConfigLimits(t *testing.T) {
	env := baseEnv()
	for k, v := range map[string]string{
		"EMBED_ORIGINS": "https://portal.example", "WRITE_VISIBILITY_TIMEOUT": "off",
		"STREAMS_PER_STAFF": "9", "STREAMS_PER_PUBLIC": "2", "STREAMS_PER_TENANT": "50",
		"STREAM_OPENS_PER_SECOND": "3", "STREAM_OPENS_BURST": "7",
		"LONGPOLLS_PER_STAFF": "5", "LONGPOLLS_PER_PATIENT": "1", "LONGPOLLS_PER_DISPLAY": "2",
		"LONGPOLLS_PER_TENANT": "40", "MAX_DELTA_EVENTS": "123",
	} {
		env[k] = v
	}
	sc, err := loadConfig(envOf(env), 20000)
	if err != nil {
		t.Fatal(err)
	}
	c := sc.App
	if len(c.EmbedOrigins) != 1 || c.EmbedOrigins[0] != "https://portal.example" || c.WriteVisibilityTimeout >= 0 {
		t.Errorf("embed origins %v, write visibility %v", c.EmbedOrigins, c.WriteVisibilityTimeout)
	}
	if s := c.Streams; s.PerIdentityStaff != 9 || s.PerIdentityPublic != 2 || s.PerTenant != 50 || s.OpenRate != 3 || s.OpenBurst != 7 {
		t.Errorf("streams %+v", s)
	}
	if p := c.Polling; p.LongPollsPerStaff != 5 || p.LongPollsPerPatient != 1 || p.LongPollsPerDisplay != 2 || p.LongPollsPerTenant != 40 {
		t.Errorf("long-polls %+v", p)
	}
	if c.MaxDeltaEvents != 123 {
		t.Errorf("max delta events %d", c.MaxDeltaEvents)
	}
}

// TestLoadConfigIdentityProvider: JWT_JWKS_URL, discovery from an http(s)
// JWT_ISSUER, the claim paths and the refresh period, each invalid value
// reported by name.
func TestLoadConfigIdentityProvider(t *testing.T) {
	idp := func(kv ...string) map[string]string {
		env := baseEnv()
		env["JWT_ISSUER"], env["JWT_AUDIENCE"] = "https://tenant.example.com/", "clinicpulse-api"
		for i := 0; i+1 < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	for _, tc := range []struct {
		name                 string
		env                  map[string]string
		url, issuer          string
		tenantClaim, refresh string
	}{
		{"discovery from an https issuer", idp(), "", "https://tenant.example.com/", "", "15m0s"},
		{"an explicit key set", idp("JWT_JWKS_URL", "https://tenant.example.com/.well-known/jwks.json", "JWT_JWKS_REFRESH", "1h"), "https://tenant.example.com/.well-known/jwks.json", "", "", "1h0m0s"},
		{"off", idp("JWT_JWKS_URL", "off"), "", "", "", "15m0s"},
		{"a plain issuer name", map[string]string{"JWT_SECRET": testSecret, "JWT_ISSUER": "clinicpulse"}, "", "", "", "15m0s"},
		{"loopback http", idp("JWT_JWKS_URL", "http://127.0.0.1:8081/certs"), "http://127.0.0.1:8081/certs", "", "", "15m0s"},
		{"mapped claims", idp("JWT_TENANT_CLAIM", "https://clinic.example/tenant_id", "JWT_ROLE_CLAIM", "app_metadata.role"), "", "https://tenant.example.com/", "https://clinic.example/tenant_id", "15m0s"},
	} {
		sc, err := loadConfig(envOf(tc.env), 20000)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		c := sc.App
		if c.JWKS.URL != tc.url || c.JWKS.Issuer != tc.issuer || c.JWTTenantClaim != tc.tenantClaim || c.JWKS.Refresh.String() != tc.refresh {
			t.Errorf("%s: %+v tenant claim %q", tc.name, c.JWKS, c.JWTTenantClaim)
		}
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{idp("JWT_JWKS_URL", "http://idp.internal/certs"), `JWT_JWKS_URL="http://idp.internal/certs": must be https:// (http:// only to a loopback host), or off`},
		{idp("JWT_JWKS_URL", "jwks.json"), `JWT_JWKS_URL="jwks.json": must be an https:// URL`},
		{idp("JWT_ISSUER", "http://idp.internal"), `JWT_ISSUER="http://idp.internal": OpenID Connect discovery`},
		{idp("JWT_AUDIENCE", ""), "JWT_AUDIENCE is required with an identity provider's key set"},
		{map[string]string{"JWT_SECRET": testSecret, "JWT_JWKS_URL": "https://idp.example/jwks", "JWT_AUDIENCE": "a"}, "JWT_ISSUER is required"},
		{idp("JWT_TENANT_CLAIM", "a b"), `JWT_TENANT_CLAIM="a b": a claim name or dotted path: contains a space`},
		{idp("JWT_ROLE_CLAIM", strings.Repeat("r", 300)), `JWT_ROLE_CLAIM=`},
		{idp("JWT_SUBJECT_CLAIM", "a\x00"), `JWT_SUBJECT_CLAIM=`},
		{map[string]string{"JWT_SECRET": testSecret, "JWT_ROLE_CLAIM": "app_metadata.role"}, `JWT_ROLE_CLAIM="app_metadata.role": applies to an identity provider's key set`},
		{idp("JWT_JWKS_URL", "off", "JWT_TENANT_CLAIM", "org"), `JWT_TENANT_CLAIM="org": applies to an identity provider's key set`},
		{idp("JWT_JWKS_REFRESH", "10s"), `JWT_JWKS_REFRESH="10s": must be at least 1m0s`},
		{idp("JWT_JWKS_REFRESH", "48h"), `JWT_JWKS_REFRESH="48h": must be at most 24h`},
		{map[string]string{"JWT_SECRET": testSecret, "JWT_JWKS_REFRESH": "1h"}, `JWT_JWKS_REFRESH="1h": applies to an identity provider's key set`},
	} {
		if _, err := loadConfig(envOf(tc.env), 20000); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.env, err, tc.want)
		}
	}
}

// TestLoadConfigWebhooks: the WEBHOOK_* variables, their defaults and
// their refusals.
func TestLoadConfigWebhooks(t *testing.T) {
	sc, err := loadConfig(envOf(baseEnv()), 20000)
	if err != nil {
		t.Fatal(err)
	}
	w := sc.App.Webhooks
	if w.Workers != 16 || w.MaxFailures != 50 || w.Timeout != 10*time.Second || w.BackoffMin != time.Second || w.BackoffMax != 10*time.Minute ||
		w.Lease != 30*time.Second || len(w.Policy.AllowHTTPHosts) != 0 {
		t.Fatalf("defaults: %+v", w)
	}
	env := baseEnv()
	env["WEBHOOK_ALLOW_HTTP_HOSTS"] = " 127.0.0.1, Receiver.Internal. ,[::1]"
	env["WEBHOOK_WORKERS"] = "4"
	env["WEBHOOK_MAX_FAILURES"] = "3"
	sc, err = loadConfig(envOf(env), 20000)
	if err != nil {
		t.Fatal(err)
	}
	w = sc.App.Webhooks
	if !w.Policy.Allowed("127.0.0.1") || !w.Policy.Allowed("receiver.internal") || !w.Policy.Allowed("::1") || w.Policy.Allowed("example.com") || w.Workers != 4 || w.MaxFailures != 3 {
		t.Fatalf("set: %+v", w)
	}
	for name, value := range map[string]string{
		"WEBHOOK_ALLOW_HTTP_HOSTS": "http://x", "WEBHOOK_WORKERS": "0", "WEBHOOK_MAX_FAILURES": "x",
		"WEBHOOK_TIMEOUT": "1", "WEBHOOK_LEASE": "5s", "WEBHOOK_BACKOFF_MAX": "1ms",
	} {
		env := baseEnv()
		env[name] = value
		if _, err := loadConfig(envOf(env), 20000); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: %v", name, value, err)
		}
	}
}
