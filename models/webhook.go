package models

import (
	"code.dny.dev/ssrf"
	"crypto/rand"
	"encoding/base64"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// EntityWebhook names webhook subscriptions in event envelopes and topics:
// creating, changing and deleting a subscription append "webhooks.created",
// "webhooks.updated" and "webhooks.deleted" events, whose data never holds
// a secret. Only staff audiences see them.
const EntityWebhook = "webhooks"

// Webhook limits and defaults (Standard Webhooks, standardwebhooks.com).
const (
	// WebhookSecretPrefix starts every signing secret ("whsec_" + base64).
	WebhookSecretPrefix = "whsec_"
	// webhookSecretBytes is the secret's random length: the specification
	// allows 24 to 64 bytes.
	webhookSecretBytes = 32
	// MaxWebhookURL bounds a subscription's URL, in bytes.
	MaxWebhookURL = 2048
	// MaxWebhooksPerTenant bounds a tenant's subscriptions.
	MaxWebhooksPerTenant = 100
	// WebhookSecretOverlap is how long a rotated secret keeps signing
	// beside the new one, so receivers can switch without losing a message.
	WebhookSecretOverlap = 24 * time.Hour
	// MaxWebhookError bounds a delivery's recorded error text, in bytes.
	MaxWebhookError = 300
)

// Webhook is a subscription: where the tenant's events go, which topics,
// and whether delivery is on. Its JSON is what events carry: no secret and
// no delivery state (WebhookView adds those for the API).
type Webhook struct {
	Meta
	URL    string `json:"url" gorm:"column:url"`
	Topics string `json:"-" gorm:"column:topics"` // canonical comma list, "" = all
	// TopicList is Topics as the API shows it ([] for all).
	TopicList      []string `json:"topics" gorm:"-"`
	Enabled        bool     `json:"enabled"`
	DisabledReason string   `json:"disabled_reason"`

	// Secret signs deliveries; PreviousSecret signs beside it until
	// PreviousUntil (rotation). Never in JSON, events or logs.
	Secret         string     `json:"-"`
	PreviousSecret string     `json:"-"`
	PreviousUntil  *time.Time `json:"-"`

	// Delivery state, kept by the deliverer.
	Cursor        int64  `json:"-" gorm:"column:delivered_seq"`   // last seq delivered (or not visible to the topics)
	Failures      int    `json:"-"`                               // consecutive failed attempts
	NextAttemptMS int64  `json:"-" gorm:"column:next_attempt_ms"` // unix ms; 0: now
	LeaseOwner    string `json:"-"`
	LeaseUntilMS  int64  `json:"-" gorm:"column:lease_until_ms"` // unix ms
}

func (Webhook) TableName() string { return "webhooks" }

// Entity returns "webhooks".
func (*Webhook) Entity() string { return EntityWebhook }

// Patient returns "": a subscription concerns no patient.
func (*Webhook) Patient() string { return "" }

// TopicsOf splits a stored topic list; [] for all.
func TopicsOf(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

// WebhookView is a subscription as the API answers it: the record, its
// delivery state, and the secret only in the answer to a create or a
// rotation.
type WebhookView struct {
	*Webhook
	Cursor        int64      `json:"cursor"`
	Failures      int        `json:"failures"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	// Secret is set only in the answers to create and rotate.
	Secret string `json:"secret,omitempty"`
	// PreviousSecretExpiresAt is when a rotated-out secret stops signing.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
}

// View returns the subscription as the API shows it; withSecret adds the
// current secret.
func (w *Webhook) View(withSecret bool, now time.Time) WebhookView {
	w.TopicList = TopicsOf(w.Topics)
	v := WebhookView{Webhook: w, Cursor: w.Cursor, Failures: w.Failures}
	if w.Failures > 0 && w.Enabled {
		t := time.UnixMilli(w.NextAttemptMS).UTC()
		v.NextAttemptAt = &t
	}
	if withSecret {
		v.Secret = w.Secret
	}
	if w.PreviousSecret != "" && w.PreviousUntil != nil && w.PreviousUntil.After(now) {
		t := w.PreviousUntil.UTC()
		v.PreviousSecretExpiresAt = &t
	}
	return v
}

// WebhookCreate is the body of POST /api/v1/webhooks.
type WebhookCreate struct {
	URL     string   `json:"url"`
	Topics  []string `json:"topics"`
	Enabled *bool    `json:"enabled"`
}

// WebhookUpdate is the body of PATCH /api/v1/webhooks/{id}.
type WebhookUpdate struct {
	URL     *string   `json:"url"`
	Topics  *[]string `json:"topics"`
	Enabled *bool     `json:"enabled"`
}

// WebhookPolicy is what a subscription's URL may be: https, or http to the
// hosts listed (WEBHOOK_ALLOW_HTTP_HOSTS, lower case), which may also be
// loopback or private addresses.
type WebhookPolicy struct {
	AllowHTTPHosts map[string]bool
}

// Allowed reports whether host (a hostname or IP literal, without port) is
// on the allow list.
func (p WebhookPolicy) Allowed(host string) bool {
	return p.AllowHTTPHosts[strings.ToLower(strings.TrimSuffix(host, "."))]
}

// CheckURL validates a subscription URL and returns its canonical form. It
// refuses (EINVALID naming field): a URL that does not parse or is over
// MaxWebhookURL bytes; a scheme other than https (http only to an allowed
// host); user info (credentials belong in the receiver's check of the
// signature); a fragment; no host; and a literal IP address that is
// loopback, private, link-local, unspecified or multicast unless allowed.
// A name that resolves to such an address is refused when delivering
// (the dialer checks every address it connects to).
func (p WebhookPolicy) CheckURL(field, raw string) (string, error) {
	bad := func(msg string) (string, error) { return "", Invalid(field, msg) }
	if raw == "" {
		return bad("is required")
	}
	if len(raw) > MaxWebhookURL || !utf8.ValidString(raw) || strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return bad("must be a URL of at most 2048 bytes without spaces or control characters")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return bad("must be an absolute https URL")
	}
	host := u.Hostname()
	switch {
	case host == "":
		return bad("must name a host")
	case u.User != nil:
		return bad("must not hold user info (user:password@)")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return bad("must not hold a fragment (#…)")
	case u.Scheme == "https":
	case u.Scheme == "http" && p.Allowed(host):
	case u.Scheme == "http":
		return bad("must be https (http only to hosts in WEBHOOK_ALLOW_HTTP_HOSTS)")
	default:
		return bad("must be an https URL")
	}
	if port := u.Port(); port != "" {
		if n, err := parsePort(port); err != nil || n == 0 {
			return bad("has an invalid port")
		}
	}
	// (A trailing dot is the same host: 127.0.0.1. is 127.0.0.1.)
	if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.Trim(host, "[]"), ".")); err == nil && !p.Allowed(host) && !PublicAddr(ip) {
		return bad("must not be a loopback, private, link-local, multicast or other special-purpose address")
	}
	if !p.Allowed(host) {
		name := strings.ToLower(strings.TrimSuffix(host, "."))
		switch {
		case numericHost(name):
			// 2130706433, 0177.0.0.1, 0x7f000001, 127.1: resolvers read
			// these as IPv4 addresses in forms no URL should use.
			return bad("must name its IPv4 address in dotted decimal (a.b.c.d), or a host name")
		case name == "localhost" || strings.HasSuffix(name, ".localhost") || strings.HasSuffix(name, ".local") ||
			strings.HasSuffix(name, ".internal") || strings.HasSuffix(name, ".home.arpa"):
			// Special-use names (RFC 6761, RFC 6762, RFC 8375) never
			// name a public receiver.
			return bad("must be a public host name, not " + name)
		}
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	return u.String(), nil
}

// numericHost reports whether a host name that is not a dotted-decimal
// IPv4 address is made of digits, dots and hex (0x…) parts only: an IPv4
// address in a legacy form (inet_aton: decimal, octal, hex, fewer parts).
func numericHost(name string) bool {
	if name == "" {
		return false
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return false
	}
	for _, part := range strings.Split(name, ".") {
		p := strings.TrimPrefix(part, "0x")
		if p == "" && part != "0x" {
			return false
		}
		for _, c := range p {
			if !(c >= '0' && c <= '9' || part != p && (c >= 'a' && c <= 'f')) {
				return false
			}
		}
	}
	return true
}

func parsePort(s string) (int, error) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' || n > math.MaxUint16 {
			return 0, net.InvalidAddrError("port")
		}
		n = n*10 + int(c-'0')
	}
	if n > math.MaxUint16 {
		return 0, net.InvalidAddrError("port")
	}
	return n, nil
}

// PublicAddr reports whether ip may be called without an allow-list
// entry: an address of no special-purpose range (ssrfGuard): not loopback,
// private, link-local (169.254/16: cloud metadata), unspecified, multicast,
// CGNAT, reserved, or an IPv6 form that embeds an IPv4 address; IPv4
// mapped in IPv6 is judged as IPv4.
func PublicAddr(ip netip.Addr) bool {
	return ip.IsValid() && ssrfGuard.SafeAddr(ip.Unmap()) == nil
}

// ssrfGuard judges addresses with code.dny.dev/ssrf, which follows the IANA
// IPv4 and IPv6 Special-Purpose Address Registries: besides loopback,
// private, link-local, CGNAT and multicast it refuses benchmarking
// (198.18/15), reserved (240/4), IETF protocol (192.0.0/24) and
// documentation ranges, and in IPv6 anything outside global unicast
// (2000::/3: so NAT64 64:ff9b::/96, IPv4-compatible ::a.b.c.d and
// site-local fec0::/10) and 6to4 (2002::/16), which can carry a private or
// metadata IPv4 address. Ports are WebhookPolicy's business.
var ssrfGuard = ssrf.New(ssrf.WithAnyPort(), ssrf.WithAnyNetwork())

// CheckTopics validates a subscription's topics (entity names as the
// stream's ?topics=, plus "webhooks") and returns their canonical comma
// list ("" for all: nil or []).
func CheckTopics(topics []string) (string, error) {
	if len(topics) == 0 {
		return "", nil
	}
	if len(topics) > 20 {
		return "", Invalid("topics", "at most 20 topics")
	}
	for i, t := range topics {
		if strings.Contains(t, ",") || t == "" {
			return "", Invalid("topics["+strconv.Itoa(i)+"]", "must be an entity name")
		}
	}
	parsed, err := ParseTopics(strings.Join(topics, ","))
	if err != nil {
		return "", err
	}
	return parsed.Key(), nil
}

// NewWebhookSecret returns a fresh signing secret: "whsec_" and the
// standard base64 of 32 random bytes (Standard Webhooks: 24–64 bytes).
func NewWebhookSecret() string {
	b := make([]byte, webhookSecretBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24)
	return WebhookSecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// WebhookKey decodes a secret to its HMAC key.
func WebhookKey(secret string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, WebhookSecretPrefix))
}

// WebhookBackoff returns the wait before attempt failures+1 after failures
// consecutive failures: capped exponential backoff with full jitter
// (a uniform wait in [0, min(max, base·2^(failures−1))], AWS's "full
// jitter"), at least 1 ms.
func WebhookBackoff(failures int, base, max time.Duration) time.Duration {
	if failures < 1 {
		return 0
	}
	ceil := max
	if failures <= 40 {
		if d := base << (failures - 1); d > 0 && d < max {
			ceil = d
		}
	}
	d := time.Duration(mrand.Int64N(int64(ceil) + 1))
	return d + time.Millisecond
}

// WebhookMessageID is the webhook-id of the event at seq delivered to the
// subscription: stable across retries and instances, unique per
// subscription and event, so receivers deduplicate by it.
func WebhookMessageID(webhookID string, seq int64) string {
	return "msg_" + webhookID + "_" + strconv.FormatInt(seq, 10)
}

// WebhookDelivery is a record of a subscription's deliveries: a failed
// attempt (FirstSeq = LastSeq, its event); successes saved together
// (FirstSeq..LastSeq: each event of the topics in that range delivered,
// one request each; Status and At the last one's, LatencyMS the slowest);
// or a skip of pruned events (Result "skipped", Status 0). It never holds
// a secret or a header.
type WebhookDelivery struct {
	ID        int64     `json:"-" gorm:"primaryKey"`
	WebhookID string    `json:"-"`
	TenantID  string    `json:"-"`
	At        time.Time `json:"at"`
	FirstSeq  int64     `json:"first_seq"`
	LastSeq   int64     `json:"last_seq"`
	// MessageID is the webhook-id header the attempt carried (a record
	// of one event only).
	MessageID string `json:"webhook_id" gorm:"-"`
	// Status is the receiver's HTTP status, 0 when there was none
	// (refused, timed out, connection error).
	Status int `json:"status"`
	// Result is "success" (2xx), "http_error" (another status),
	// "timeout", "refused" (an address the SSRF rules forbid),
	// "network" or "skipped".
	Result    string `json:"result"`
	LatencyMS int64  `json:"latency_ms"`
	// Error is a short description, at most MaxWebhookError bytes.
	Error string `json:"error"`
}

func (WebhookDelivery) TableName() string { return "webhook_deliveries" }

// ForLog returns a copy of the subscription for its events in the change
// log, which every staff member reads (stream, /events): the URL without
// its query and fragment, where receivers often put a credential
// ("?token=…"); a "?…" marks that there was one. The subscription API, for
// admins, answers the whole URL.
func (wh *Webhook) ForLog() *Webhook {
	c := *wh
	if u, err := url.Parse(wh.URL); err == nil && (u.RawQuery != "" || u.ForceQuery || u.Fragment != "") {
		u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
		c.URL = u.String() + "?…"
	}
	return &c
}
