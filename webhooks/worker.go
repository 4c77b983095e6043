package webhooks

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/clinicpulse/clinicpulse/store"
)

// errLeaseShort stops a worker whose lease could not be renewed: it sends
// nothing its lease might not outlast.
var errLeaseShort = errors.New("webhooks: the lease could not be renewed")

// work delivers one subscription (see deliver), then saves its last
// progress and releases its lease.
func (d *Deliverer) work(ctx context.Context, s *sub, t *tail) {
	defer d.wg.Done()
	if err := d.deliver(ctx, s, t); err != nil && !errors.Is(err, store.ErrLeaseLost) && ctx.Err() == nil {
		d.cfg.Logger.Warn("webhooks: delivery stopped; will retry", "webhook", s.id, "err", err)
	}
	// Saved and released before the subscription leaves running, so that
	// a scan never starts a second worker on it meanwhile.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	s.mu.Lock()
	s.release = true
	s.mu.Unlock()
	if err := d.save(rctx, s); err != nil {
		d.cfg.Logger.Warn("webhooks: saving delivery progress failed; those events will be sent again", "webhook", s.id, "err", err)
	}
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if !done {
		// Lost (a replay moved the cursor) or the save failed: give the
		// lease up if it is still ours.
		_ = d.st.ReleaseWebhook(rctx, s.id, d.cfg.Owner)
	}
	cancel()
	d.mu.Lock()
	delete(d.running, s.id)
	if t.users--; t.users == 0 {
		delete(d.tails, s.tenantID)
	}
	d.mu.Unlock()
	d.Stats.Active.Add(-1)
	<-d.slots
	d.wakeScan()
}

