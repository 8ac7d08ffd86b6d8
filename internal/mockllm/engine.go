package mockllm

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// engine is the simulated vLLM V1 engine of one server: one scheduler and
// one KV cache shared by every served model name, since vLLM's served names
// are aliases of the one model it loaded. A loop goroutine runs while there
// is work: each step it schedules the running sequences first (one decode
// token each, or the next chunk of a prefill), preempting the newest running
// sequence when a block is needed and none is free, then admits waiting
// requests in FIFO order while the token budget, the sequence limit and the
// free blocks allow; it waits the step's simulated time (divided by
// Config.SpeedUp) and then applies it: computed tokens advance, full blocks
// enter the prefix cache, sequences that finished a prefill or a decode
// sample one token, and their handlers are woken.
type engine struct {
	cfg     EngineConfig
	speedUp float64
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) error
	life    context.Context
	slow    func() float64             // the SlowFactor in force (1: normal)
	outIDs  [3]uint64                  // token ids of the generated words
	ttft    func(*modelState, float64) // observes a time to first token in seconds
	wall0   time.Time                  // wall time at simulated time 0

	mu       sync.Mutex
	kv       *kvCache
	waiting  []*engineReq // FIFO; preempted requests go back to the front
	running  []*engineReq // in admission order; the newest is last
	sched    []scheduled  // the step in flight
	simNow   time.Duration
	looping  bool
	counters *counters
}

// engineReq is one request inside the engine. Its fields are guarded by
// engine.mu, except produced, notify and done, which its handler reads.
type engineReq struct {
	m        *modelState
	seq      []uint64 // prompt token ids, then the sampled ones
	prompt   int
	maxOut   int // tokens to sample; 0 for embeddings (prefill only)
	out      int // tokens sampled so far
	computed int // tokens whose KV is in blocks
	blocks   []int32
	hashes   []uint64 // chained hashes of the full blocks of seq known so far
	cachedTo int      // blocks of this request registered in (or found in) the prefix cache
	arrival  time.Duration
	queried  bool // its first prefix-cache lookup has been counted
	state    reqState

	produced atomic.Int64  // out, published for the handler
	notify   chan struct{} // a token is ready (capacity 1, never closed)
	done     chan struct{} // closed when the request finished or was aborted
}

type reqState uint8

const (
	stateWaiting reqState = iota
	stateRunning
	stateDone
)

type scheduled struct {
	r *engineReq
	n int // tokens computed for r in this step
}

func newEngine(s *Server, ec EngineConfig) *engine {
	e := &engine{
		cfg:      ec,
		speedUp:  s.cfg.SpeedUp,
		now:      s.cfg.Now,
		sleep:    s.cfg.Sleep,
		life:     s.life,
		kv:       newKVCache(ec.BlockSize, ec.NumGPUBlocks),
		counters: &s.stats,
		ttft:     s.observeTTFT,
		slow: func() float64 {
			if f := s.faults.Load().SlowFactor; f > 0 {
				return f
			}
			return 1
		},
	}
	e.wall0 = e.now()
	for i, w := range []string{"Hello", "from", s.cfg.Name + "."} {
		e.outIDs[i] = wordID(w)
	}
	return e
}

// sim is the simulated time of wall time t.
func (e *engine) sim(t time.Time) time.Duration {
	return time.Duration(float64(t.Sub(e.wall0)) * e.speedUp)
}

// wall is the wall time of simulated time d.
func (e *engine) wall(d time.Duration) time.Time {
	return e.wall0.Add(time.Duration(float64(d) / e.speedUp))
}

// lagTolerance is how far, in simulated time, the engine may run behind
// the wall clock before it gives the lag up as idle time: 5 ms of wall time.
func (e *engine) lagTolerance() time.Duration {
	return time.Duration(float64(5*time.Millisecond) * e.speedUp)
}

// blocksFor is the number of blocks n tokens occupy.
func (e *engine) blocksFor(n int) int {
	return (n + e.cfg.BlockSize - 1) / e.cfg.BlockSize
}

// fits reports whether a sequence of n tokens fits the KV cache at all.
func (e *engine) fits(n int) bool { return e.blocksFor(n) <= e.cfg.NumGPUBlocks }

