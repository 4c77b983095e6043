// Package sse serves each tenant's change log as a Server-Sent Events stream
// (GET /api/v1/stream; CONTRACT.md, "Push"), mints the single-use tickets
// a browser's EventSource authenticates with (POST /api/v1/stream/tickets),
// and wraps a Go client for the `clinicpulse tail` command and the tests.
//
// # The server side is ours
//
// The design named github.com/r3labs/sse/v2. We read v2.10.0 (its last
// release, January 2023; every pull request since is unmerged) and tested
// it on loopback. Its server cannot carry the contract:
//   - fan-out is a blocking send inside one goroutine per stream: one tablet
//     that stops reading freezes the stream for the whole clinic (the healthy
//     client stopped at event 407, Publish blocked at 1,431);
//   - with its default AutoReplay it overwrites event ids with its own
//     in-memory index, replays id >= Last-Event-ID (the last one twice), keeps
//     an unbounded log and sends a new client the whole log; a non-integer
//     Last-Event-ID answers 400, which stops a browser's EventSource for good;
//   - an event with empty data ends every handler on the stream; a bare \r
//     inside data injects fields (id:, event:); data starting with ':'
//     becomes a comment;
//   - it has no heartbeat, no per-subscriber filtering, no X-Accel-Buffering,
//     and RemoveStream/Close leak a goroutine per subscriber; registration
//     happens inside ServeHTTP, so replaying from our database before it
//     leaves a gap.
//
// We also measured github.com/tmaxmax/go-sse v0.11.0: its encoding is
// correct, but its provider (Joe) writes to subscribers one after another in
// one goroutine, so one stalled reader blocked Publish for the whole test and
// Shutdown timed out; replay runs inside that loop too; headers go out only
// with the first event; a panic on flush inside its goroutine crashed the
// process.
//
// So the server is this package's own small hub and handler, and no SSE
// library runs on the server. r3labs/sse/v2 stays where it is sound: its
// client, wrapped by Follow (it resends Last-Event-ID, but on its own it never
// reconnects after a clean end of the response, gives up 15 minutes after its
// first connect, ignores the context while it backs off, and delivers
// heartbeats as empty events).
//
// # How a stream works
//
// Hub is the relay's sink. The relay publishes each tenant's events in seq
// order, without gaps, each once (relay.Relay); Publish encodes a batch's
// frames once and links the batch after the tenant's previous one. The
// tenant's batches form one chain and a subscriber is a pointer into it:
// nothing is queued per subscriber, and publishing never waits on a client.
// A subscriber more than Buffer batches behind is dropped and its connection
// ended, even a write blocked on a client that stopped reading; the client
// resumes from its cursor.
//
// A stream registers with the hub inside relay.Sync, which gives the last
// seq dispatched while no batch of that tenant is in flight. It replays from
// the client's cursor up to that seq, then takes the batches after its place
// in the chain, skipping seqs it has passed: every event once, in order. The
// replay comes from the hub's memory of the tenant's last batches (up to
// 2,048 events or 1 MiB, frames already encoded) when the cursor is that
// recent, the usual case after a cut, a deploy or a time limit; otherwise
// from the log, in pages, with the scope and topics filtered in SQL. Then,
// unless its last frame says it already, the stream gives the client its
// position: "id: <seq>" and a blank line, which sets the last event ID
// without dispatching an event (WHATWG HTML §9.2.6). Every seq up to it
// has been sent or is not for this stream, so a client that has seen no
// event (no cursor, or a replay its scope filtered) resumes from it
// without a gap; a client that ignores such a frame (the npm eventsource
// package before 5.x does) loses nothing it had before.
//
// A cursor older than retention, ahead of the log (a restored database), or
// not a number gets an "event: reset" frame instead (data:
// {"reason","cursor"}, id: the cursor the stream goes on from), never an
// error status, which would stop EventSource. When the relay jumps a hole
// the log pruned before it was dispatched (Skip), the tenant's streams end
// and the hub forgets its memory, so that every client resumes through that
// check.
//
// A tenant's state in the hub (its chain's tail, recent batches and
// audience record) exists only while the tenant has streams, and for
// IdleTenant after the last one left, for clients that come back after a
// cut or a deploy; then the clock's sweep evicts it. A tenant nobody
// follows costs nothing: Publish to it is a map lookup. A stream that
// subscribes while its tenant is being evicted finds the audience marked
// and starts a new one; it subscribes inside relay.Sync, so no batch falls
// between the two.
//
// An HTTP/1.x stream on plain TCP is taken over from net/http once its
// headers are decided: the connection is hijacked, the status line and
// headers are written here (Connection: close; the body is the frames until
// the stream closes the connection), and after the replay the request's
// goroutine returns, so net/http frees its per-connection buffers. From
// then on the stream has no goroutine that writes: one writer goroutine per
// shard (writer.go), woken by Publish, walks its streams of the tenant and
// writes each one's new frames in one non-blocking write(2); only a socket
// whose buffer is full gets a goroutine, until it drains or the write
// deadline passes. The connection's one goroutine is blocked in a one-byte
// read, which tells at once when the client closes its side. An idle
// stream is that goroutine's small stack and a few hundred bytes.
// Streams over TLS or HTTP/2 write on their own goroutine, woken by Publish,
// through http.ResponseController with a write deadline per write (the
// server has no WriteTimeout, which would cut every stream).
// No timer per connection: one clock goroutine per hub beats the shards in
// turn, for heartbeats and STREAM_MAX_DURATION.
//
// Frames are "id: <seq>", "event: <type>", "data: <envelope on one line>";
// AppendFrame guarantees that no CR or LF in a value can break them
// (FuzzFrame). Role scoping is applied to every event at delivery and in the
// replay's SQL: staff see their tenant, a patient only events about their own
// records plus the anonymous board, a display only the board; ?topics=
// narrows further. Display and patient audiences never learn who made a
// change: their envelopes carry actor "" (models.Scope.ForAudience), live
// and replayed alike. A batch's redacted frames are encoded the first
// time such a stream takes it, so a tenant followed by staff only pays
// for one encoding, as before.
//
// Before a byte of a stream is written, the caller's verified identity
// (limits.IdentityOf: tenant and subject, never the spelling of a header)
// must hold fewer streams than its role's bound and its tenant fewer than
// the tenant's, and its stream opens (and, separately, ticket mints) stay
// within a per-identity rate (Limits); otherwise 429 problem+json with
// Retry-After. HEAD answers a stream's status and headers and nothing
// else: no hijack, no subscription, no hold. Once the stream owns its
// connection, the server's ReadTimeout (meant for request headers and
// bodies) is lifted from it, so an idle stream lives as long as it is
// wanted.
//
// Never mount gzip, timeout or body-dump middleware on the stream route:
// each one buffers, cuts or copies a response that never ends.
package sse
