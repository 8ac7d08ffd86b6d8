package metrics

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Traffic keeps the last minutes of the gateway's own request counts in
// memory, for the admin UI's traffic view: requests, errors and latency
// percentiles per time step, and each deployment's share. It answers
// without a Prometheus server, at a coarse resolution (TrafficStep).
//
// Recording is lock-free (atomic adds into the current step's bucket);
// only the first request of a new step takes a mutex, to clear the bucket
// it reuses.
type Traffic struct {
	now     func() time.Time
	buckets [trafficSteps]trafficBucket
	mu      sync.Mutex // serialises bucket rollover
	deps    sync.Map   // deployment id -> *depRing
}

// TrafficStep is the resolution of the traffic view, and TrafficWindow how
// far back it goes.
const (
	TrafficStep   = 5 * time.Second
	trafficSteps  = 120
	TrafficWindow = trafficSteps * TrafficStep
)

// latencyBounds are the upper bounds of the latency histogram kept per
// step, in seconds: log-spaced from 1 ms to 20 min, about 12% apart, so a
// percentile read from them is within that of the truth.
var latencyBounds = func() []float64 {
	var b []float64
	for v := 0.001; v < 1200; v *= 1.12 {
		b = append(b, v)
	}
	return b
}()

type trafficBucket struct {
	step     atomic.Int64 // the step number (unix time / TrafficStep) counted here
	requests atomic.Int64
	errors   atomic.Int64
	latency  []atomic.Int64 // by latencyBounds, then one for larger
}

// depRing counts one deployment's attempts per step: how many, how many
// failed, and their summed latency.
type depRing struct {
	steps   [trafficSteps]atomic.Int64
	counts  [trafficSteps]atomic.Int64
	errors  [trafficSteps]atomic.Int64
	ok      [trafficSteps]atomic.Int64
	latency [trafficSteps]atomic.Int64 // of the successful ones, in nanoseconds
}

func newTraffic(now func() time.Time) *Traffic {
	t := &Traffic{now: now}
	for i := range t.buckets {
		t.buckets[i].latency = make([]atomic.Int64, len(latencyBounds)+1)
	}
	return t
}

func stepOf(t time.Time) int64 { return t.UnixNano() / int64(TrafficStep) }

