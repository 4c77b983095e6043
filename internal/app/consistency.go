package app

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/clinicpulse/clinicpulse/relay"
)

// DefaultWriteVisibilityTimeout bounds how long a write waits for its
// events to be dispatched before it is answered anyway.
const DefaultWriteVisibilityTimeout = 2 * time.Second

// readYourWrites is the api.Consistency of the instance: a write is
// answered once the relay has handed its last event to the poll heads,
// ETags and streams, so every read on this instance after the answer
// reflects it (issue 11 item 5). The wait is bounded; past the bound the
// write is answered (it is committed), logged and counted.
type readYourWrites struct {
	relay    *relay.Relay
	timeout  time.Duration
	logger   *slog.Logger
	timeouts atomic.Int64
}

// AwaitDispatched implements api.Consistency.
func (r *readYourWrites) AwaitDispatched(ctx context.Context, tenantID string, seq int64) error {
	wctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err := r.relay.AwaitDispatched(wctx, tenantID, seq)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		r.timeouts.Add(1)
		r.logger.Warn("write answered before its events were dispatched; reads on this instance may not show it yet",
			"seq", seq, "timeout", r.timeout)
	}
	return err
}

// mountConsistency builds the write wait (nil when disabled), and counts its
// timeouts in clinicpulse_write_visibility_timeouts_total.
func (a *App) mountConsistency() *readYourWrites {
	if a.Config.WriteVisibilityTimeout < 0 {
		return nil
	}
	r := &readYourWrites{relay: a.Relay, timeout: a.Config.WriteVisibilityTimeout, logger: a.Logger}
	a.Metrics.Counter("clinicpulse_write_visibility_timeouts_total",
		"Writes answered before their events were dispatched on this instance (WRITE_VISIBILITY_TIMEOUT passed).",
		func() float64 { return float64(r.timeouts.Load()) })
	return r
}
