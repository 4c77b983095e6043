package models

import "context"

// WritePosition is where a write left the tenant's change log: Seq is the
// seq of the last event the write appended — or, for a write that appended
// none (an Idempotency-Key replay, a change that changed nothing), the
// tenant's head when it answered, which is at or after the write's own
// events. A read at a cursor ≥ Seq reflects the write.
type WritePosition struct {
	Seq int64
}

type writePositionKey struct{}

// NewContextWithWritePosition returns a context whose writes fill in p once
// they commit.
func NewContextWithWritePosition(ctx context.Context, p *WritePosition) context.Context {
	return context.WithValue(ctx, writePositionKey{}, p)
}

// WritePositionFromContext returns the position a write should fill in.
func WritePositionFromContext(ctx context.Context) (*WritePosition, bool) {
	p, ok := ctx.Value(writePositionKey{}).(*WritePosition)
	return p, ok && p != nil
}
