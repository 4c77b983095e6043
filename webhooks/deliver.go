package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/store"
)

// Defaults of Config.
const (
	DefaultWorkers        = 16
	DefaultMaxFailures    = 50
	DefaultBackoffMin     = time.Second
	DefaultBackoffMax     = 10 * time.Minute
	DefaultTimeout        = 10 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	DefaultLease          = 30 * time.Second
	DefaultScan           = 2 * time.Second
	// MaxResponseBody is how much of a receiver's answer is read (and
	// dropped): a receiver that answers 100 MB costs 64 KiB.
	MaxResponseBody = 64 << 10
	// UserAgent names the sender.
	UserAgent = "ClinicPulse-Webhooks/1"
	// batch is how many events a worker reads from the log at once.
	batch = 100
	// turn is how long a worker delivers one subscription before it lets
	// the others have its slot.
	turn = 20 * time.Second
)

// Store is what the deliverer needs of the store.
type Store interface {
	PendingWebhooks(ctx context.Context) ([]store.PendingWebhook, error)
	AcquireWebhook(ctx context.Context, id, owner string, nowMS, untilMS int64) (bool, error)
	ReleaseWebhook(ctx context.Context, id, owner string) error
	LeasedWebhook(ctx context.Context, id, owner string) (*models.Webhook, error)
	RecordAttempt(ctx context.Context, at store.Attempt) error
	SkipPrunedWebhook(ctx context.Context, at store.Attempt) error
	LogHead(ctx context.Context, tenantID string) (store.Head, error)
	ReadEvents(ctx context.Context, q models.EventQuery) ([]models.Event, error)
}

// Config configures a Deliverer; zero values take the defaults.
type Config struct {
	// Owner names this instance in lease rows; it must differ between
	// instances sharing a database.
	Owner string
	// Workers bounds the subscriptions delivered at once by this instance
	// (WEBHOOK_WORKERS).
	Workers int
	// MaxFailures consecutive failed attempts disable a subscription
	// (WEBHOOK_MAX_FAILURES).
	MaxFailures int
	// BackoffMin and BackoffMax shape the retry wait: full jitter in
	// [0, min(BackoffMax, BackoffMin·2^(n−1))] after n failures.
	BackoffMin, BackoffMax time.Duration
	// Timeout bounds one request, connect to last byte read
	// (WEBHOOK_TIMEOUT); ConnectTimeout one connection.
	Timeout, ConnectTimeout time.Duration
	// Lease is how long a lease lasts without renewal: after an instance
	// dies, another takes its subscriptions over this long after its last
	// delivery. It must exceed Timeout.
	Lease time.Duration
	// Scan is the safety-net scan period.
	Scan   time.Duration
	Policy models.WebhookPolicy
	Now    func() time.Time
	Logger *slog.Logger
}

// Deliverer delivers the subscriptions of every tenant.
type Deliverer struct {
	st     Store
	cfg    Config
	client *http.Client
	wake   chan struct{}
	slots  chan struct{}

	mu      sync.Mutex
	running map[string]*worker

	Stats Stats
	wg    sync.WaitGroup
}

// worker is a running subscription; again asks it to look once more
// before it ends (a wake arrived while it was finishing).
type worker struct{ again bool }

// Stats are the deliverer's counters and gauges, for the metrics.
type Stats struct {
	// Results counts attempts by result (success, http_error, timeout,
	// refused, network, skipped).
	mu      sync.Mutex
	results map[string]int64
	// Latency observes event commit → successful delivery, in seconds.
	Latency func(seconds float64)
	// Pending, Retrying, MaxLag, Disabled: from the last scan.
	Pending  atomic.Int64 // subscriptions with events to deliver
	Retrying atomic.Int64 // of those, after a failure (the retry queue)
	MaxLag   atomic.Int64 // the largest head − cursor, in events
	Active   atomic.Int64 // subscriptions being delivered by this instance
}