// deliver sends the subscription's events one by one, in seq order from
// its cursor, taking them from the tenant's tail or else the log, and
// keeps the successes for save. It returns nil when it has delivered
// everything and nothing new came for idle (the log is looked at once
// more first: the relay may lag), or when another subscription waits for
// a slot (after minTurn when caught up, else after turn); an error when its
// lease is lost or cannot be renewed, the subscription changed under it,
// or an attempt failed (recorded: the subscription waits for its retry).
func (d *Deliverer) deliver(ctx context.Context, s *sub, t *tail) error {
	start := time.Now()
	wh, topics, keys, err := d.load(ctx, s)
	s.mu.Lock()
	if err != nil {
		s.lost = true // nothing was read: nothing to save
		s.mu.Unlock()
		return err
	}
	s.saved, s.acked, s.version = wh.Cursor, wh.Cursor, wh.Version
	s.mu.Unlock()
	failures := wh.Failures
	checked := wh.Cursor // the subscription's own changes up to here are in wh
	timer := time.NewTimer(idle)
	defer timer.Stop()
	fromLog := false
	for ctx.Err() == nil {
		if s.stale.Swap(false) {
			// The subscription changed (URL, topics, secrets, a replay):
			// read it again. The save lock keeps saved still meanwhile.
			d.saveMu.Lock()
			nwh, ntopics, nkeys, err := d.load(ctx, s)
			s.mu.Lock()
			moved := err == nil && nwh.Cursor != s.saved
			if err == nil {
				s.version = nwh.Version
			}
			s.mu.Unlock()
			d.saveMu.Unlock()
			switch {
			case err != nil:
				return err
			case moved:
				return store.ErrLeaseLost // replayed: a new worker starts from the new cursor
			}
			wh, topics, keys = nwh, ntopics, nkeys
		}
		if d.starved.Load() && time.Since(start) > turn {
			return nil
		}
		s.mu.Lock()
		lost, cursor := s.lost, s.acked
		s.mu.Unlock()
		if lost {
			return store.ErrLeaseLost
		}
		changed := t.changed.wait() // before reading the tail: no add is missed
		f := filter{topics: topics, self: s.id, checked: checked, limit: batch}
		es, through, change, err := d.next(ctx, s, t, cursor, f, fromLog)
		if err != nil {
			return err
		}
		looked := fromLog
		fromLog = false
		if change > 0 {
			// The subscription changed at seq change: read it again before
			// the next request (the events before the change not yet sent
			// go with the new settings too).
			checked = change
			s.stale.Store(true)
		}
		if len(es) == 0 {
			if through > cursor {
				s.pass(through) // nothing of the topics up to through
				failures = 0    // as the save will (the cursor moves)
			}
			if through > cursor || change > 0 {
				continue
			}
			wait := idle
			if d.starved.Load() {
				wait = minTurn - time.Since(start)
			}
			if looked || wait <= 0 {
				return nil
			}
			timer.Reset(wait)
			select {
			case <-ctx.Done():
			case <-changed:
			case <-d.notice.wait():
			case <-timer.C:
				fromLog = wait == idle
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			continue
		}
		for i, e := range es {
			if s.stale.Load() {
				break // read the subscription again first; these events come again
			}
			if err := d.leased(ctx, s); err != nil {
				return err
			}
			to := e.ev.Seq
			if i == len(es)-1 {
				to = through // and pass over what follows, not of the topics
			}
			ok, err := d.attempt(ctx, s, wh, keys, e, to, &failures)
			if err != nil || !ok {
				return err
			}
		}
	}
	return nil
}

// load reads the subscription under this instance's lease, its topics and
// signing keys.
func (d *Deliverer) load(ctx context.Context, s *sub) (*models.Webhook, models.Topics, [][]byte, error) {
	wh, err := d.st.LeasedWebhook(ctx, s.id, d.cfg.Owner)
	if err != nil {
		return nil, nil, nil, err
	}
	topics, err := models.ParseTopics(wh.Topics)
	if err != nil {
		return nil, nil, nil, err
	}
	keys, err := signingKeys(wh, d.cfg.Now())
	if err != nil {
		return nil, nil, nil, err
	}
	return wh, topics, keys, nil
}

// next returns the events after cursor to deliver next, as filter.pick
// does: from the tenant's tail when it holds the event after cursor and
// fromLog is false; else from the log (one head read, one event read),
// skipping events pruned before delivery. through == cursor and no change:
// nothing new.
func (d *Deliverer) next(ctx context.Context, s *sub, t *tail, cursor int64, f filter, fromLog bool) (es []*entry, through, change int64, err error) {
	if !fromLog {
		if es, through, change, ok := t.after(cursor, f); ok {
			return es, through, change, nil
		}
	}
	h, err := d.st.LogHead(ctx, s.tenantID)
	if err != nil {
		return nil, 0, 0, err
	}
	if cursor >= h.Seq {
		return nil, cursor, 0, nil
	}
	if cursor < h.PrunedThrough {
		return nil, h.PrunedThrough, 0, d.skipPruned(ctx, s, h)
	}
	// The "webhooks" topic too, whatever the subscription's: its own
	// changes are among them (pick drops the others it does not see).
	topics := f.topics
	if topics != nil && !topics[models.EntityWebhook] {
		topics = maps.Clone(topics)
		topics[models.EntityWebhook] = true
	}
	evs, err := d.st.ReadEvents(ctx, models.EventQuery{TenantID: s.tenantID, After: cursor, Until: h.Seq, Limit: batch, Topics: topics})
	if err != nil {
		return nil, 0, 0, err
	}
	end := h.Seq
	if len(evs) == batch {
		end = evs[len(evs)-1].Seq
	}
	all := make([]*entry, len(evs))
	for i := range evs {
		all[i] = &entry{ev: evs[i]}
	}
	es, through, change = f.pick(all, end)
	return es, through, change, nil
}

// skipPruned moves the cursor over events pruned before delivery (a
// subscription stalled longer than the retention), recorded, rather than
// stop forever. The successes before are saved first.
func (d *Deliverer) skipPruned(ctx context.Context, s *sub, h store.Head) error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	if err := d.saveLocked(ctx, s); err != nil {
		return err
	}
	s.mu.Lock()
	lost, from := s.lost, s.saved
	s.mu.Unlock()
	if lost {
		return store.ErrLeaseLost
	}
	now := d.cfg.Now()
	until := now.Add(d.cfg.Lease)
	err := d.st.SkipPrunedWebhook(ctx, store.Attempt{
		WebhookID: s.id, TenantID: s.tenantID, Owner: d.cfg.Owner, From: from, To: h.PrunedThrough, LeaseUntilMS: until.UnixMilli(),
		Delivery: models.WebhookDelivery{At: now.UTC(), FirstSeq: from + 1, LastSeq: h.PrunedThrough,
			Error: fmt.Sprintf("events %d to %d were pruned before delivery", from+1, h.PrunedThrough)},
	})
	d.Stats.add("skipped")
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.saved, s.acked, s.leaseUntil = h.PrunedThrough, h.PrunedThrough, until
	s.mu.Unlock()
	return nil
}

