//go:build !race

package polling_test

const raceEnabled = false
