//go:build race

package polling_test

// raceEnabled: the race detector slows every request 5–20 times; tests
// that make thousands of requests to show a bound make fewer under it.
const raceEnabled = true
