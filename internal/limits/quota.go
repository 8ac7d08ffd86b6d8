package limits

import (
	"sync"
	"sync/atomic"
	"time"
)

// Quota holds the requests this replica may send in a minute under an rpm
// that all replicas share (a deployment's, a key's, a team's): granted by
// the cluster in small batches from one counter in Redis, so together they
// never exceed the rpm. Two slots,
// by minute parity, let the next minute's first batch arrive before the
// minute starts.
type Quota struct {
	mu    sync.Mutex // serialises Grant (rare); Take is lock-free
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

// Grant adds n requests to the grant for the minute of at (unix
// nanoseconds).
func (q *Quota) Grant(at int64, n int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := Minute(at)
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
func (q *Quota) Spent(at int64) { q.spent.Store(Minute(at) + 1) }

// IsSpent reports whether the cluster had nothing more to grant in the
// minute of now.
func (q *Quota) IsSpent(now int64) bool { return q.spent.Load() == Minute(now)+1 }

// Dry reports whether this replica's grant for the minute of now is used
// up while the cluster may still have more to grant.
func (q *Quota) Dry(now int64) bool {
	return q.Remaining(now) <= 0 && !q.IsSpent(now)
}

// Remaining returns the requests left in the grant for the minute of now.
func (q *Quota) Remaining(now int64) int64 {
	m := Minute(now)
	s := &q.slots[m&1]
	if s.minute.Load() != m {
		return 0
	}
	return s.granted.Load() - s.used.Load()
}

// Take uses one request of the minute's grant, if one is left.
func (q *Quota) Take(now int64) bool {
	m := Minute(now)
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

// Minute returns the index of the clock minute of now (unix nanoseconds),
// the window of every rpm and tpm.
func Minute(now int64) int64 { return now / int64(time.Minute) }

// Untake gives back a request Take took at now, for a request refused by
// another limit.
func (q *Quota) Untake(now int64) {
	m := Minute(now)
	s := &q.slots[m&1]
	if s.minute.Load() == m {
		s.used.Add(-1)
	}
}
