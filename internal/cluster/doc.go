// Package cluster holds the tests of several ClinicPulse instances sharing
// one Postgres database: cross-instance fan-out, an instance dying mid-stream,
// and the LISTEN connection being cut while writes go on.
package cluster
