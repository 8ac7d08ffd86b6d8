package deployment

import (
	"sync"
	"sync/atomic"

	"github.com/maasgate/maasgate/internal/prefix"
)

// prefixState is the gateway's estimate of what the deployment's server
// holds in its KV cache (for the cache-aware strategy), and the prompt
// tokens dispatched to it that have not been answered yet.
type prefixState struct {
	indexOnce sync.Once
	index     atomic.Pointer[prefix.Index]
	// pendingPrefill is the prompt tokens (not found in the cache) of the
	// requests sent and not yet answered: prefill work queued at the
	// server because of this gateway.
	pendingPrefill atomic.Int64
}

// PrefixIndex returns the deployment's prefix index, sized from the KV
// cache its server reports (vllm:cache_config_info) once it does, and a
// default until then.
func (d *Deployment) PrefixIndex() *prefix.Index {
	d.prefixes.indexOnce.Do(func() {
		if d.prefixes.index.Load() == nil {
			d.prefixes.index.Store(prefix.NewIndex(prefix.DefaultCapacity))
		}
	})
	x := d.prefixes.index.Load()
	if l := d.BackendLoad(); l != nil && l.KVBlocks > 0 {
		if c := prefix.CapacityBlocks(l.KVBlocks, l.KVBlockSize); c != x.Capacity() {
			x.Resize(c)
		}
	}
	return x
}

// AddPendingPrefill adds n (negative: removes) prompt tokens sent to the
// deployment and not yet answered.
func (d *Deployment) AddPendingPrefill(n int64) { d.prefixes.pendingPrefill.Add(n) }

// PendingPrefill returns the prompt tokens sent to the deployment and not
// yet answered.
func (d *Deployment) PendingPrefill() int64 { return d.prefixes.pendingPrefill.Load() }
