package webhooks

import (
	"bytes"
	"context"
	"errors"
	"github.com/clinicpulse/clinicpulse/internal/defaults"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
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
	DefaultSave           = 100 * time.Millisecond
	// MaxResponseBody is how much of a receiver's answer is read (and
	// dropped): a receiver that answers 100 MB costs 64 KiB.
	MaxResponseBody = 64 << 10
	// UserAgent names the sender.
	UserAgent = "ClinicPulse-Webhooks/1"
	// batch is how many events a worker reads from the log at once.
	batch = 100
	// saveAfter acknowledged events of one subscription ask for a save
	// before the next tick.
	saveAfter = 256
	// turn is how long a worker delivers one subscription before it lets
	// another have its slot, when one waits for a slot; minTurn, how long
	// at least, caught up or not (what starting a worker costs the
	// database — a lease, a read, a save — is spread over minTurn).
	turn    = 20 * time.Second
	minTurn = 500 * time.Millisecond
	// idle is how long a worker that has delivered everything keeps its
	// subscription (and lease) waiting for the next event, when no other
	// subscription waits for a slot: a subscription that gets an event
	// every few seconds costs no lease, read and release per event.
	idle = 5 * time.Second
	// scanGap is the least time between two scans: a burst of commits
	// (each wakes the deliverer) costs one scan per gap.
	scanGap = 20 * time.Millisecond
)

// Store is what the deliverer needs of the store.
type Store interface {
	PendingWebhooks(ctx context.Context) ([]store.PendingWebhook, error)
	AcquireWebhooks(ctx context.Context, ids []string, owner string, nowMS, untilMS int64) ([]string, error)
	ReleaseWebhook(ctx context.Context, id, owner string) error
	LeasedWebhook(ctx context.Context, id, owner string) (*models.Webhook, error)
	SaveWebhookProgress(ctx context.Context, owner string, ps []store.WebhookProgress) ([]store.ProgressResult, error)
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
	// save. It must exceed Timeout; a request starts only while the lease
	// outlasts it.
	Lease time.Duration
	// Scan is the safety-net scan period.
	Scan time.Duration
	// Save is how often the successes are saved: every subscription's
	// cursor, delivery record and lease renewal in one transaction (and
	// at once after saveAfter successes of one subscription, before a
	// failure is recorded and when a worker stops). A crash loses at most
	// this much progress: those events are sent again, with the same
	// webhook-id.
	Save   time.Duration
	Policy models.WebhookPolicy
	Now    func() time.Time
	Logger *slog.Logger
}

// Deliverer delivers the subscriptions of every tenant.
//
// The database's work does not grow with the rate of events: each worker
// sends its subscription's events one by one and keeps the 2xx in memory
// (sub); every Save period one transaction moves the cursors, adds one
// delivery record per subscription and renews the leases (save): a
// statement per running subscription and one insert. The events come from
// the relay (Publish) through a tail in memory per tenant, shared by the
// tenant's subscriptions, each event encoded once; a worker reads the log
// only to catch up from further back than the tail, and a scan (at most
// one per scanGap) finds the subscriptions to start. No transaction or
// connection is held while a request is in flight: on SQLite's single
// connection, writers never wait for a receiver.
type Deliverer struct {
	st      Store
	cfg     Config
	client  *http.Client
	wake    chan struct{}
	slots   chan struct{}
	saveNow chan struct{}
	// renewWithin: a lease that ends sooner than this is renewed at the
	// next save (Timeout + half of the margin Lease − Timeout).
	renewWithin time.Duration

	mu      sync.Mutex
	running map[string]*sub
	tails   map[string]*tail
	// starved: the last scan found a due subscription without a free
	// slot; caught-up workers then give theirs up.
	starved atomic.Bool
	// notice wakes waiting workers to look at starved and their stale flag.
	notice signal

	saveMu sync.Mutex // one save at a time

	Stats Stats
	wg    sync.WaitGroup
}

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
	defaults.Set(&cfg.Workers, DefaultWorkers)
	defaults.Set(&cfg.MaxFailures, DefaultMaxFailures)
	defaults.Set(&cfg.BackoffMin, DefaultBackoffMin)
	defaults.Set(&cfg.BackoffMax, DefaultBackoffMax)
	defaults.Set(&cfg.Timeout, DefaultTimeout)
	defaults.Set(&cfg.ConnectTimeout, DefaultConnectTimeout)
	defaults.Set(&cfg.Lease, DefaultLease)
	if cfg.Lease <= cfg.Timeout {
		cfg.Lease = cfg.Timeout + time.Second
	}
	defaults.Set(&cfg.Scan, DefaultScan)
	defaults.Set(&cfg.Save, DefaultSave)
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
		st: st, cfg: cfg, client: newClient(cfg.Policy, cfg.ConnectTimeout, cfg.Workers),
		wake: make(chan struct{}, 1), slots: make(chan struct{}, cfg.Workers), saveNow: make(chan struct{}, 1),
		renewWithin: cfg.Timeout + (cfg.Lease-cfg.Timeout)/2,
		running:     map[string]*sub{}, tails: map[string]*tail{},
	}
}

