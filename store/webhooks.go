package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"gorm.io/gorm"
)

// Webhook subscriptions (issue 15). The subscription records are written
// like the resources, through write: every change appends its
// "webhooks.*" event in the same transaction (the record's JSON holds no
// secret). The deliverer's state (cursor, failures, lease) moves outside
// the log, in plain transactions that check the lease.

// webhookAdmin checks that the caller administers the tenant's webhooks:
// an admin of the tenant, or a platform operator naming it.
func webhookAdmin(ctx context.Context) (models.Actor, error) {
	a, ok := models.ActorFromContext(ctx)
	if !ok || a.TenantID == "" {
		return a, models.Errorf(models.EUNAUTHORIZED, "no tenant")
	}
	if a.Role != models.RoleAdmin && a.Role != models.RolePlatform {
		return a, models.Errorf(models.EFORBIDDEN, "webhooks are managed by the tenant's admins and platform operators")
	}
	return a, nil
}

// DeliveryActor is the actor of the changes the deliverer makes itself
// (disabling a failing subscription): the log names it as the event's actor.
const DeliveryActor = "system:webhooks"

// CreateWebhook saves a new subscription (wh.URL, wh.Topics, wh.Enabled,
// wh.Secret set by the caller) with its "webhooks.created" event. Its
// cursor is the seq before that event: it delivers everything committed
// after it, its own creation first (if its topics include "webhooks").
// A tenant has at most models.MaxWebhooksPerTenant subscriptions (ECONFLICT
// beyond).
func (s *Store) CreateWebhook(ctx context.Context, wh *models.Webhook) error {
	if _, err := webhookAdmin(ctx); err != nil {
		return err
	}
	created := false
	body, err := s.write(ctx, "create webhook", func(w *writer) (models.Record, error) {
		created = true
		var n int64
		if err := w.tx.Model(&models.Webhook{}).Where("tenant_id = ?", w.actor.TenantID).Count(&n).Error; err != nil {
			return nil, fmt.Errorf("count webhooks: %w", err)
		}
		if n >= models.MaxWebhooksPerTenant {
			return nil, models.Errorf(models.ECONFLICT, "a tenant has at most %d webhook subscriptions", models.MaxWebhooksPerTenant)
		}
		wh.ID = ""
		wh.Touch(w.actor.TenantID, models.IDPrefix(models.EntityWebhook), w.now)
		wh.TopicList = models.TopicsOf(wh.Topics)
		if err := w.tx.Create(wh).Error; err != nil {
			return nil, fmt.Errorf("create webhook: %w", err)
		}
		w.emit(wh.ForLog(), models.OpCreated)
		w.onSeqs = append(w.onSeqs, func(before int64) error {
			wh.Cursor = before
			return w.tx.Model(&models.Webhook{}).Where("id = ?", wh.ID).Update("delivered_seq", before).Error
		})
		// The stored answer of an Idempotency-Key names the subscription
		// (its JSON has no secret).
		return wh, nil
	})
	if err != nil || created {
		return err
	}
	// A repeated Idempotency-Key: the subscription the first request made,
	// as it is now (its secret the one that signs).
	return s.replayedWebhook(ctx, body, wh)
}

// replayedWebhook fills wh with the subscription named by the stored
// answer of a repeated Idempotency-Key, as it is now (ENOTFOUND if it has
// been deleted since).
func (s *Store) replayedWebhook(ctx context.Context, body json.RawMessage, wh *models.Webhook) error {
	var first struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &first); err != nil || first.ID == "" {
		return fmt.Errorf("webhook: the stored answer of the Idempotency-Key names no subscription")
	}
	a, _ := models.ActorFromContext(ctx)
	now, err := s.findWebhook(ctx, s.db.WithContext(ctx), a.TenantID, first.ID)
	if err != nil {
		return err
	}
	*wh = *now
	return nil
}

// FindWebhook returns the tenant's subscription, ENOTFOUND when it has
// none of that id.
func (s *Store) FindWebhook(ctx context.Context, id string) (*models.Webhook, error) {
	a, err := webhookAdmin(ctx)
	if err != nil {
		return nil, err
	}
	return s.findWebhook(ctx, s.db.WithContext(ctx), a.TenantID, id)
}

