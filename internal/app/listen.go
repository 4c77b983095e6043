package app

import (
	"context"
	"sync"
)

// mountListener prepares the cross-instance LISTEN path (owned by the
// scale-out work).
func (a *App) mountListener() {}

// startListener starts the LISTEN loop on Postgres.
func (a *App) startListener(ctx context.Context, wg *sync.WaitGroup) {}
