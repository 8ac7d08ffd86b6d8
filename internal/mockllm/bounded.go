package mockllm

import "sync"

// boundedMap is a map safe for concurrent use that holds at most limit
// entries, forgetting the oldest first. It is what a server remembers on its
// clients' behalf (stored responses, the long words /tokenize has seen), so
// its memory stays bounded however many requests arrive. Set limit before
// use. A key deleted and put again may be forgotten early, as its first
// place in the order still counts.
type boundedMap[K comparable, V any] struct {
	limit int

	mu    sync.Mutex
	m     map[K]V
	order []K // keys in the order first put; may name deleted ones
}

func (b *boundedMap[K, V]) get(k K) (V, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[k]
	return v, ok
}

// put stores v under k, forgetting the oldest entries past limit. Putting a
// key again replaces its value and keeps its place in the order.
func (b *boundedMap[K, V]) put(k K, v V) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = make(map[K]V)
	}
	if _, ok := b.m[k]; !ok {
		b.order = append(b.order, k)
	}
	b.m[k] = v
	for len(b.m) > b.limit || len(b.order) > 2*b.limit {
		delete(b.m, b.order[0])
		b.order = b.order[1:]
	}
}

// delete forgets k and reports whether it was held.
func (b *boundedMap[K, V]) delete(k K) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.m[k]
	delete(b.m, k)
	return ok
}