func (s *Store) findWebhook(ctx context.Context, tx *gorm.DB, tenantID, id string) (*models.Webhook, error) {
	if !models.ValidID(models.EntityWebhook, id) {
		return nil, models.NotFound("webhook")
	}
	var wh models.Webhook
	err := tx.Where("tenant_id = ? AND id = ?", tenantID, id).Take(&wh).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, models.NotFound("webhook")
	}
	if err != nil {
		return nil, s.wrap(ctx, "find webhook", err)
	}
	wh.TopicList = models.TopicsOf(wh.Topics)
	return &wh, nil
}

// ListWebhooks returns the tenant's subscriptions (at most
// models.MaxWebhooksPerTenant), oldest first.
func (s *Store) ListWebhooks(ctx context.Context) ([]*models.Webhook, error) {
	a, err := webhookAdmin(ctx)
	if err != nil {
		return nil, err
	}
	out := []*models.Webhook{}
	if err := s.db.WithContext(ctx).Where("tenant_id = ?", a.TenantID).Order("created_at, id").Find(&out).Error; err != nil {
		return nil, s.wrap(ctx, "list webhooks", err)
	}
	for _, wh := range out {
		wh.TopicList = models.TopicsOf(wh.Topics)
	}
	return out, nil
}

// UpdateWebhook applies change to the subscription under its row lock and
// saves it with a "webhooks.updated" event. ifMatch > 0 requires its
// version (EPRECONDITION otherwise). change sees the clock of the write.
func (s *Store) UpdateWebhook(ctx context.Context, id string, ifMatch int64, change func(wh *models.Webhook, now time.Time) error) (*models.Webhook, error) {
	if _, err := webhookAdmin(ctx); err != nil {
		return nil, err
	}
	var out *models.Webhook
	body, err := s.write(ctx, "update webhook", func(w *writer) (models.Record, error) {
		wh, err := w.loadWebhook(id, ifMatch)
		if err != nil {
			return nil, err
		}
		if err := change(wh, w.now); err != nil {
			return nil, err
		}
		if err := w.saveWebhook(wh); err != nil {
			return nil, err
		}
		out = wh
		return wh, nil
	})
	if err != nil || out != nil {
		return out, err
	}
	// A repeated Idempotency-Key (a retried PATCH or rotate): the
	// subscription as it is now, changed once.
	out = &models.Webhook{}
	return out, s.replayedWebhook(ctx, body, out)
}

func (w *writer) loadWebhook(id string, ifMatch int64) (*models.Webhook, error) {
	if !models.ValidID(models.EntityWebhook, id) {
		return nil, models.NotFound("webhook")
	}
	var wh models.Webhook
	if err := w.lockQuery(w.tx.Where("tenant_id = ? AND id = ?", w.actor.TenantID, id)).Take(&wh).Error; err != nil {
		return nil, notFound(err, models.EntityWebhook)
	}
	if ifMatch > 0 && wh.Version != ifMatch {
		return nil, models.Errorf(models.EPRECONDITION, "webhook is at version %d, not %d", wh.Version, ifMatch)
	}
	return &wh, nil
}

func (w *writer) saveWebhook(wh *models.Webhook) error {
	wh.Touch(w.actor.TenantID, "", w.now)
	wh.TopicList = models.TopicsOf(wh.Topics)
	if err := w.tx.Save(wh).Error; err != nil {
		return fmt.Errorf("save webhook: %w", err)
	}
	w.emit(wh.ForLog(), models.OpUpdated)
	return nil
}

// DeleteWebhook removes the subscription and its delivery records, with a
// "webhooks.deleted" event. Delivery stops: an attempt in flight cannot
// record its result.
func (s *Store) DeleteWebhook(ctx context.Context, id string, ifMatch int64) error {
	if _, err := webhookAdmin(ctx); err != nil {
		return err
	}
	_, err := s.write(ctx, "delete webhook", func(w *writer) (models.Record, error) {
		wh, err := w.loadWebhook(id, ifMatch)
		if err != nil {
			return nil, err
		}
		if err := w.tx.Where("id = ?", wh.ID).Delete(&models.Webhook{}).Error; err != nil {
			return nil, fmt.Errorf("delete webhook: %w", err)
		}
		if err := w.tx.Where("webhook_id = ?", wh.ID).Delete(&models.WebhookDelivery{}).Error; err != nil {
			return nil, fmt.Errorf("delete webhook deliveries: %w", err)
		}
		wh.Touch(w.actor.TenantID, "", w.now)
		w.emit(wh.ForLog(), models.OpDeleted)
		return nil, nil
	})
	return err
}