func (s *Stats) add(result string) {
	s.mu.Lock()
	if s.results == nil {
		s.results = map[string]int64{}
	}
	s.results[result]++
	s.mu.Unlock()
}

// Results returns the attempts by result so far.
func (s *Stats) Results() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.results))
	for k, v := range s.results {
		out[k] = v
	}
	return out
}

// ResultNames lists every result, for metrics labels.
var ResultNames = []string{"success", "http_error", "timeout", "refused", "network", "skipped"}

// New returns a deliverer; Run starts it.
func New(st Store, cfg Config) *Deliverer {
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = DefaultMaxFailures
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Lease <= cfg.Timeout {
		cfg.Lease = cfg.Timeout + time.Second
	}
	if cfg.Scan <= 0 {
		cfg.Scan = DefaultScan
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Owner == "" {
		cfg.Owner = models.NewID("inst")
	}
	return &Deliverer{
		st: st, cfg: cfg, client: newClient(cfg.Policy, cfg.ConnectTimeout),
		wake: make(chan struct{}, 1), slots: make(chan struct{}, cfg.Workers),
		running: map[string]*worker{},
	}
}

// Owner is the name of this instance in lease rows.
func (d *Deliverer) Owner() string { return d.cfg.Owner }

// Publish is the relay sink: new events were committed, look for
// subscriptions to deliver. It never blocks.
func (d *Deliverer) Publish(string, []models.Event) { d.Wake() }

// Wake asks for a scan soon. It never blocks.
func (d *Deliverer) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run scans for due subscriptions on every wake, at the earliest retry
// time, and every Scan period, starting a worker for each it can lease,
// until ctx ends; then it waits for the workers, which release their
// leases.
func (d *Deliverer) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			d.wg.Wait()
			return
		case <-d.wake:
		case <-timer.C:
		}
		next := d.scan(ctx)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(min(next, d.cfg.Scan))
		// Coalesce a burst of wakes (one per commit) into one scan.
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// scan starts workers for the due subscriptions and returns how long until
// the earliest retry.
func (d *Deliverer) scan(ctx context.Context) time.Duration {
	pending, err := d.st.PendingWebhooks(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.cfg.Logger.Warn("webhooks: scan failed", "err", err)
		}
		return time.Second
	}
	now := d.cfg.Now()
	nowMS := now.UnixMilli()
	next := d.cfg.Scan
	var retrying, maxLag int64
	for _, p := range pending {
		maxLag = max(maxLag, p.Head-p.Cursor)
		if p.Failures > 0 {
			retrying++
		}
		if p.NextAttemptMS > nowMS {
			next = min(next, time.Duration(p.NextAttemptMS-nowMS)*time.Millisecond)
			continue
		}
		if p.LeaseOwner != d.cfg.Owner && p.LeaseUntilMS >= nowMS {
			next = min(next, time.Duration(p.LeaseUntilMS-nowMS+1)*time.Millisecond)
			continue // another instance's
		}
		d.mu.Lock()
		if w, ok := d.running[p.ID]; ok {
			w.again = true
			d.mu.Unlock()
			continue
		}
		d.mu.Unlock()
		select {
		case d.slots <- struct{}{}:
		default:
			continue // every worker busy: a finishing one wakes the scan
		}
		ok, err := d.st.AcquireWebhook(ctx, p.ID, d.cfg.Owner, nowMS, now.Add(d.cfg.Lease).UnixMilli())
		if err != nil || !ok {
			<-d.slots
			continue
		}
		d.mu.Lock()
		d.running[p.ID] = &worker{}
		d.mu.Unlock()
		d.Stats.Active.Add(1)
		d.wg.Add(1)
		go d.work(ctx, p.ID, p.TenantID)
	}
	d.Stats.Pending.Store(int64(len(pending)))
	d.Stats.Retrying.Store(retrying)
	d.Stats.MaxLag.Store(maxLag)
	return max(next, time.Millisecond)
}