// bucket returns the bucket of step, cleared first if it last counted an
// older step.
func (t *Traffic) bucket(step int64) *trafficBucket {
	b := &t.buckets[step%trafficSteps]
	if b.step.Load() == step {
		return b
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if b.step.Load() != step {
		b.requests.Store(0)
		b.errors.Store(0)
		for i := range b.latency {
			b.latency[i].Store(0)
		}
		b.step.Store(step)
	}
	return b
}

// record counts one finished client request.
func (t *Traffic) record(failed bool, latency time.Duration) {
	b := t.bucket(stepOf(t.now()))
	b.requests.Add(1)
	if failed {
		b.errors.Add(1)
	}
	i, _ := slices.BinarySearch(latencyBounds, latency.Seconds())
	b.latency[i].Add(1)
}

// attempt counts one attempt on the deployment id: failed says it counts
// as an error, succeeded that it succeeded (only then latency counts).
func (t *Traffic) attempt(id string, succeeded, failed bool, latency time.Duration) {
	step := stepOf(t.now())
	r, ok := t.deps.Load(id)
	if !ok {
		// Stamped with this step before it is shared, so a concurrent
		// Report does not take it for a ring gone quiet and drop it.
		fresh := &depRing{}
		fresh.steps[step%trafficSteps].Store(step)
		r, _ = t.deps.LoadOrStore(id, fresh)
	}
	ring := r.(*depRing)
	k := step % trafficSteps
	if ring.steps[k].Load() != step {
		// A lost race here only miscounts an attempt at the step's start.
		ring.counts[k].Store(0)
		ring.errors[k].Store(0)
		ring.ok[k].Store(0)
		ring.latency[k].Store(0)
		ring.steps[k].Store(step)
	}
	ring.counts[k].Add(1)
	if failed {
		ring.errors[k].Add(1)
	}
	if succeeded {
		ring.ok[k].Add(1)
		ring.latency[k].Add(int64(latency))
	}
}

// stale reports whether ring counted nothing in the last TrafficWindow.
func stale(ring *depRing, now int64) bool {
	for i := range ring.steps {
		if ring.steps[i].Load() > now-trafficSteps {
			return false
		}
	}
	return true
}

// TrafficPoint is one step of the traffic view.
type TrafficPoint struct {
	Time      time.Time `json:"time"` // the step's start
	Requests  int64     `json:"requests"`
	PerSecond float64   `json:"requests_per_second"`
	Errors    int64     `json:"errors"`
	ErrorRate float64   `json:"error_rate"` // errors / requests; 0 without requests
	// P50 and P99 are latency percentiles in seconds (upper bounds of
	// histogram buckets about 12% wide); null without requests.
	P50 *float64 `json:"p50_seconds"`
	P99 *float64 `json:"p99_seconds"`
}

// DeploymentShare is one deployment's part of the traffic in the window,
// counted in attempts (a retried request counts on each deployment tried).
type DeploymentShare struct {
	ID        string  `json:"model_id"`
	Requests  int64   `json:"requests"`
	Share     float64 `json:"share"`
	Errors    int64   `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	// MeanLatency is the successful attempts' mean time from sending to
	// the answer (to the first chunk for streams), in seconds; null
	// without one.
	MeanLatency *float64 `json:"mean_latency_seconds"`
}

// TrafficReport is the traffic of the last Window, oldest step first.
type TrafficReport struct {
	Window      float64           `json:"window_seconds"`
	Step        float64           `json:"step_seconds"`
	Points      []TrafficPoint    `json:"points"`
	Total       TrafficPoint      `json:"total"`
	Deployments []DeploymentShare `json:"deployments"`
}

// Report returns the traffic of the last window (at most TrafficWindow),
// the current, unfinished step included.
func (t *Traffic) Report(window time.Duration) TrafficReport {
	window = min(max(window, TrafficStep), TrafficWindow)
	n := int64(window / TrafficStep)
	now := stepOf(t.now())
	rep := TrafficReport{Window: window.Seconds(), Step: TrafficStep.Seconds()}
	total := make([]int64, len(latencyBounds)+1)
	var totalReq, totalErr int64
	for s := now - n + 1; s <= now; s++ {
		p := TrafficPoint{Time: time.Unix(0, s*int64(TrafficStep)).UTC()}
		b := &t.buckets[s%trafficSteps]
		if b.step.Load() == s {
			p.Requests, p.Errors = b.requests.Load(), b.errors.Load()
			hist := make([]int64, len(b.latency))
			for i := range b.latency {
				hist[i] = b.latency[i].Load()
				total[i] += hist[i]
			}
			p.P50, p.P99 = percentile(hist, 0.5), percentile(hist, 0.99)
		}
		elapsed := TrafficStep.Seconds()
		if s == now { // the step in progress
			elapsed = max(t.now().Sub(p.Time).Seconds(), 1)
		}
		p.PerSecond = float64(p.Requests) / elapsed
		if p.Requests > 0 {
			p.ErrorRate = float64(p.Errors) / float64(p.Requests)
		}
		totalReq += p.Requests
		totalErr += p.Errors
		rep.Points = append(rep.Points, p)
	}
	rep.Total = TrafficPoint{Time: rep.Points[0].Time, Requests: totalReq, Errors: totalErr,
		P50: percentile(total, 0.5), P99: percentile(total, 0.99)}
	if elapsed := t.now().Sub(rep.Points[0].Time).Seconds(); elapsed > 0 {
		rep.Total.PerSecond = float64(totalReq) / elapsed
	}
	if totalReq > 0 {
		rep.Total.ErrorRate = float64(totalErr) / float64(totalReq)
	}
	rep.Deployments = []DeploymentShare{}
	var counted int64
	t.deps.Range(func(k, v any) bool {
		ring := v.(*depRing)
		d := DeploymentShare{ID: k.(string)}
		var ok, latency int64
		for s := now - n + 1; s <= now; s++ {
			if i := s % trafficSteps; ring.steps[i].Load() == s {
				d.Requests += ring.counts[i].Load()
				d.Errors += ring.errors[i].Load()
				ok += ring.ok[i].Load()
				latency += ring.latency[i].Load()
			}
		}
		if d.Requests > 0 {
			d.ErrorRate = float64(d.Errors) / float64(d.Requests)
			if ok > 0 {
				mean := time.Duration(latency / ok).Seconds()
				d.MeanLatency = &mean
			}
			rep.Deployments = append(rep.Deployments, d)
			counted += d.Requests
		} else if stale(ring, now) {
			t.deps.Delete(k) // a deployment gone quiet for the whole window, or removed
		}
		return true
	})
	for i := range rep.Deployments {
		rep.Deployments[i].Share = float64(rep.Deployments[i].Requests) / float64(counted)
	}
	slices.SortFunc(rep.Deployments, func(a, b DeploymentShare) int {
		return cmp.Or(cmp.Compare(b.Requests, a.Requests), strings.Compare(a.ID, b.ID))
	})
	return rep
}

// percentile returns the upper bound of the bucket holding the q quantile
// of hist, or nil for an empty histogram. Beyond the last bound it
// returns +Inf's stand-in, the last bound.
func percentile(hist []int64, q float64) *float64 {
	var n int64
	for _, c := range hist {
		n += c
	}
	if n == 0 {
		return nil
	}
	rank := int64(math.Ceil(q * float64(n)))
	var seen int64
	for i, c := range hist {
		seen += c
		if seen >= rank {
			v := latencyBounds[min(i, len(latencyBounds)-1)]
			return &v
		}
	}
	v := latencyBounds[len(latencyBounds)-1]
	return &v
}