// ReplayWebhook moves the subscription's cursor back (or forward) to since:
// the events after it are delivered again, with the same webhook-ids. A
// since before the retained log or after its head is EGONE (410). The
// failure count is cleared; the move is not an event of the log.
func (s *Store) ReplayWebhook(ctx context.Context, id string, since int64) (*models.Webhook, error) {
	a, err := webhookAdmin(ctx)
	if err != nil {
		return nil, err
	}
	var out *models.Webhook
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		wh, err := s.findWebhook(ctx, tx, a.TenantID, id)
		if err != nil {
			return err
		}
		h, err := headOf(tx, a.TenantID)
		if err != nil {
			return err
		}
		if since < h.PrunedThrough || since > h.Seq {
			return cursorExpired(since, h)
		}
		if err := tx.Model(&models.Webhook{}).Where("id = ?", wh.ID).
			Updates(map[string]any{"delivered_seq": since, "failures": 0, "next_attempt_ms": 0}).Error; err != nil {
			return fmt.Errorf("replay webhook: %w", err)
		}
		wh.Cursor, wh.Failures, wh.NextAttemptMS = since, 0, 0
		out = wh
		return nil
	})
	return out, s.wrap(ctx, "replay webhook", err)
}

// WebhookDeliveries returns the subscription's most recent attempts,
// newest first, at most limit.
func (s *Store) WebhookDeliveries(ctx context.Context, id string, limit int) ([]models.WebhookDelivery, error) {
	a, err := webhookAdmin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := s.findWebhook(ctx, s.db.WithContext(ctx), a.TenantID, id); err != nil {
		return nil, err
	}
	out := []models.WebhookDelivery{}
	if err := s.db.WithContext(ctx).Where("webhook_id = ?", id).Order("id DESC").Limit(limit).Find(&out).Error; err != nil {
		return nil, s.wrap(ctx, "webhook deliveries", err)
	}
	for i := range out {
		out[i].At = out[i].At.UTC()
		if out[i].FirstSeq > 0 && out[i].FirstSeq == out[i].LastSeq {
			out[i].MessageID = models.WebhookMessageID(id, out[i].FirstSeq)
		}
	}
	return out, nil
}

// PendingWebhook is an enabled subscription with events after its cursor,
// as the deliverer's scan sees it.
type PendingWebhook struct {
	ID            string
	TenantID      string
	Cursor        int64 `gorm:"column:delivered_seq"`
	Head          int64
	Failures      int
	NextAttemptMS int64
	LeaseOwner    string
	LeaseUntilMS  int64
}

// PendingWebhooks returns every enabled subscription whose cursor is
// behind its tenant's head.
func (s *Store) PendingWebhooks(ctx context.Context) ([]PendingWebhook, error) {
	var out []PendingWebhook
	err := s.db.WithContext(ctx).Raw(`SELECT w.id, w.tenant_id, w.delivered_seq, h.seq AS head, w.failures, w.next_attempt_ms, w.lease_owner, w.lease_until_ms
FROM webhooks w JOIN tenant_heads h ON h.tenant_id = w.tenant_id
WHERE w.enabled = ? AND w.delivered_seq < h.seq`, true).Scan(&out).Error
	return out, s.wrap(ctx, "pending webhooks", err)
}

// ErrLeaseLost is returned when a subscription's lease was taken by
// another instance (or the subscription changed under it: replayed,
// disabled, deleted): the caller stops delivering it.
var ErrLeaseLost = errors.New("store: webhook lease lost")

// AcquireWebhooks takes (or renews) the leases of the subscriptions ids
// for owner until untilMS (unix ms), each if it is enabled and free
// (expired at nowMS) or owner's already, and returns the ids it took. One
// statement, so two instances never both hold one.
func (s *Store) AcquireWebhooks(ctx context.Context, ids []string, owner string, nowMS, untilMS int64) ([]string, error) {
	got := []string{}
	if len(ids) == 0 {
		return got, nil
	}
	err := s.db.WithContext(ctx).Raw(`UPDATE webhooks SET lease_owner = ?, lease_until_ms = ?
WHERE id IN ? AND enabled = ? AND (lease_until_ms < ? OR lease_owner = ?) RETURNING id`, owner, untilMS, ids, true, nowMS, owner).Scan(&got).Error
	return got, s.wrap(ctx, "acquire webhooks", err)
}