// Owner is the name of this instance in lease rows.
func (d *Deliverer) Owner() string { return d.cfg.Owner }

// Publish is the relay sink: the tenant's events were committed (in seq
// order, without gaps). They join the tenant's tail if a worker of the
// tenant runs here, and a scan looks for subscriptions to start. It never
// blocks.
func (d *Deliverer) Publish(tenantID string, evs []models.Event) {
	d.mu.Lock()
	t := d.tails[tenantID]
	d.mu.Unlock()
	if t != nil {
		t.add(evs)
	}
	d.wakeScan()
}

// Wake says that subscriptions changed (created, updated, rotated,
// replayed, deleted): running workers read theirs again before their next
// request, and a scan runs soon. It never blocks.
func (d *Deliverer) Wake() {
	d.mu.Lock()
	for _, s := range d.running {
		s.stale.Store(true)
	}
	d.mu.Unlock()
	d.notice.fire()
	d.wakeScan()
}

func (d *Deliverer) wakeScan() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run scans for due subscriptions on every wake (at most once per
// scanGap), at the earliest retry time, and every Scan period, starting a
// worker for each it can lease, and saves the workers' progress every
// Save period, until ctx ends; then it waits for the workers, which save
// their last progress and release their leases.
func (d *Deliverer) Run(ctx context.Context) {
	saving := make(chan struct{})
	go func() { defer close(saving); d.saveLoop(ctx) }()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			d.wg.Wait()
			<-saving
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
		case <-time.After(scanGap):
		}
	}
}

// saveLoop saves every Save period, and sooner when a worker asks.
func (d *Deliverer) saveLoop(ctx context.Context) {
	tick := time.NewTicker(d.cfg.Save)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-d.saveNow:
		}
		if err := d.save(ctx, nil); err != nil && ctx.Err() == nil {
			d.cfg.Logger.Warn("webhooks: saving delivery progress failed; will retry", "err", err)
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
	var due []store.PendingWebhook
	starved := false
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
		_, ok := d.running[p.ID]
		d.mu.Unlock()
		if ok {
			continue // its worker goes on; a finishing one wakes the scan
		}
		select {
		case d.slots <- struct{}{}:
			due = append(due, p)
		default:
			starved = true // every worker busy: a finishing one wakes the scan
		}
	}
	if d.starved.Swap(starved) != starved && starved {
		d.notice.fire()
	}
	d.Stats.Pending.Store(int64(len(pending)))
	d.Stats.Retrying.Store(retrying)
	d.Stats.MaxLag.Store(maxLag)
	if len(due) == 0 {
		return max(next, time.Millisecond)
	}
	ids := make([]string, len(due))
	for i, p := range due {
		ids[i] = p.ID
	}
	until := now.Add(d.cfg.Lease)
	got, err := d.st.AcquireWebhooks(ctx, ids, d.cfg.Owner, nowMS, until.UnixMilli())
	if err != nil && ctx.Err() == nil {
		d.cfg.Logger.Warn("webhooks: acquiring leases failed", "err", err)
	}
	leased := make(map[string]bool, len(got))
	for _, id := range got {
		leased[id] = true
	}
	for _, p := range due {
		if !leased[p.ID] {
			<-d.slots
			continue
		}
		s := &sub{id: p.ID, tenantID: p.TenantID, leaseUntil: until}
		d.mu.Lock()
		d.running[p.ID] = s
		t := d.tails[p.TenantID]
		if t == nil {
			t = &tail{}
			d.tails[p.TenantID] = t
		}
		t.users++
		d.mu.Unlock()
		d.Stats.Active.Add(1)
		d.wg.Add(1)
		go d.work(ctx, s, t)
	}
	return max(next, time.Millisecond)
}

// save writes, in one transaction, the progress of the running
// subscriptions (only's, when not nil; else every one) that have some or
// whose lease needs renewing, and hands each worker its result. It returns
// the transaction's error (each worker then keeps its progress for the
// next save, and stops sending when its lease runs short).
func (d *Deliverer) save(ctx context.Context, only *sub) error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	return d.saveLocked(ctx, only)
}

