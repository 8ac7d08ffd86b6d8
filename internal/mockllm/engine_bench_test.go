package mockllm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkEngineStep measures the CPU cost of one engine step (schedule
// and apply, no waiting) with about n sequences running on the
// h100-llama-8b profile (1,100-token prompts, 1,000 of them one of 4 shared
// prefixes, 50 to 350 tokens out) and new requests replacing finished ones
// (their prompts' allocation included), so
// that a fleet's CPU budget can be worked out: a fleet of k servers at a
// speed-up u runs k·u/step_time steps per wall second.
func BenchmarkEngineStep(b *testing.B) {
	for _, running := range []int{16, 64, 256} {
		b.Run(fmt.Sprintf("running=%d", running), func(b *testing.B) {
			s := New(Config{Name: "bench", Engine: &EngineConfig{}})
			defer s.Close()
			e := s.engine
			m := s.models[s.cfg.Models[0]]
			rng := rand.New(rand.NewPCG(1, 2))
			prompt := func() []uint64 {
				p := make([]uint64, 0, 1100)
				shared := rng.IntN(4)
				for i := range 1000 { // one of 4 shared 1000-token prefixes
					p = append(p, uint64(shared<<20|i))
				}
				for range 100 {
					p = append(p, rng.Uint64())
				}
				return p
			}
			add := func() {
				r := &engineReq{m: m, seq: prompt(), maxOut: 50 + rng.IntN(300), notify: make(chan struct{}, 1), done: make(chan struct{})}
				r.prompt = len(r.seq)
				e.waiting = append(e.waiting, r)
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			for range running {
				add()
			}
			for len(e.waiting) > 0 { // admit and prefill them all
				e.schedule()
				e.apply()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				// Arrivals replace the finished, admitted as the budget allows.
				for range running - len(e.running) - len(e.waiting) {
					add()
				}
				e.schedule()
				e.apply()
				for _, r := range e.running {
					select {
					case <-r.notify:
					default:
					}
				}
			}
			b.ReportMetric(float64(len(e.running)), "running")
		})
	}
}