// ReleaseWebhook gives up owner's lease on the subscription (if it still
// holds it), so another instance may take it at once.
func (s *Store) ReleaseWebhook(ctx context.Context, id, owner string) error {
	err := s.db.WithContext(ctx).Exec(`UPDATE webhooks SET lease_owner = '', lease_until_ms = 0 WHERE id = ? AND lease_owner = ?`, id, owner).Error
	return s.wrap(ctx, "release webhook", err)
}

// LeasedWebhook reads the subscription owner holds: ErrLeaseLost when it
// is gone, disabled or leased to another.
func (s *Store) LeasedWebhook(ctx context.Context, id, owner string) (*models.Webhook, error) {
	var wh models.Webhook
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&wh).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrLeaseLost
	}
	if err != nil {
		return nil, s.wrap(ctx, "leased webhook", err)
	}
	if !wh.Enabled || wh.LeaseOwner != owner {
		return nil, ErrLeaseLost
	}
	return &wh, nil
}

// Attempt is the outcome of one delivery, recorded by RecordAttempt.
type Attempt struct {
	WebhookID, TenantID, Owner string
	// From is the cursor the attempt was made at; the record is refused
	// (ErrLeaseLost) if the subscription's cursor moved meanwhile (a
	// replay) or its lease is another's.
	From     int64
	Delivery models.WebhookDelivery
	// Delivery is not recorded when its Result is "" (the cursor passes
	// over events the topics do not see).
	// OK advances the cursor to Delivery.LastSeq (or To, when larger:
	// events after it the topics do not see), clears the failures and
	// renews the lease until LeaseUntilMS.
	OK           bool
	To           int64
	LeaseUntilMS int64
	// On failure: NextAttemptMS is when to try again; the lease is
	// released. Disable, when not "", disables the subscription with that
	// reason and a "webhooks.updated" event.
	NextAttemptMS int64
	Disable       string
}

// keepDeliveries is how many delivery records a subscription keeps; a
// record whose id is a multiple of trimEvery drops its subscription's
// older ones (ids are shared by every subscription: each is trimmed about
// once in trimEvery of its records).
const (
	keepDeliveries = 500
	trimEvery      = 64
)

// trimDeliveries drops the subscription's records older than its
// keepDeliveries newest.
func trimDeliveries(tx *gorm.DB, webhookID string) error {
	err := tx.Exec(`DELETE FROM webhook_deliveries WHERE webhook_id = ? AND id <= (
SELECT id FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`, webhookID, webhookID, keepDeliveries).Error
	if err != nil {
		return fmt.Errorf("trim deliveries: %w", err)
	}
	return nil
}

