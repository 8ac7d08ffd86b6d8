package deployment

import (
	"sync/atomic"

	"github.com/maasgate/maasgate/internal/limits"
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

// Quota is this replica's share of a deployment's rpm, granted by the
// cluster (limits.Quota).
type Quota = limits.Quota

// Inherit carries prev's usage of the current minute (requests, tokens,
// and its shared rpm grant when the rpm is the same) over to d, which
// replaces it after an edit: a changed definition does not reset limits.
func (d *Deployment) Inherit(prev *Deployment) {
	d.minuteRequests.v.Store(prev.minuteRequests.v.Load())
	d.minuteTokens.v.Store(prev.minuteTokens.v.Load())
	if q := prev.shared.quota.Load(); q != nil && prev.RPM == d.RPM {
		d.shared.quota.Store(q)
	}
	// The server is the same: what it has cached stays.
	if x := prev.prefixes.index.Load(); x != nil {
		d.prefixes.index.Store(x)
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
	d.shared.tokensMinute.Store(limits.Minute(at))
}

// ClusterInFlight returns the requests in flight on the deployment from
// every replica: this one's, exact, plus the others' as last reported.
func (d *Deployment) ClusterInFlight() int64 {
	return d.inFlight.Load() + d.shared.othersInFlight.Load()
}

// othersTokensAt returns the other replicas' tokens in the minute of now.
func (d *Deployment) othersTokensAt(now int64) int64 {
	if d.shared.tokensMinute.Load() != limits.Minute(now) {
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
