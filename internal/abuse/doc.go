// Package abuse holds the benchmark of one tenant's caller misbehaving
// within its limits while another tenant works: the cost of every limit in
// issue 10 shows up here as the other tenant's write latency.
package abuse