// RecordAttempt records a delivery attempt and moves the subscription's
// state in one transaction: the cursor advances only with a success's
// record. A disabling failure goes through the log (its event).
func (s *Store) RecordAttempt(ctx context.Context, at Attempt) error {
	d := at.Delivery
	d.WebhookID, d.TenantID = at.WebhookID, at.TenantID
	if len(d.Error) > models.MaxWebhookError {
		d.Error = truncateUTF8(d.Error, models.MaxWebhookError)
	}
	apply := func(tx *gorm.DB) error {
		var res *gorm.DB
		switch {
		case at.OK:
			to := max(at.To, d.LastSeq)
			res = tx.Exec(`UPDATE webhooks SET delivered_seq = ?, failures = 0, next_attempt_ms = 0, lease_until_ms = ?
WHERE id = ? AND lease_owner = ? AND delivered_seq = ? AND enabled = ?`, to, at.LeaseUntilMS, at.WebhookID, at.Owner, at.From, true)
		default:
			res = tx.Exec(`UPDATE webhooks SET failures = failures + 1, next_attempt_ms = ?, lease_owner = '', lease_until_ms = 0
WHERE id = ? AND lease_owner = ? AND delivered_seq = ? AND enabled = ?`, at.NextAttemptMS, at.WebhookID, at.Owner, at.From, true)
		}
		if res.Error != nil {
			return fmt.Errorf("record attempt: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return ErrLeaseLost
		}
		if d.Result == "" {
			return nil // passing over events the topics do not see: nothing to record
		}
		if err := tx.Create(&d).Error; err != nil {
			return fmt.Errorf("record delivery: %w", err)
		}
		if d.ID%trimEvery == 0 {
			return trimDeliveries(tx, at.WebhookID)
		}
		return nil
	}
	if at.Disable == "" {
		err := s.db.WithContext(ctx).Transaction(apply)
		if errors.Is(err, ErrLeaseLost) {
			return err
		}
		return s.wrap(ctx, "record attempt", err)
	}
	actx := models.NewContextWithActor(ctx, models.Actor{Subject: DeliveryActor, TenantID: at.TenantID, Role: models.RolePlatform})
	_, err := s.write(actx, "disable webhook", func(w *writer) (models.Record, error) {
		if err := apply(w.tx); err != nil {
			return nil, err
		}
		wh, err := w.loadWebhook(at.WebhookID, 0)
		if err != nil {
			return nil, err
		}
		wh.Enabled, wh.DisabledReason = false, at.Disable
		wh.LeaseOwner, wh.LeaseUntilMS = "", 0
		return nil, w.saveWebhook(wh)
	})
	if errors.Is(err, ErrLeaseLost) {
		return err
	}
	return err
}

// WebhookProgress is what a deliverer did with a subscription it leases
// since it last saved it; SaveWebhookProgress saves several in one
// transaction.
type WebhookProgress struct {
	WebhookID, TenantID string
	// From is the cursor as the deliverer last saved (or read) it: nothing
	// of this progress is saved (Lost) if the row's cursor is another (a
	// replay moved it), or the subscription is disabled, deleted or
	// leased to another.
	From int64
	// To (>= From) is the new cursor: the last seq the receiver answered
	// with a 2xx, or passed over (not of the topics). To > From clears the
	// failures and the retry time.
	To int64
	// LeaseUntilMS renews the lease until then (unix ms); 0 releases it.
	LeaseUntilMS int64
	// Deliveries are the records to add (a summary of the successes).
	Deliveries []models.WebhookDelivery
}

// ProgressResult is how one WebhookProgress was saved.
type ProgressResult struct {
	// Lost: the row was not the deliverer's to move (see
	// WebhookProgress.From); nothing of it was saved.
	Lost bool
	// Version is the subscription's version after the save: when it
	// changed, its URL, topics or secrets may have.
	Version int64
}

// SaveWebhookProgress saves the progress of owner's subscriptions in one
// transaction (a statement per subscription, in id order, and one insert
// of the records), and returns a result for each, in the order of ps. A
// lost subscription does not stop the others'; an error saves nothing.
func (s *Store) SaveWebhookProgress(ctx context.Context, owner string, ps []WebhookProgress) ([]ProgressResult, error) {
	out := make([]ProgressResult, len(ps))
	order := make([]int, len(ps))
	for i := range order {
		order[i] = i
	}
	// Rows are locked in id order, as every instance does: no deadlock.
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(ps[a].WebhookID, ps[b].WebhookID) })
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var rows []models.WebhookDelivery
		for _, i := range order {
			p := ps[i]
			newOwner := owner
			if p.LeaseUntilMS == 0 {
				newOwner = ""
			}
			set := "lease_owner = ?, lease_until_ms = ?"
			args := []any{newOwner, p.LeaseUntilMS}
			if p.To > p.From {
				set = "delivered_seq = ?, failures = 0, next_attempt_ms = 0, " + set
				args = append([]any{p.To}, args...)
			}
			var version []int64
			err := tx.Raw(`UPDATE webhooks SET `+set+` WHERE id = ? AND lease_owner = ? AND delivered_seq = ? AND enabled = ? RETURNING version`,
				append(args, p.WebhookID, owner, p.From, true)...).Scan(&version).Error
			if err != nil {
				return fmt.Errorf("save webhook progress: %w", err)
			}
			if len(version) != 1 {
				out[i].Lost = true
				continue
			}
			out[i].Version = version[0]
			for _, d := range p.Deliveries {
				d.WebhookID, d.TenantID = p.WebhookID, p.TenantID
				d.Error = truncateUTF8(d.Error, models.MaxWebhookError)
				rows = append(rows, d)
			}
		}
		if len(rows) == 0 {
			return nil
		}
		if err := tx.Create(&rows).Error; err != nil {
			return fmt.Errorf("record deliveries: %w", err)
		}
		for _, d := range rows {
			if d.ID%trimEvery == 0 {
				if err := trimDeliveries(tx, d.WebhookID); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(ctx, "save webhook progress", err)
	}
	return out, nil
}

// SkipPrunedWebhook moves a subscription whose cursor fell behind the
// retained log to the log's pruned seq, recording the skip.
func (s *Store) SkipPrunedWebhook(ctx context.Context, at Attempt) error {
	at.OK = true
	at.Delivery.Result = "skipped"
	return s.RecordAttempt(ctx, at)
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