// submit queues a request of prompt ids (which the engine keeps) for maxOut
// sampled tokens, starting the loop if it was idle.
func (e *engine) submit(m *modelState, prompt []uint64, maxOut int) *engineReq {
	r := &engineReq{
		m: m, seq: prompt, prompt: len(prompt), maxOut: maxOut,
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.sim(e.now())
	r.arrival = now
	e.waiting = append(e.waiting, r)
	m.waiting.Add(1)
	e.counters.waiting.Add(1)
	if !e.looping {
		e.looping = true
		e.simNow = max(e.simNow, now)
		go e.run()
	}
	return r
}

// abort takes r out of the engine (its client went away), freeing its
// blocks. It is a no-op for a request that has finished.
func (e *engine) abort(r *engineReq) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch r.state {
	case stateWaiting:
		if i := slices.Index(e.waiting, r); i >= 0 {
			e.waiting = slices.Delete(e.waiting, i, i+1)
		}
		r.m.waiting.Add(-1)
		e.counters.waiting.Add(-1)
		e.kv.release(r.blocks) // none unless preempted mid-admission
	case stateRunning:
		if i := slices.Index(e.running, r); i >= 0 {
			e.running = slices.Delete(e.running, i, i+1)
		}
		r.m.running.Add(-1)
		e.counters.running.Add(-1)
		e.kv.release(r.blocks)
	case stateDone:
		return
	}
	r.blocks = nil
	r.state = stateDone
	close(r.done)
}

// run is the engine loop. It returns when there is nothing to schedule or
// the server closes.
func (e *engine) run() {
	for {
		e.mu.Lock()
		d := e.schedule()
		if len(e.sched) == 0 {
			e.looping = false
			e.mu.Unlock()
			return
		}
		end := e.simNow + d
		e.mu.Unlock()

		if wait := e.wall(end).Sub(e.now()); wait > 0 {
			if err := e.sleep(e.life, wait); err != nil {
				e.mu.Lock()
				e.looping = false
				e.mu.Unlock()
				return
			}
		}

		e.mu.Lock()
		e.simNow = end
		if lag := e.sim(e.now()) - end; lag > d+e.lagTolerance() {
			// The machine could not keep up with the speed-up: count the
			// lost time as idle GPU time rather than let the simulated
			// clock fall ever further behind the arrivals. Smaller lags
			// (a timer's overshoot) are caught up by the deadlines of the
			// next steps.
			e.simNow += lag
		}
		e.apply()
		e.mu.Unlock()
	}
}

// schedule plans one step into e.sched, as vLLM V1's scheduler does, and
// returns its simulated duration.
func (e *engine) schedule() time.Duration {
	budget := e.cfg.MaxNumBatchedTokens
	e.sched = e.sched[:0]
	preempted := false
	for i := 0; i < len(e.running) && budget > 0; i++ {
		r := e.running[i]
		n := min(len(r.seq)-r.computed, budget)
		for !e.grow(r, r.computed+n) {
			victim := e.running[len(e.running)-1]
			e.running = e.running[:len(e.running)-1]
			e.preempt(victim)
			preempted = true
			if victim == r {
				n = 0
				break
			}
		}
		if n == 0 {
			break
		}
		e.sched = append(e.sched, scheduled{r, n})
		budget -= n
	}
	for !preempted && len(e.waiting) > 0 && budget > 0 && len(e.running) < e.cfg.MaxNumSeqs {
		r := e.waiting[0]
		hits := e.lookup(r)
		n := min(len(r.seq)-hits*e.cfg.BlockSize, budget)
		if !e.admit(r, hits, n) {
			break // admission only when the blocks fit
		}
		e.waiting = e.waiting[1:]
		e.running = append(e.running, r)
		r.state = stateRunning
		r.m.waiting.Add(-1)
		r.m.running.Add(1)
		e.counters.waiting.Add(-1)
		e.counters.running.Add(1)
		e.sched = append(e.sched, scheduled{r, n})
		budget -= n
	}
	if len(e.waiting) == 0 {
		e.waiting = nil // let a long queue's array go
	}

	prefill, kvTokens, decodes := 0, 0, 0
	for _, s := range e.sched {
		if s.n == 1 && s.r.out > 0 && s.r.computed == len(s.r.seq)-1 {
			decodes++
			kvTokens += s.r.computed + 1
		} else {
			prefill += s.n
		}
	}
	d := e.cfg.stepTime(prefill, kvTokens, decodes)
	if f := e.slow(); f != 1 {
		d = time.Duration(float64(d) * f)
	}
	return d
}

// lookup returns how many leading full blocks of r's tokens the prefix
// cache holds, counting the first lookup of each request in the model's
// prefix_cache_queries and _hits as vLLM does (in tokens). As in vLLM, the
// last token is always computed, so a prompt never hits in full.
func (e *engine) lookup(r *engineReq) int {
	hits := 0
	if !e.cfg.DisablePrefixCaching {
		full := (len(r.seq) - 1) / e.cfg.BlockSize
		e.extendHashes(r, full)
		for hits < full {
			if _, ok := e.kv.lookup(r.hashes[hits]); !ok {
				break
			}
			hits++
		}
	}
	if !r.queried {
		r.queried = true
		r.m.prefixQueries.Add(int64(len(r.seq)))
		r.m.prefixHits.Add(int64(hits * e.cfg.BlockSize))
	}
	return hits
}