// work delivers one subscription while it has events, holds the lease and
// ctx lasts, then releases the lease.
func (d *Deliverer) work(ctx context.Context, id, tenantID string) {
	defer d.wg.Done()
	start := time.Now()
	for {
		more, err := d.deliverBatch(ctx, id, tenantID)
		if err != nil && !errors.Is(err, store.ErrLeaseLost) && ctx.Err() == nil {
			d.cfg.Logger.Warn("webhooks: delivery stopped; will retry", "webhook", id, "err", err)
		}
		if err == nil && more && ctx.Err() == nil && time.Since(start) < turn {
			continue
		}
		d.mu.Lock()
		w := d.running[id]
		if err == nil && !more && w.again && ctx.Err() == nil && time.Since(start) < turn {
			w.again = false
			d.mu.Unlock()
			continue
		}
		delete(d.running, id)
		d.mu.Unlock()
		break
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	_ = d.st.ReleaseWebhook(rctx, id, d.cfg.Owner)
	cancel()
	d.Stats.Active.Add(-1)
	<-d.slots
	d.Wake()
}

// deliverBatch reads the subscription (under its lease) and the next
// events after its cursor, and delivers them one by one. more reports
// that it may have more to do; an error or a failed attempt ends the turn.
func (d *Deliverer) deliverBatch(ctx context.Context, id, tenantID string) (more bool, err error) {
	wh, err := d.st.LeasedWebhook(ctx, id, d.cfg.Owner)
	if err != nil {
		return false, err
	}
	h, err := d.st.LogHead(ctx, tenantID)
	if err != nil {
		return false, err
	}
	if wh.Cursor >= h.Seq {
		return false, nil
	}
	if wh.Cursor < h.PrunedThrough {
		// The events after the cursor were pruned before delivery (a
		// subscription stalled longer than the retention): skip them,
		// recorded, rather than stop forever.
		err := d.st.SkipPrunedWebhook(ctx, store.Attempt{
			WebhookID: id, TenantID: tenantID, Owner: d.cfg.Owner, From: wh.Cursor, To: h.PrunedThrough,
			LeaseUntilMS: d.cfg.Now().Add(d.cfg.Lease).UnixMilli(),
			Delivery: models.WebhookDelivery{At: d.cfg.Now().UTC(), FirstSeq: wh.Cursor + 1, LastSeq: h.PrunedThrough,
				Error: fmt.Sprintf("events %d to %d were pruned before delivery", wh.Cursor+1, h.PrunedThrough)},
		})
		d.Stats.add("skipped")
		return err == nil, err
	}
	topics, err := models.ParseTopics(wh.Topics)
	if err != nil {
		return false, err
	}
	evs, err := d.st.ReadEvents(ctx, models.EventQuery{TenantID: tenantID, After: wh.Cursor, Until: h.Seq, Limit: batch, Topics: topics})
	if err != nil {
		return false, err
	}
	// What the topics do not see up to here is passed over with the last
	// delivery (or alone, when nothing in range is visible).
	until := h.Seq
	if len(evs) == batch {
		until = evs[len(evs)-1].Seq
	}
	keys, err := signingKeys(wh, d.cfg.Now())
	if err != nil {
		return false, err
	}
	from := wh.Cursor
	if len(evs) == 0 {
		err := d.st.RecordAttempt(ctx, store.Attempt{WebhookID: id, TenantID: tenantID, Owner: d.cfg.Owner, From: from, OK: true, To: until,
			LeaseUntilMS: d.cfg.Now().Add(d.cfg.Lease).UnixMilli(),
			Delivery:     models.WebhookDelivery{LastSeq: until}})
		return true, err
	}
	for i := range evs {
		e := &evs[i]
		to := e.Seq
		if i == len(evs)-1 {
			to = until
		}
		ok, err := d.attempt(ctx, wh, keys, e, from, to)
		if err != nil || !ok {
			return false, err
		}
		from = to
	}
	return true, nil
}

// signingKeys returns the HMAC keys that sign: the current secret's, and a
// rotated-out secret's until its overlap ends.
func signingKeys(wh *models.Webhook, now time.Time) ([][]byte, error) {
	k, err := models.WebhookKey(wh.Secret)
	if err != nil {
		return nil, fmt.Errorf("webhooks: secret of %s: %w", wh.ID, err)
	}
	keys := [][]byte{k}
	if wh.PreviousSecret != "" && wh.PreviousUntil != nil && wh.PreviousUntil.After(now) {
		if k, err := models.WebhookKey(wh.PreviousSecret); err == nil {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// attempt sends one event and records the outcome. ok reports a 2xx (the
// cursor moved to "to").
func (d *Deliverer) attempt(ctx context.Context, wh *models.Webhook, keys [][]byte, e *models.Event, from, to int64) (ok bool, err error) {
	body, err := json.Marshal(e)
	if err != nil {
		return false, fmt.Errorf("webhooks: encode event %d: %w", e.Seq, err)
	}
	msgID := models.WebhookMessageID(wh.ID, e.Seq)
	start := time.Now()
	status, result, errText := d.send(ctx, wh.URL, keys, msgID, body)
	if ctx.Err() != nil {
		return false, ctx.Err() // shutting down: nothing to record, the event goes out again
	}
	now := d.cfg.Now()
	at := store.Attempt{
		WebhookID: wh.ID, TenantID: wh.TenantID, Owner: d.cfg.Owner, From: from, To: to,
		Delivery: models.WebhookDelivery{At: now.UTC(), FirstSeq: e.Seq, LastSeq: e.Seq, Status: status, Result: result,
			LatencyMS: time.Since(start).Milliseconds(), Error: errText},
	}
	d.Stats.add(result)
	if result == "success" {
		at.OK = true
		at.LeaseUntilMS = now.Add(d.cfg.Lease).UnixMilli()
		if err := d.st.RecordAttempt(ctx, at); err != nil {
			return false, err
		}
		if d.Stats.Latency != nil {
			d.Stats.Latency(now.Sub(e.At).Seconds())
		}
		return true, nil
	}
	failures := wh.Failures + 1
	at.NextAttemptMS = now.Add(models.WebhookBackoff(failures, d.cfg.BackoffMin, d.cfg.BackoffMax)).UnixMilli()
	switch {
	case status == http.StatusGone:
		at.Disable = "the receiver answered 410 Gone"
	case failures >= d.cfg.MaxFailures:
		at.Disable = fmt.Sprintf("%d consecutive failed deliveries (last: %s)", failures, short(errText, 120))
	}
	wh.Failures = failures
	return false, d.st.RecordAttempt(ctx, at)
}

// send POSTs one signed message and classifies the outcome. It never
// returns the URL or a secret in its error text.
func (d *Deliverer) send(ctx context.Context, url string, keys [][]byte, msgID string, body []byte) (status int, result, errText string) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "network", "the URL cannot be requested"
	}
	ts := d.cfg.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderID, msgID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, SignatureHeader(keys, msgID, ts, body))
	res, err := d.client.Do(req)
	if err != nil {
		return 0, classify(err), describe(err)
	}
	// At most MaxResponseBody of the answer is read; a 2xx is a success
	// whatever its body does after the status line.
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, MaxResponseBody))
	res.Body.Close()
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		return res.StatusCode, "success", ""
	case res.StatusCode >= 300 && res.StatusCode < 400:
		return res.StatusCode, "http_error", "redirects are not followed (" + res.Status + ")"
	}
	return res.StatusCode, "http_error", "the receiver answered " + short(res.Status, 80)
}

// classify names a transport error's result.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, ErrForbiddenAddress):
		return "refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "network"
}

// describe is a bounded, URL-free description of a transport error.
func describe(err error) string {
	switch classify(err) {
	case "refused":
		return ErrForbiddenAddress.Error()
	case "timeout":
		return "timed out"
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return short(op.Op+": "+op.Err.Error(), 200)
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return short("dns: "+dns.Err, 200)
	}
	return "connection failed"
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
