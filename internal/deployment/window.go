package deployment

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// minuteCount is a per-minute counter packed into one word (the minute in
// the high bits, the count in the low 40), so adding to it and rolling over
// to a new minute is a single compare-and-swap: exact, lock-free, no timer.
type minuteCount struct{ v atomic.Uint64 }

const (
	countBits = 40
	countMask = 1<<countBits - 1
)

func minuteOf(now int64) uint64 { return uint64(now/int64(time.Minute)) & (1<<(64-countBits) - 1) }

// add adds n in the minute of now and returns the minute's new total.
func (c *minuteCount) add(now, n int64) int64 {
	m := minuteOf(now)
	for {
		old := c.v.Load()
		cnt := uint64(0)
		if old>>countBits == m {
			cnt = old & countMask
		}
		cnt = min(cnt+uint64(max(n, 0)), countMask)
		if c.v.CompareAndSwap(old, m<<countBits|cnt) {
			return int64(cnt)
		}
	}
}

// load returns the count of the minute of now.
func (c *minuteCount) load(now int64) int64 {
	v := c.v.Load()
	if v>>countBits != minuteOf(now) {
		return 0
	}
	return int64(v & countMask)
}

// failWindow counts requests and failures of the current minute in one
// word: 20 bits of minute, 22 of requests, 22 of failures.
type failWindow struct{ v atomic.Uint64 }

const (
	fwBits = 22
	fwMask = 1<<fwBits - 1
)

// record counts one request, a failure if failed, and returns the minute's
// totals.
func (w *failWindow) record(now int64, failed bool) (requests, failures int64) {
	m := uint64(now/int64(time.Minute)) & (1<<(64-2*fwBits) - 1)
	for {
		old := w.v.Load()
		var reqs, fails uint64
		if old>>(2*fwBits) == m {
			reqs, fails = old>>fwBits&fwMask, old&fwMask
		}
		reqs = min(reqs+1, fwMask)
		if failed {
			fails = min(fails+1, fwMask)
		}
		if w.v.CompareAndSwap(old, m<<(2*fwBits)|reqs<<fwBits|fails) {
			return int64(reqs), int64(fails)
		}
	}
}

func (w *failWindow) reset() { w.v.Store(0) }

// latencyWindow keeps the last few latency samples (seconds per output
// token, or seconds to the first token for streams), for latency-based
// routing. A latency-based pick reads the mean of every deployment of the
// tier, while a sample arrives once per response, so the mean is worked
// out when a sample arrives and published in one word: reading it is one
// atomic load. Writers take a mutex, so the published mean is always that
// of the samples held, never of an older set; readers take no lock. The
// mean is summed afresh from the samples (ten additions) rather than kept
// as a running sum, which would drift from the true mean by rounding.
type latencyWindow struct {
	mu      sync.Mutex
	samples [latencySamples]float64 // filled from index 0, then a ring
	next    int                     // where the next sample goes
	n       int                     // samples held

	mean  atomic.Uint64 // float64 bits of the samples' mean; 0 before the first
	count atomic.Int64  // samples held, for readers
}

const latencySamples = 10

func (l *latencyWindow) observe(v float64) {
	if v <= 0 {
		// Keeps the published mean above zero, which marks a deployment
		// that has answered.
		v = math.SmallestNonzeroFloat64
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.samples[l.next] = v
	l.next = (l.next + 1) % latencySamples
	l.n = min(l.n+1, latencySamples)
	var sum float64
	for _, s := range l.samples[:l.n] {
		sum += s
	}
	// The count first, so a reader that sees a mean never sees a count
	// of 0.
	l.count.Store(int64(l.n))
	l.mean.Store(math.Float64bits(sum / float64(l.n)))
}

// load returns the mean of the samples held and how many there are.
func (l *latencyWindow) load() (float64, int) {
	b := l.mean.Load()
	if b == 0 {
		return 0, 0
	}
	return math.Float64frombits(b), int(l.count.Load())
}

// CountRequest counts a request sent at now against the deployment's rpm.
// With an rpm shared by the replicas it takes one request of this
// replica's grant, and reports false (counting nothing) when another
// request took the last one first: the caller picks again.
func (d *Deployment) CountRequest(now int64) bool {
	if q := d.shared.quota.Load(); q != nil && d.RPM > 0 && !q.Take(now) {
		return false
	}
	d.minuteRequests.add(now, 1)
	return true
}

// AddTokens counts tokens used at now against the deployment's tpm.
func (d *Deployment) AddTokens(now, n int64) { d.minuteTokens.add(now, n) }

// MinuteUsage returns the requests and tokens counted in the minute of now.
func (d *Deployment) MinuteUsage(now int64) (requests, tokens int64) {
	return d.minuteRequests.load(now), d.minuteTokens.load(now)
}

// RecordResult counts one finished request in the failure window and
// returns the current minute's requests and failures.
func (d *Deployment) RecordResult(now int64, failed bool) (requests, failures int64) {
	if d.lastFailed.Load() != failed {
		d.lastFailed.Store(failed)
	}
	return d.fails.record(now, failed)
}

// LastFailed reports whether the latest finished request failed on the
// deployment (its fault: client errors and cancellations do not count).
func (d *Deployment) LastFailed() bool { return d.lastFailed.Load() }

// ResetFailures clears the failure window, as a cooldown does: after it the
// deployment starts afresh.
func (d *Deployment) ResetFailures() { d.fails.reset() }

// ObserveLatency records a latency sample in seconds (per output token, or
// to the first token for streams).
func (d *Deployment) ObserveLatency(seconds float64) { d.latency.observe(seconds) }

// Latency returns the mean of the recent latency samples and their number;
// n is 0 for a deployment that has not answered yet.
func (d *Deployment) Latency() (mean float64, n int) { return d.latency.load() }
