package mockllm

import (
	"context"
	"time"
)

// The simulated GPU: cfg.MaxConcurrent slots handed out in FIFO order by a
// semaphore (whose waiters leave the queue when their context ends), and
// delays that all go through cfg.Sleep.

// acquire waits in FIFO order for a GPU slot, counting the request as
// waiting meanwhile. It fails only when ctx ends first.
func (s *Server) acquire(ctx context.Context, m *modelState) error {
	s.stats.waiting.Add(1)
	m.waiting.Add(1)
	err := s.slots.Acquire(ctx, 1)
	s.stats.waiting.Add(-1)
	m.waiting.Add(-1)
	if err != nil {
		return err
	}
	s.stats.running.Add(1)
	m.running.Add(1)
	return nil
}

// release gives back a slot taken by acquire.
func (s *Server) release(m *modelState) {
	s.stats.running.Add(-1)
	m.running.Add(-1)
	s.slots.Release(1)
}

// sleep waits the simulated time d (d/cfg.SpeedUp of wall time) through
// cfg.Sleep; a non-positive d does not wait but still reports a context
// that has ended.
func (s *Server) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	if s.cfg.SpeedUp != 1 {
		d = time.Duration(float64(d) / s.cfg.SpeedUp)
	}
	return s.cfg.Sleep(ctx, d)
}

// firstTokenDelay is how long a request holds its slot before its first
// token (or its embeddings) under faults f.
func (s *Server) firstTokenDelay(f *Faults) time.Duration {
	return time.Duration(f.ExtraLatency) + f.scale(s.cfg.TTFT)
}

// tokenDelay is the time per further output token under faults f.
func (s *Server) tokenDelay(f *Faults) time.Duration {
	return f.scale(s.cfg.TPOT)
}
