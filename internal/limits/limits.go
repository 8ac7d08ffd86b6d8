// Package limits enforces the rate limits of virtual keys and teams:
// requests per minute (rpm_limit), tokens per minute (tpm_limit) and
// requests in flight (max_parallel_requests) per key and per team, and
// per key and model (model_rpm_limit, model_tpm_limit), under the names
// LiteLLM's rate limiter gives them (descriptors api_key, team,
// model_per_key).
//
// A Limiter keeps one Counter per limited key, team and key × model that
// has been used, and admits a request against all of them at once or
// against none: the request path takes a mutex per counter for a few
// arithmetic operations, never across I/O. The window is the clock
// minute, as for deployments' rpm and tpm.
//
// Alone, a replica enforces every limit by itself. With the cluster
// package (Redis), the rpm of a counter is granted to the replicas in
// small batches from one counter per minute (a Quota, the scheme that
// holds deployments' rpm), so together they never admit more than the
// limit; tokens and requests in flight are exchanged in the background
// and counted against tpm and max_parallel_requests as last reported.
package limits

import (
	"context"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maasgate/maasgate/internal/keys"
)

// Kind is what a counter limits, named as LiteLLM's descriptors are in
// headers and messages.
type Kind uint8

// The kinds of counters.
const (
	Key      Kind = iota // a key's own limits: "api_key"
	Team                 // a team's limits, shared by its keys: "team"
	KeyModel             // a key's limits for one model: "model_per_key"
)

var kindNames = [...]string{"api_key", "team", "model_per_key"}

func (k Kind) String() string { return kindNames[k] }

// Type is the kind of a limit.
type Type uint8

// The types of limits.
const (
	Requests Type = iota // rpm
	Tokens               // tpm
	Parallel             // max_parallel_requests
)

var typeNames = [...]string{"requests", "tokens", "max_parallel_requests"}

func (t Type) String() string { return typeNames[t] }

// Spec holds a counter's limits; a negative value means none.
type Spec struct{ RPM, TPM, Parallel int64 }

// None is a Spec without limits.
var None = Spec{-1, -1, -1}

func (s Spec) any() bool { return s.RPM >= 0 || s.TPM >= 0 || s.Parallel >= 0 }

func (s Spec) of(t Type) int64 {
	switch t {
	case Requests:
		return s.RPM
	case Tokens:
		return s.TPM
	}
	return s.Parallel
}