// saveLocked is save with saveMu held.
func (d *Deliverer) saveLocked(ctx context.Context, only *sub) error {
	now := d.cfg.Now()
	subs := []*sub{only}
	if only == nil {
		d.mu.Lock()
		subs = make([]*sub, 0, len(d.running))
		for _, s := range d.running {
			subs = append(subs, s)
		}
		d.mu.Unlock()
	}
	var ps []store.WebhookProgress
	var of []*sub
	var runs []run
	for _, s := range subs {
		s.mu.Lock()
		if !s.done && !s.lost && (s.acked > s.saved || s.release || s.leaseUntil.Sub(now) < d.renewWithin) {
			p := store.WebhookProgress{WebhookID: s.id, TenantID: s.tenantID, From: s.saved, To: s.acked, Deliveries: s.oks.record()}
			if !s.release {
				p.LeaseUntilMS = now.Add(d.cfg.Lease).UnixMilli()
			}
			ps, of, runs = append(ps, p), append(of, s), append(runs, s.oks)
			s.oks = run{}
		}
		s.mu.Unlock()
	}
	if len(ps) == 0 {
		return nil
	}
	res, err := d.st.SaveWebhookProgress(ctx, d.cfg.Owner, ps)
	if err != nil {
		for i, s := range of {
			s.mu.Lock()
			s.oks = runs[i].then(s.oks) // for the next save
			s.mu.Unlock()
		}
		return err
	}
	for i, s := range of {
		s.mu.Lock()
		switch {
		case res[i].Lost:
			s.lost = true
		default:
			s.saved = ps[i].To
			s.leaseUntil = time.UnixMilli(ps[i].LeaseUntilMS)
			s.done = ps[i].LeaseUntilMS == 0
			if res[i].Version != s.version {
				s.version = res[i].Version
				s.stale.Store(true)
			}
		}
		s.mu.Unlock()
	}
	return nil
}

// sub is a subscription a worker of this instance delivers: its progress
// since the last save, shared by the worker and save.
type sub struct {
	id, tenantID string
	stale        atomic.Bool // read the subscription again before the next request

	mu         sync.Mutex
	saved      int64     // the cursor in the database, as this instance wrote or read it
	acked      int64     // the last seq answered with a 2xx or passed over (≥ saved)
	oks        run       // the successes after saved (and not being saved)
	version    int64     // the subscription's version as last read or saved
	leaseUntil time.Time // the lease as last written
	lost       bool      // nothing to save: the row moved under us (replay, disable, delete, another's lease)
	release    bool      // the worker stops: the next save releases the lease
	done       bool      // the lease is released: nothing more to save
}

// run sums up consecutive successes of a subscription for its delivery
// record.
type run struct {
	n           int
	first, last int64 // seqs
	status      int   // the last one's
	at          time.Time
	slowest     time.Duration
}

// add counts one more success.
func (r *run) add(seq int64, status int, latency time.Duration, at time.Time) {
	if r.n == 0 {
		r.first = seq
	}
	r.n++
	r.last, r.status, r.at = seq, status, at
	r.slowest = max(r.slowest, latency)
}

// then returns r followed by later.
func (r run) then(later run) run {
	switch {
	case r.n == 0:
		return later
	case later.n == 0:
		return r
	}
	later.n += r.n
	later.first = r.first
	later.slowest = max(later.slowest, r.slowest)
	return later
}

// record returns the delivery record of the run: first_seq..last_seq
// (every event of the topics in that range delivered, one request each),
// the last status and time, the slowest latency. None for an empty run.
func (r run) record() []models.WebhookDelivery {
	if r.n == 0 {
		return nil
	}
	return []models.WebhookDelivery{{At: r.at.UTC(), FirstSeq: r.first, LastSeq: r.last, Status: r.status,
		Result: "success", LatencyMS: r.slowest.Milliseconds()}}
}

// signal is a broadcast: wait returns a channel that the next fire closes.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (g *signal) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
	return g.ch
}

func (g *signal) fire() {
	g.mu.Lock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
	g.mu.Unlock()
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

// describe is a bounded description of a transport error that names
// neither the URL nor anything of this server's network: a DNS error says
// what went wrong, not which resolver answered (its Error() names it, and
// tenant admins read the deliveries); a dial error keeps only the system
// call's error ("connection refused"), not the addresses.
func describe(err error) string {
	switch classify(err) {
	case "refused":
		return ErrForbiddenAddress.Error()
	case "timeout":
		return "timed out"
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		if dns.IsNotFound {
			return "dns: no such host"
		}
		return short("dns: "+dns.Err, 200)
	}
	var sys *os.SyscallError
	if errors.As(err, &sys) {
		return short(sys.Syscall+": "+sys.Err.Error(), 200)
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op + ": connection failed"
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
