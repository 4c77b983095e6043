package webhooks_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clinicpulse/clinicpulse/internal/apptest"
	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/webhooks"
)

// TestSignedDeliveries: a subscription gets its own creation and every
// later change, one event per request, in seq order, each verified by the
// npm standardwebhooks package; the body is the envelope /events answers;
// webhook-id is msg_<subscription>_<seq>. Messages with a wrong secret, an
// altered body or a stale timestamp fail that verification; a message the
// Go signer signs now passes it (the signer is checked against it, not
// against itself).
func TestSignedDeliveries(t *testing.T) {
	rc := startReceiver(t, 0)
	s := apptest.Start(t, fast)
	tok := adminToken(s)
	id, secret := createHook(t, s, tok, rc.URL)
	rc.do("ok", map[string]any{"cmd": "secrets", "secrets": []string{secret}})
	const n = 5
	for i := range n {
		s.Create(t, tok, "doctors", map[string]any{"name": fmt.Sprintf("Dr. %d", i)})
	}
	waitFor(t, 20*time.Second, "6 deliveries", func() bool { return len(rc.unique()) >= n+1 })
	got := rc.unique()
	var page struct{ Events []json.RawMessage }
	s.Do(t, http.MethodGet, "/api/v1/events?since=0", tok, nil).JSON(t, &page)
	if len(got) != n+1 || len(page.Events) != n+1 {
		t.Fatalf("got %d deliveries, %d events", len(got), len(page.Events))
	}
	for i, l := range got {
		if l.Seq != int64(i+1) || l.ID != models.WebhookMessageID(id, l.Seq) {
			t.Errorf("delivery %d: seq %d id %s", i, l.Seq, l.ID)
		}
		if l.UA != webhooks.UserAgent || l.CType != "application/json" {
			t.Errorf("delivery %d: user-agent %q content-type %q", i, l.UA, l.CType)
		}
		if !bytes.Equal([]byte(l.Body), page.Events[i]) {
			t.Errorf("delivery %d body\n%s\nwant the polled envelope\n%s", i, l.Body, page.Events[i])
		}
	}
	if got[0].Type != "webhooks.created" || strings.Contains(got[0].Body, "whsec_") || !strings.Contains(got[0].Body, `"url":"`+rc.URL) {
		t.Errorf("first delivery: %s", got[0].Body)
	}
	for _, l := range got[1:] {
		if l.Type != "doctors.created" {
			t.Errorf("delivery %s: type %s", l.ID, l.Type)
		}
	}

	// The library refuses what it must.
	msg := got[1]
	check := func(secret, body string, headers map[string]string) *string {
		return rc.do("check", map[string]any{"cmd": "check", "secret": secret, "body": body, "headers": headers}).Error
	}
	if e := check(secret, msg.Body, msg.Headers); e != nil {
		t.Fatalf("the captured message does not verify: %s", *e)
	}
	if e := check(models.NewWebhookSecret(), msg.Body, msg.Headers); e == nil {
		t.Error("a wrong secret verified")
	}
	if e := check(secret, strings.Replace(msg.Body, "Dr. 0", "Dr. 9", 1), msg.Headers); e == nil {
		t.Error("an altered body verified")
	}
	key, _ := models.WebhookKey(secret)
	signed := func(ts time.Time) map[string]string {
		return map[string]string{"webhook-id": msg.ID, "webhook-timestamp": fmt.Sprint(ts.Unix()),
			"webhook-signature": webhooks.Sign(key, msg.ID, ts, []byte(msg.Body))}
	}
	if e := check(secret, msg.Body, signed(time.Now())); e != nil {
		t.Errorf("a message signed now does not verify: %s", *e)
	}
	if e := check(secret, msg.Body, signed(time.Now().Add(-10*time.Minute))); e == nil {
		t.Error("a stale timestamp verified")
	}
	if len(rc.rejected) != 0 {
		t.Errorf("the receiver rejected %d deliveries: %+v", len(rc.rejected), rc.rejected[0])
	}

	// The deliveries endpoint shows the successes as they are saved (every
	// Save period): records newest first, each a range of seqs delivered
	// one request each, together every event once; webhook-id only on a
	// record of one event; no secret.
	var r *apptest.Response
	var ds struct{ Items []models.WebhookDelivery }
	waitFor(t, 10*time.Second, "the deliveries saved", func() bool {
		r = s.Do(t, http.MethodGet, "/api/v1/webhooks/"+id+"/deliveries?limit=50", tok, nil)
		r.JSON(t, &ds)
		return len(ds.Items) > 0 && ds.Items[0].LastSeq == n+1
	})
	if r.Status != 200 || bytes.Contains(r.Body, []byte("whsec_")) {
		t.Errorf("deliveries: %d %s", r.Status, r.Body)
	}
	next := int64(n + 1)
	for _, d := range ds.Items {
		one := d.FirstSeq == d.LastSeq
		if d.LastSeq != next || d.FirstSeq > d.LastSeq || d.Result != "success" || d.Status != 204 ||
			(one && d.MessageID != models.WebhookMessageID(id, d.LastSeq)) || (!one && d.MessageID != "") {
			t.Errorf("deliveries: %+v in %s", d, r.Body)
		}
		next = d.FirstSeq - 1
	}
	if next != 0 {
		t.Errorf("the records do not cover seqs 1 to %d: %s", n+1, r.Body)
	}
}