// admit gives a waiting request its cached blocks and the blocks for n new
// tokens after them, or changes nothing and returns false if they do not fit.
func (e *engine) admit(r *engineReq, hits, n int) bool {
	need := e.blocksFor(hits*e.cfg.BlockSize+n) - hits
	reusable := 0 // cached blocks that are free now and stop being free once held
	for j := range hits {
		i, _ := e.kv.lookup(r.hashes[j])
		if e.kv.blocks[i].inFree {
			reusable++
		}
	}
	if need > e.kv.free-reusable {
		return false
	}
	for j := range hits {
		i, _ := e.kv.lookup(r.hashes[j])
		e.kv.touch(i)
		r.blocks = append(r.blocks, i)
	}
	r.computed = hits * e.cfg.BlockSize
	r.cachedTo = hits
	for range need {
		r.blocks = append(r.blocks, e.kv.allocate())
	}
	return true
}

// grow gives a running request the blocks to hold tokens tokens, or returns
// false if too few are free.
func (e *engine) grow(r *engineReq, tokens int) bool {
	need := e.blocksFor(tokens) - len(r.blocks)
	if need > e.kv.free {
		return false
	}
	for range need {
		r.blocks = append(r.blocks, e.kv.allocate())
	}
	return true
}

// preempt sends a running request back to the front of the queue, freeing
// its blocks: it will be recomputed (vLLM's RECOMPUTE mode), prompt and the
// tokens sampled so far, less what the prefix cache still holds.
func (e *engine) preempt(r *engineReq) {
	e.kv.release(r.blocks)
	r.blocks = r.blocks[:0]
	r.computed, r.cachedTo = 0, 0
	r.state = stateWaiting
	e.waiting = slices.Insert(e.waiting, 0, r)
	r.m.running.Add(-1)
	r.m.waiting.Add(1)
	r.m.preemptions.Add(1)
	e.counters.running.Add(-1)
	e.counters.waiting.Add(1)
}

// apply makes the planned step happen.
func (e *engine) apply() {
	finished := false
	for _, s := range e.sched {
		r := s.r
		if r.state != stateRunning {
			continue // aborted during the step
		}
		r.computed += s.n
		e.cache(r)
		if r.computed < len(r.seq) {
			continue // a prefill chunk; more to come
		}
		if r.maxOut == 0 { // embeddings: done once prefilled
			e.finish(r)
			finished = true
			continue
		}
		r.seq = append(r.seq, e.outIDs[r.out%3])
		r.out++
		if r.out == 1 {
			e.ttft(r.m, max(0, e.simNow-r.arrival).Seconds())
		}
		r.produced.Store(int64(r.out))
		select {
		case r.notify <- struct{}{}:
		default:
		}
		if r.out == r.maxOut {
			e.finish(r)
			finished = true
		}
	}
	e.sched = e.sched[:0]
	if finished {
		e.running = slices.DeleteFunc(e.running, func(r *engineReq) bool { return r.state == stateDone })
	}
}

// cache registers r's newly full, computed blocks in the prefix cache.
func (e *engine) cache(r *engineReq) {
	full := r.computed / e.cfg.BlockSize
	if e.cfg.DisablePrefixCaching || full <= r.cachedTo {
		return
	}
	e.extendHashes(r, full)
	for j := r.cachedTo; j < full; j++ {
		e.kv.register(r.blocks[j], r.hashes[j])
	}
	r.cachedTo = full
}

// extendHashes computes the chained hashes of r's first n full blocks.
func (e *engine) extendHashes(r *engineReq, n int) {
	bs := e.cfg.BlockSize
	for j := len(r.hashes); j < n; j++ {
		parent := uint64(0)
		if j > 0 {
			parent = r.hashes[j-1]
		}
		r.hashes = append(r.hashes, hashBlock(parent, r.seq[j*bs:(j+1)*bs]))
	}
}

// finish ends a request that produced all its tokens; the caller removes
// it from e.running.
func (e *engine) finish(r *engineReq) {
	e.kv.release(r.blocks)
	r.blocks = nil
	r.state = stateDone
	r.m.running.Add(-1)
	e.counters.running.Add(-1)
	close(r.done)
}

// engineState is a consistent snapshot of the engine for /metrics.
type engineState struct {
	kvUsage float64
}

func (e *engine) state() engineState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return engineState{kvUsage: e.kv.usage()}
}
