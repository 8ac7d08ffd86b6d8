package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/maasgate/maasgate/internal/deployment"
)

// prefixSeries are the counters of the router's own prefix cache estimate
// for one deployment.
type prefixSeries struct{ queried, hit prometheus.Counter }

func (m *Metrics) prefixSeriesOf(d *deployment.Deployment) *prefixSeries {
	if s, ok := m.prefixes.Load(d); ok {
		return s.(*prefixSeries)
	}
	l := labelsOf(d)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tracked[l] = true
	s := &prefixSeries{
		queried: m.prefixQueried.WithLabelValues(l.group, l.id, l.apiBase),
		hit:     m.prefixHit.WithLabelValues(l.group, l.id, l.apiBase),
	}
	actual, _ := m.prefixes.LoadOrStore(d, s)
	return actual.(*prefixSeries)
}

// PrefixEstimate records that the cache-aware strategy sent a prompt of
// about queried tokens to d, of which its prefix index expected d to hold
// hit tokens in its KV cache. The two counters' rates give the router's
// estimated hit rate per deployment, to set beside the server's own
// (maasgate_backend_prefix_cache_hit_ratio): an estimate well above the
// server's means the index remembers blocks the server has evicted.
// Counters rather than a gauge of a recent rate, so that Prometheus picks
// the window and replicas sum. It takes no lock and allocates nothing once
// d has its series.
func (m *Metrics) PrefixEstimate(d *deployment.Deployment, queried, hit int64) {
	if m == nil || queried <= 0 {
		return
	}
	s := m.prefixSeriesOf(d)
	s.queried.Add(float64(queried))
	s.hit.Add(float64(max(0, min(hit, queried))))
}
