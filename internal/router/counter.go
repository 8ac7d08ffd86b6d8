package router

import "sync/atomic"

// uint64Counter is an atomic counter padded to its own cache line, so the
// round-robin positions of different tiers do not contend.
type uint64Counter struct {
	_ [64]byte
	n atomic.Uint64
	_ [56]byte
}

func (c *uint64Counter) add() uint64 { return c.n.Add(1) }

// skip moves the counter on by k.
func (c *uint64Counter) skip(k uint64) { c.n.Add(k) }
