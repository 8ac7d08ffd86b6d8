package deployment

import (
	"sync"
	"sync/atomic"
	"time"
)

// sharedState is what other gateway replicas report about a deployment,
// written by the cluster package from Redis in the background and read by
// routing without I/O. The zero value means "no cluster": routing uses the
// replica's own counts only.
type sharedState struct {
	// othersInFlight is the sum of the other replicas' in-flight requests.
	othersInFlight atomic.Int64
	// othersTokens is the other replicas' tokens in the minute tokensMinute.
	othersTokens atomic.Int64
	tokensMinute atomic.Int64
	// quota is this replica's share of the deployment's rpm, granted by
	// the cluster per minute; nil while limits are local.
	quota atomic.Pointer[Quota]
}

// Quota holds the requests this replica may send to the deployment in a
// minute: granted by the cluster in small batches from one counter that
// all replicas share, so together they never exceed the rpm. Two slots,
// by minute parity, let the next minute's first batch arrive before the
// minute starts.
type Quota struct {
	mu    sync.Mutex // serialises Grant (rare); take is lock-free
	slots [2]quotaSlot
	// spent is the minute (+1, so 0 means none) in which the cluster had
	// no more to grant: no use asking again before the next minute.
	spent atomic.Int64
	// Want is called (it must not block) when the grant of the minute runs
	// low or is missing, to fetch the next batch in the background.
	Want func()
}

type quotaSlot struct {
	minute  atomic.Int64
	granted atomic.Int64
	used    atomic.Int64
}

func minuteIndex(now int64) int64 { return now / int64(time.Minute) }

// Grant adds n requests to the grant for the minute of at (unix
// nanoseconds).
func (q *Quota) Grant(at int64, n int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := minuteIndex(at)
	s := &q.slots[m&1]
	if s.minute.Load() != m {
		s.used.Store(0)
		s.granted.Store(0)
		s.minute.Store(m)
	}
	s.granted.Add(n)
}

// Spent records that the cluster's rpm for the minute of at is all
// granted.
func (q *Quota) Spent(at int64) { q.spent.Store(minuteIndex(at) + 1) }

// IsSpent reports whether the cluster had nothing more to grant in the
// minute of now.
func (q *Quota) IsSpent(now int64) bool { return q.spent.Load() == minuteIndex(now)+1 }

// Dry reports whether this replica's grant for the minute of now is used
// up while the cluster may still have more to grant.
func (q *Quota) Dry(now int64) bool {
	return q.Remaining(now) <= 0 && !q.IsSpent(now)
}

// Remaining returns the requests left in the grant for the minute of now.
func (q *Quota) Remaining(now int64) int64 {
	m := minuteIndex(now)
	s := &q.slots[m&1]
	if s.minute.Load() != m {
		return 0
	}
	return s.granted.Load() - s.used.Load()
}

// take uses one request of the minute's grant, if one is left.
func (q *Quota) take(now int64) bool {
	m := minuteIndex(now)
	s := &q.slots[m&1]
	if s.minute.Load() != m {
		return false
	}
	for {
		used := s.used.Load()
		if used >= s.granted.Load() {
			return false
		}
		if s.used.CompareAndSwap(used, used+1) {
			return true
		}
	}
}

// Inherit carries prev's usage of the current minute (requests, tokens,
// and its shared rpm grant when the rpm is the same) over to d, which
// replaces it after an edit: a changed definition does not reset limits.
func (d *Deployment) Inherit(prev *Deployment) {
	d.minuteRequests.v.Store(prev.minuteRequests.v.Load())
	d.minuteTokens.v.Store(prev.minuteTokens.v.Load())
	if q := prev.shared.quota.Load(); q != nil && prev.RPM == d.RPM {
		d.shared.quota.Store(q)
	}
}

// SetQuota makes the deployment's rpm shared (q non-nil) or local (nil).
func (d *Deployment) SetQuota(q *Quota) { d.shared.quota.Store(q) }

// Quota returns the deployment's shared rpm grant, or nil.
func (d *Deployment) Quota() *Quota { return d.shared.quota.Load() }

// SetOthersInFlight records the other replicas' in-flight requests.
func (d *Deployment) SetOthersInFlight(n int64) { d.shared.othersInFlight.Store(n) }

// SetOthersTokens records the other replicas' tokens in the minute of at.
func (d *Deployment) SetOthersTokens(at int64, n int64) {
	d.shared.othersTokens.Store(n)
	d.shared.tokensMinute.Store(minuteIndex(at))
}

// ClusterInFlight returns the requests in flight on the deployment from
// every replica: this one's, exact, plus the others' as last reported.
func (d *Deployment) ClusterInFlight() int64 {
	return d.inFlight.Load() + d.shared.othersInFlight.Load()
}

// othersTokensAt returns the other replicas' tokens in the minute of now.
func (d *Deployment) othersTokensAt(now int64) int64 {
	if d.shared.tokensMinute.Load() != minuteIndex(now) {
		return 0
	}
	return d.shared.othersTokens.Load()
}

// underRPM reports whether a request may be sent at now under the rpm:
// against the cluster's grant when shared, else this replica's count.
func (d *Deployment) underRPM(now int64) bool {
	if d.RPM <= 0 {
		return true
	}
	if q := d.shared.quota.Load(); q != nil {
		left := q.Remaining(now)
		if left <= max(1, d.RPM/40) && q.Want != nil && !q.IsSpent(now) {
			q.Want()
		}
		return left > 0
	}
	return d.minuteRequests.load(now) < d.RPM
}
