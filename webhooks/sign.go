// Package webhooks delivers each tenant's change log to the HTTPS endpoints
// its admins registered, signed as the Standard Webhooks specification
// (standardwebhooks.com, v1 symmetric signatures) says, one event per
// request, strictly in seq order per subscription, at least once.
//
// It is a reader of the log beside sse and polling: it keeps its own cursor
// per subscription in the database (advanced only after a 2xx; the
// successes of every subscription an instance delivers are saved together,
// every Config.Save, so a crash sends the last ones again with the same
// webhook-id), takes the events from the relay's dispatch (a Sink that
// never blocks) through a tail in memory per tenant, and is woken by it and
// by a periodic scan. It runs each subscription in its own goroutine under
// a lease row, so a slow or failing endpoint delays nothing else, and with
// several instances on one database exactly one delivers a subscription at
// a time.
package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"time"
)

// Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Sign returns the v1 signature of a message: "v1," and the standard
// base64 of HMAC-SHA256(key, id + "." + unix seconds + "." + body)
// (Standard Webhooks, "Signature scheme").
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, ts.Unix(), 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignatureHeader returns the webhook-signature value for keys: one
// "v1,…" signature per key, separated by spaces (the current secret's
// first, then a rotated-out secret's during its overlap), as the
// specification allows so receivers can rotate without a gap.
func SignatureHeader(keys [][]byte, id string, ts time.Time, body []byte) string {
	out := ""
	for i, k := range keys {
		if i > 0 {
			out += " "
		}
		out += Sign(k, id, ts, body)
	}
	return out
}
