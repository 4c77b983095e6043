package app

import (
	"context"
	"net/url"
	"sync"

	"github.com/clinicpulse/clinicpulse/pglisten"
	"github.com/clinicpulse/clinicpulse/store"
)

// mountListener prepares the cross-instance LISTEN path. The listener has
// no routes: it starts with the background work (startListener).
func (a *App) mountListener() {
	if a.Store.Dialect() != store.Postgres {
		return
	}
	l, err := pglisten.New(pglisten.Config{
		URL:             a.Config.DatabaseURL,
		Channel:         store.NotifyChannel,
		ApplicationName: listenerName(a.Config.DatabaseURL),
		// Notifications of another schema of the same database (channels
		// are database-wide) name tenants of that schema: the relay reads
		// this schema's log, finds nothing new, and moves on.
		OnNotify:  a.Relay.Nudge,
		OnConnect: a.catchUp,
		Logger:    a.Logger,
	})
	if err != nil {
		// The store opened this URL, so this does not happen; if it did,
		// the relay's safety-net scan would still deliver, only slower.
		a.Logger.Error("pglisten: not started", "err", err)
		return
	}
	a.Listener = l
}

// startListener follows the store's NOTIFY channel on Postgres, so that a
// write committed by any instance nudges this instance's relay, which then
// reads the new events from the log. On SQLite (one instance) the store's
// in-process OnCommit nudge is the whole path. The listener stops when ctx
// ends; wg waits for it.
func (a *App) startListener(ctx context.Context, wg *sync.WaitGroup) {
	if a.Listener == nil {
		return
	}
	wg.Add(1)
	go func() { defer wg.Done(); a.Listener.Run(ctx) }()
}

// catchUp nudges the relay with every tenant's head after the listener
// (re)connects: notifications sent while it was away are lost, the log is not.
func (a *App) catchUp(ctx context.Context) error {
	heads, err := a.Store.Heads(ctx)
	if err != nil {
		return err
	}
	for tenant, head := range heads {
		a.Relay.Nudge(tenant, head)
	}
	return nil
}

// listenerName names the listener's connection in pg_stat_activity: the
// DATABASE_URL's application_name, or "clinicpulse", with "-listener".
func listenerName(databaseURL string) string {
	name := "clinicpulse"
	if u, err := url.Parse(databaseURL); err == nil {
		if n := u.Query().Get("application_name"); n != "" {
			name = n
		}
	}
	return name + "-listener"
}