// TestRotation: after a rotation both secrets sign (two v1 signatures), so
// a receiver that knows only the old one, or only the new one, verifies.
func TestRotation(t *testing.T) {
	rc := startReceiver(t, 0)
	s := apptest.Start(t, fast)
	tok := adminToken(s)
	id, old := createHook(t, s, tok, rc.URL, "doctors")
	rc.do("ok", map[string]any{"cmd": "secrets", "secrets": []string{old}})
	s.Create(t, tok, "doctors", map[string]any{"name": "Dr. A"})
	waitFor(t, 10*time.Second, "first delivery", func() bool { return len(rc.unique()) == 1 })

	r := s.Do(t, http.MethodPost, "/api/v1/webhooks/"+id+"/rotate", tok, nil)
	var v struct {
		Secret                  string
		PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at"`
	}
	r.JSON(t, &v)
	if r.Status != 200 || v.Secret == old || !strings.HasPrefix(v.Secret, "whsec_") || time.Until(v.PreviousSecretExpiresAt) < 23*time.Hour {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	if g := s.Do(t, http.MethodGet, "/api/v1/webhooks/"+id, tok, nil); bytes.Contains(g.Body, []byte("whsec_")) {
		t.Errorf("GET shows a secret: %s", g.Body)
	}
	s.Create(t, tok, "doctors", map[string]any{"name": "Dr. B"})
	waitFor(t, 10*time.Second, "second delivery", func() bool { return len(rc.unique()) == 2 })
	rc.do("ok", map[string]any{"cmd": "secrets", "secrets": []string{v.Secret}})
	s.Create(t, tok, "doctors", map[string]any{"name": "Dr. C"})
	waitFor(t, 10*time.Second, "third delivery", func() bool { return len(rc.unique()) == 3 })
	got := rc.unique()
	if sig := got[2].Headers["webhook-signature"]; len(strings.Fields(sig)) != 2 {
		t.Errorf("signature header during the overlap: %q", sig)
	}
	if len(rc.rejected) != 0 {
		t.Errorf("rejected: %+v", rc.rejected)
	}
	// The log has the rotation, without either secret.
	var page struct{ Events []models.Event }
	s.Do(t, http.MethodGet, "/api/v1/events?since=0&topics=webhooks", tok, nil).JSON(t, &page)
	if len(page.Events) != 2 || page.Events[1].Type != "webhooks.updated" {
		t.Fatalf("webhooks events: %+v", page.Events)
	}
	for _, e := range page.Events {
		if bytes.Contains(e.Data, []byte("whsec_")) || bytes.Contains(e.Data, []byte("secret")) {
			t.Errorf("event data holds a secret: %s", e.Data)
		}
	}
}
