// Package bench measures what the gateway costs: the latency it adds to
// requests against the same simulated backend reached directly, its CPU time
// per request and its memory, the highest request rate it sustains, and how
// well each routing strategy spreads streaming load over GPU servers of
// different speed and capacity.
//
// The gateway runs as a child process (the maasgate binary itself, or any
// OpenAI-compatible gateway given by URL), so its CPU time and peak resident
// memory are read from /proc apart from the load generator's. Load is
// open-loop at a fixed rate (vegeta): requests start on schedule whatever the
// responses do, so a slow gateway cannot hide its latency by slowing the
// senders. Direct and gateway runs are interleaved in short slices of the
// same run, and the report gives differences of percentiles, because a
// shared two-core machine drifts more between runs than the gateway costs.
package bench
