//go:build race

package sse_test

// raceEnabled: the race detector slows everything 5–20 times; time
// bounds that prove a property (not a speed) widen with it.
const raceEnabled = true
