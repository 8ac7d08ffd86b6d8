package mockllm

import (
	"context"
	"net/http"
	"time"
)

// The handlers' side of the engine model: a request is submitted to the
// engine and its handler waits on channels, for the end (non-streaming) or
// for each batch of new tokens (streaming). A streaming handler that falls
// behind the engine writes the tokens it missed in one go, so the cost of
// the mock's HTTP side is bounded by how fast clients read, not by the
// number of engine steps.

// submit queues g on the engine after the fault's extra latency and counts
// its prompt. It returns nil, after counting the request as cancelled, if
// the client went away first.
func (s *Server) submit(ctx context.Context, g *generation, f *Faults) *engineReq {
	if err := s.sleep(ctx, time.Duration(f.ExtraLatency)); err != nil {
		s.stats.cancelled.Add(1)
		return nil
	}
	s.stats.promptTokens.Add(int64(g.prompt))
	g.m.promptTokens.Add(int64(g.prompt))
	return s.engine.submit(g.m, g.ids, g.n)
}

// wait waits for ch, or aborts er and reports false when the client goes
// away or the server closes.
func (s *Server) wait(ctx context.Context, er *engineReq, ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-er.done:
		return true
	case <-ctx.Done():
	case <-s.life.Done():
	}
	s.engine.abort(er)
	return false
}

// generateOnEngine runs a non-streaming request (or an embedding, with
// g.n == 0) to its end. On false the request has been counted as cancelled.
func (s *Server) generateOnEngine(ctx context.Context, g *generation, f *Faults) bool {
	er := s.submit(ctx, g, f)
	if er == nil {
		return false
	}
	if !s.wait(ctx, er, er.done) {
		s.end(g, int(er.produced.Load()), &s.stats.cancelled)
		return false
	}
	return true
}

// streamOnEngine writes a stream's token events as the engine samples the
// tokens. The status line and headers have been sent.
func (s *Server) streamOnEngine(w http.ResponseWriter, r *http.Request, g *generation, f *Faults, flush func() error, enc encoder) {
	ctx := r.Context()
	er := s.submit(ctx, g, f)
	if er == nil {
		return
	}
	buf := make([]byte, 0, 2048)
	for sent := 0; sent < g.n; {
		if !s.wait(ctx, er, er.notify) {
			s.end(g, sent, &s.stats.cancelled)
			return
		}
		ready := int(er.produced.Load())
		drop := false
		buf = buf[:0]
		for ; sent < ready; sent++ {
			last := sent == g.n-1
			buf = enc.token(buf, sent, last)
			if !last && sent+1 == f.DropAfterChunks {
				sent++
				drop = true
				break
			}
		}
		if _, err := w.Write(buf); err != nil {
			s.engine.abort(er)
			s.end(g, sent, &s.stats.cancelled)
			return
		}
		if err := flush(); err != nil {
			s.engine.abort(er)
			s.end(g, sent, &s.stats.cancelled)
			return
		}
		if drop {
			s.engine.abort(er)
			s.end(g, sent, &s.stats.failed)
			panic(http.ErrAbortHandler) // close the connection mid-stream
		}
	}
	s.end(g, g.n, &s.stats.completed)
}