// leased makes sure the lease outlasts a request started now, renewing it
// (a save) if need be: errLeaseShort or ErrLeaseLost when it cannot.
func (d *Deliverer) leased(ctx context.Context, s *sub) error {
	s.mu.Lock()
	until := s.leaseUntil
	s.mu.Unlock()
	if d.cfg.Now().Add(d.cfg.Timeout).Before(until) {
		return nil
	}
	if err := d.save(ctx, s); err != nil {
		return err
	}
	s.mu.Lock()
	until, lost := s.leaseUntil, s.lost
	s.mu.Unlock()
	switch {
	case lost:
		return store.ErrLeaseLost
	case !d.cfg.Now().Add(d.cfg.Timeout).Before(until):
		return errLeaseShort
	}
	return nil
}

// pass moves the cursor over events the topics do not see.
func (s *sub) pass(through int64) {
	s.mu.Lock()
	s.acked = max(s.acked, through)
	s.mu.Unlock()
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

// attempt sends one event. A 2xx is kept in memory (the cursor moves to
// "to" at the next save); ok reports it. A failure is recorded at once,
// after the successes before it are saved: the failure count, the retry
// time, the lease released, or the subscription disabled.
func (d *Deliverer) attempt(ctx context.Context, s *sub, wh *models.Webhook, keys [][]byte, e *entry, to int64, failures *int) (ok bool, err error) {
	body, err := e.json()
	if err != nil {
		return false, fmt.Errorf("webhooks: encode event %d: %w", e.ev.Seq, err)
	}
	msgID := models.WebhookMessageID(wh.ID, e.ev.Seq)
	start := time.Now()
	status, result, errText := d.send(ctx, wh.URL, keys, msgID, body)
	if ctx.Err() != nil {
		return false, ctx.Err() // shutting down: nothing to record, the event goes out again
	}
	latency := time.Since(start)
	now := d.cfg.Now()
	d.Stats.add(result)
	if result == "success" {
		*failures = 0
		s.mu.Lock()
		s.acked = to
		s.oks.add(e.ev.Seq, status, latency, now)
		full := s.oks.n >= saveAfter
		s.mu.Unlock()
		if full {
			select {
			case d.saveNow <- struct{}{}:
			default:
			}
		}
		if d.Stats.Latency != nil {
			d.Stats.Latency(now.Sub(e.ev.At).Seconds())
		}
		return true, nil
	}
	*failures++
	at := store.Attempt{
		WebhookID: wh.ID, TenantID: wh.TenantID, Owner: d.cfg.Owner,
		Delivery: models.WebhookDelivery{At: now.UTC(), FirstSeq: e.ev.Seq, LastSeq: e.ev.Seq, Status: status, Result: result,
			LatencyMS: latency.Milliseconds(), Error: errText},
		NextAttemptMS: now.Add(models.WebhookBackoff(*failures, d.cfg.BackoffMin, d.cfg.BackoffMax)).UnixMilli(),
	}
	switch {
	case status == http.StatusGone:
		at.Disable = "the receiver answered 410 Gone"
	case *failures >= d.cfg.MaxFailures:
		at.Disable = fmt.Sprintf("%d consecutive failed deliveries (last: %s)", *failures, short(errText, 120))
	}
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	if err := d.saveLocked(ctx, s); err != nil {
		return false, err
	}
	s.mu.Lock()
	lost, from := s.lost, s.saved
	s.mu.Unlock()
	if lost {
		return false, store.ErrLeaseLost
	}
	at.From, at.To = from, from
	err = d.st.RecordAttempt(ctx, at)
	s.mu.Lock()
	switch {
	case err == nil:
		s.done = true // the failure released the lease
	case errors.Is(err, store.ErrLeaseLost):
		s.lost = true
	}
	s.mu.Unlock()
	return false, err
}