func orNone(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

// KeySpec returns a key's own limits.
func KeySpec(k *keys.Key) Spec {
	return Spec{orNone(k.RPMLimit), orNone(k.TPMLimit), orNone(k.MaxParallelRequests)}
}

// TeamSpec returns a team's limits.
func TeamSpec(t *keys.Team) Spec {
	return Spec{orNone(t.RPMLimit), orNone(t.TPMLimit), orNone(t.MaxParallelRequests)}
}

// ModelSpec returns a key's limits for model (model_rpm_limit and
// model_tpm_limit name models as the client asks for them).
func ModelSpec(k *keys.Key, model string) Spec {
	s := None
	s.RPM, s.TPM = k.ModelLimits.Of(model)
	return s
}

// Counter counts what one key, team or key × model used: requests and
// tokens of the current minute and requests in flight, on this replica
// and, as last reported through the cluster, on the others.
type Counter struct {
	kind Kind
	id   string // the key's hash, the team's id, or "<hash>:<model>"

	mu       sync.Mutex
	spec     Spec  // as last admitted against
	minute   int64 // of requests and tokens
	requests int64 // this replica's, in minute
	tokens   int64
	inFlight int64
	used     int64 // unix nanoseconds of the last request

	othersMinute   int64 // of othersRequests and othersTokens
	othersRequests int64
	othersTokens   int64
	othersInFlight int64

	// quota is this replica's grant of the rpm from the cluster; nil while
	// the rpm is held locally.
	quota atomic.Pointer[Quota]
}

// Kind returns what the counter limits.
func (c *Counter) Kind() Kind { return c.kind }

// ID returns the counter's descriptor: a key's hash (hex), a team's id,
// or "<hash>:<model>".
func (c *Counter) ID() string { return c.id }

// Usage is a counter's state as the cluster exchanges it.
type Usage struct {
	Spec     Spec
	Minute   int64 // of Requests and Tokens
	Requests int64
	Tokens   int64
	InFlight int64
	Used     int64 // unix nanoseconds of the last request
}

// Local returns this replica's usage at now.
func (c *Counter) Local(now int64) Usage {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.roll(now)
	return Usage{Spec: c.spec, Minute: c.minute, Requests: c.requests, Tokens: c.tokens, InFlight: c.inFlight, Used: c.used}
}

// SetOthers records the other replicas' requests and tokens in minute and
// their requests in flight.
func (c *Counter) SetOthers(minute, requests, tokens, inFlight int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.othersMinute, c.othersRequests, c.othersTokens, c.othersInFlight = minute, requests, tokens, inFlight
}

// SetQuota makes the counter's rpm granted by the cluster (q non-nil) or
// local (nil).
func (c *Counter) SetQuota(q *Quota) { c.quota.Store(q) }

// Quota returns the counter's grant from the cluster, or nil.
func (c *Counter) Quota() *Quota { return c.quota.Load() }

// roll starts a new minute's counts; c.mu is held.
func (c *Counter) roll(now int64) {
	if m := Minute(now); m != c.minute {
		c.minute, c.requests, c.tokens = m, 0, 0
	}
}

// others returns the other replicas' requests and tokens of the current
// minute; c.mu is held and c rolled.
func (c *Counter) others() (requests, tokens int64) {
	if c.othersMinute != c.minute {
		return 0, 0
	}
	return c.othersRequests, c.othersTokens
}

// admit counts a request against s at now, or reports the limit it would
// exceed; dry says the rpm grant ran out while the cluster may have more.
func (c *Counter) admit(now int64, s Spec, e *entry) (t Type, over, dry bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.roll(now)
	c.spec, c.used = s, now
	oreq, otok := c.others()
	e.spec, e.limited = s, true
	if s.Parallel >= 0 && c.inFlight+c.othersInFlight >= s.Parallel {
		e.used = [3]int64{c.requests + oreq, c.tokens + otok, c.inFlight + c.othersInFlight}
		return Parallel, true, false
	}
	if s.TPM >= 0 && c.tokens+otok >= s.TPM {
		e.used = [3]int64{c.requests + oreq, c.tokens + otok, c.inFlight + c.othersInFlight}
		return Tokens, true, false
	}
	if s.RPM >= 0 {
		q := c.quota.Load()
		switch {
		case q != nil && !q.Take(now):
			e.used = [3]int64{max(c.requests+oreq, s.RPM), c.tokens + otok, c.inFlight + c.othersInFlight}
			return Requests, true, !q.IsSpent(now)
		case q != nil:
			if left := q.Remaining(now); left <= batch(s.RPM) && q.Want != nil && !q.IsSpent(now) {
				q.Want()
			}
			e.took = true
		case c.requests >= s.RPM:
			e.used = [3]int64{c.requests, c.tokens + otok, c.inFlight + c.othersInFlight}
			return Requests, true, false
		}
	}
	c.requests++
	c.inFlight++
	e.used = [3]int64{c.requests + oreq, c.tokens + otok, c.inFlight + c.othersInFlight}
	return 0, false, false
}

// undo takes back a request admit counted, for one another counter
// refused.
func (c *Counter) undo(now int64, e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inFlight--
	if c.minute == Minute(now) {
		c.requests--
	}
	if q := c.quota.Load(); q != nil && e.took {
		q.Untake(now)
	}
}

// end records the end of a request that used tokens.
func (c *Counter) end(now, tokens int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.roll(now)
	c.inFlight--
	c.tokens += tokens
}

// batch is how many requests of an rpm a replica takes from the cluster at
// a time: a fortieth of it (at least one), so a replica rarely waits for a
// grant and an idle replica holds little of the minute.
func batch(rpm int64) int64 { return max(1, rpm/40) }

// Batch is batch, for the cluster.
func Batch(rpm int64) int64 { return batch(rpm) }

// TokenType says which tokens of a response count toward tpm limits
// (LiteLLM's general_settings.token_rate_limit_type).
type TokenType uint8

// The token types.
const (
	Output TokenType = iota // completion tokens: LiteLLM's default
	Input                   // prompt tokens
	Total                   // both
)

// ParseTokenType reads token_rate_limit_type: "output" (or ""), "input" or
// "total"; ok is false for anything else, which LiteLLM treats as total.
func ParseTokenType(s string) (t TokenType, ok bool) {
	switch s {
	case "", "output":
		return Output, true
	case "input":
		return Input, true
	case "total":
		return Total, true
	}
	return Total, false
}

// Options configures a Limiter.
type Options struct {
	Now       func() time.Time
	TokenType TokenType
}

// Limiter holds the counters of the keys, teams and key × models in use.
type Limiter struct {
	now       func() time.Time
	tokenType TokenType
	shared    atomic.Pointer[sharing]

	mu        sync.RWMutex
	keys      map[[32]byte]*Counter
	teams     map[string]*Counter
	keyModels map[keyModel]*Counter
}

type keyModel struct {
	token [32]byte
	model string
}

// sharing is how the cluster grants rpm while Redis is up.
type sharing struct {
	refill RefillFunc
	want   func()
}

// RefillFunc fetches a batch of a counter's rpm from the cluster for a
// request that found this replica's grant dry, and reports whether any
// was granted.
type RefillFunc func(ctx context.Context, c *Counter) bool

// New returns a Limiter.
func New(o Options) *Limiter {
	l := &Limiter{now: o.Now, tokenType: o.TokenType,
		keys: map[[32]byte]*Counter{}, teams: map[string]*Counter{}, keyModels: map[keyModel]*Counter{}}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// Share makes rpm limits granted by the cluster: refill fetches a batch
// for a request that found the grant dry, want (which must not block)
// asks for one in the background. Counters created from now on start with
// an empty grant, so a new key's first requests cannot take its whole rpm
// on every replica before the cluster knows of it.
func (l *Limiter) Share(refill RefillFunc, want func()) {
	l.shared.Store(&sharing{refill: refill, want: want})
}

// Unshare makes every rpm local again: with Redis away, each replica holds
// every limit by itself.
func (l *Limiter) Unshare() {
	l.shared.Store(nil)
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, c := range l.keys {
		c.SetQuota(nil)
	}
	for _, c := range l.teams {
		c.SetQuota(nil)
	}
	for _, c := range l.keyModels {
		c.SetQuota(nil)
	}
}

// newCounter returns a counter, with an empty grant while rpm is shared.
func (l *Limiter) newCounter(kind Kind, id string) *Counter {
	c := &Counter{kind: kind, id: id}
	if sh := l.shared.Load(); sh != nil {
		c.quota.Store(&Quota{Want: sh.want})
	}
	return c
}

// refillWait bounds the wait of a request whose rpm grant ran dry for the
// cluster's next batch.
const refillWait = 100 * time.Millisecond

// Hold is an admitted request's hold on its counters, to End when the
// request ends. The zero Hold holds nothing.
type Hold struct {
	l       *Limiter
	entries [3]entry
	n       int
}

type entry struct {
	c       *Counter
	spec    Spec
	used    [3]int64 // requests, tokens, in flight, with this request
	took    bool     // a request of the quota was taken
	limited bool
}

// Exceeded describes the limit a request was refused for.
type Exceeded struct {
	Kind       Kind
	ID         string
	Type       Type
	Limit      int64
	Remaining  int64
	RetryAfter time.Duration
	ResetAt    time.Time
}

// Acquire admits a request of key k (team t, nil for none) for the model
// group group against every limit that applies, or refuses it with the
// limit it exceeds and counts nothing. A nil key (the admin's) is never
// limited. A key's per-model limit may name the group or any other name
// of it (names: its aliases); it is counted per group, whatever name the
// request used, so no name of the group escapes it.
func (l *Limiter) Acquire(ctx context.Context, k *keys.Key, t *keys.Team, group string, names ...string) (Hold, *Exceeded) {
	h := Hold{l: l}
	if k == nil {
		return h, nil
	}
	if s := KeySpec(k); s.any() {
		h.entries[h.n] = entry{c: l.keyCounter(k.Token), spec: s}
		h.n++
	}
	if t != nil {
		if s := TeamSpec(t); s.any() {
			h.entries[h.n] = entry{c: l.teamCounter(t.ID), spec: s}
			h.n++
		}
	}
	if len(k.ModelLimits) > 0 {
		s := ModelSpec(k, group)
		for i := 0; i < len(names) && !s.any(); i++ {
			s = ModelSpec(k, names[i])
		}
		if s.any() {
			h.entries[h.n] = entry{c: l.keyModelCounter(k.Token, group), spec: s}
			h.n++
		}
	}
	if h.n == 0 {
		return h, nil
	}
	now := l.now()
	for i := 0; i < h.n; i++ {
		e := &h.entries[i]
		typ, over, dry := e.c.admit(now.UnixNano(), e.spec, e)
		if over && dry {
			// Whatever the cluster answered (if Redis just went away, the
			// grant is gone and the limit local again), look once more.
			l.refillFor(ctx, e.c)
			now = l.now()
			typ, over, _ = e.c.admit(now.UnixNano(), e.spec, e)
		}
		if over {
			for j := range i {
				h.entries[j].c.undo(now.UnixNano(), &h.entries[j])
			}
			return Hold{}, exceeded(e, typ, now)
		}
	}
	return h, nil
}

func (l *Limiter) refillFor(ctx context.Context, c *Counter) {
	sh := l.shared.Load()
	if sh == nil || sh.refill == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, refillWait)
	defer cancel()
	sh.refill(ctx, c)
}

func exceeded(e *entry, typ Type, now time.Time) *Exceeded {
	limit := e.spec.of(typ)
	x := &Exceeded{Kind: e.c.kind, ID: e.c.id, Type: typ, Limit: limit, Remaining: max(0, limit-e.used[typ])}
	x.ResetAt = now.Truncate(time.Minute).Add(time.Minute)
	x.RetryAfter = x.ResetAt.Sub(now)
	if typ == Parallel { // a slot frees when a request ends, not at the minute
		x.ResetAt, x.RetryAfter = now.Add(time.Second), time.Second
	}
	return x
}

// End releases the request's hold, counting its tokens toward tpm.
func (h Hold) End(promptTokens, completionTokens int64) {
	if h.n == 0 {
		return
	}
	var tokens int64
	switch h.l.tokenType {
	case Output:
		tokens = completionTokens
	case Input:
		tokens = promptTokens
	default:
		tokens = promptTokens + completionTokens
	}
	now := h.l.now().UnixNano()
	for i := 0; i < h.n; i++ {
		h.entries[i].c.end(now, tokens)
	}
}

// Limited reports whether any limit applied to the request.
func (h Hold) Limited() bool { return h.n > 0 }

// Each calls f with every limit that applied to the request, its value and
// what is left of it after the request, for the x-ratelimit-* headers.
func (h Hold) Each(f func(k Kind, t Type, limit, remaining int64)) {
	for i := 0; i < h.n; i++ {
		e := &h.entries[i]
		for t := Requests; t <= Parallel; t++ {
			if lim := e.spec.of(t); lim >= 0 {
				f(e.c.kind, t, lim, lim-e.used[t])
			}
		}
	}
}

func (l *Limiter) keyCounter(token [32]byte) *Counter {
	l.mu.RLock()
	c := l.keys[token]
	l.mu.RUnlock()
	if c != nil {
		return c
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c = l.keys[token]; c == nil {
		c = l.newCounter(Key, hex.EncodeToString(token[:]))
		l.keys[token] = c
	}
	return c
}

func (l *Limiter) teamCounter(id string) *Counter {
	l.mu.RLock()
	c := l.teams[id]
	l.mu.RUnlock()
	if c != nil {
		return c
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c = l.teams[id]; c == nil {
		id = string([]byte(id)) // the key's may outlive this snapshot: own copy
		c = l.newCounter(Team, id)
		l.teams[id] = c
	}
	return c
}

func (l *Limiter) keyModelCounter(token [32]byte, model string) *Counter {
	l.mu.RLock()
	c := l.keyModels[keyModel{token, model}]
	l.mu.RUnlock()
	if c != nil {
		return c
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c = l.keyModels[keyModel{token, model}]; c == nil {
		model = string([]byte(model)) // the request's name points into its body
		c = l.newCounter(KeyModel, hex.EncodeToString(token[:])+":"+model)
		l.keyModels[keyModel{token, model}] = c
	}
	return c
}

// idle is how long a counter with nothing in flight is kept after its last
// request: past the end of the next minute, its counts are all zero.
const idle = 2 * time.Minute

// Active returns the counters used in the last two minutes or with
// requests in flight, and forgets the others.
func (l *Limiter) Active() []*Counter {
	now := l.now().UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*Counter, 0, len(l.keys)+len(l.teams)+len(l.keyModels))
	keep := func(c *Counter) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.inFlight > 0 || now-c.used < int64(idle)
	}
	for t, c := range l.keys {
		if keep(c) {
			out = append(out, c)
		} else {
			delete(l.keys, t)
		}
	}
	for id, c := range l.teams {
		if keep(c) {
			out = append(out, c)
		} else {
			delete(l.teams, id)
		}
	}
	for km, c := range l.keyModels {
		if keep(c) {
			out = append(out, c)
		} else {
			delete(l.keyModels, km)
		}
	}
	return out
}

// Run forgets the counters of keys, teams and models unused for two
// minutes, once a minute, until ctx ends (the cluster does it at every
// exchange when Redis is configured; Run holds memory to the keys in use
// without it).
func (l *Limiter) Run(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			l.Active()
		}
	}
}
