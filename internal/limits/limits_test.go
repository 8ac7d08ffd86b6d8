package limits

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/keys"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newLimiter(tt TokenType) (*Limiter, *clock) {
	clk := &clock{t: time.Date(2026, 12, 5, 10, 0, 10, 0, time.UTC)}
	return New(Options{Now: clk.Now, TokenType: tt}), clk
}

func ptr(v int64) *int64 { return &v }

func key(b byte, mod func(*keys.Key)) *keys.Key {
	k := &keys.Key{Token: [32]byte{b}}
	if mod != nil {
		mod(k)
	}
	return k
}

func TestRPMPerKeyAndMinute(t *testing.T) {
	t.Parallel()
	l, clk := newLimiter(Output)
	k := key(1, func(k *keys.Key) { k.RPMLimit = ptr(3) })
	for i := range 3 {
		h, x := l.Acquire(context.Background(), k, nil, "m")
		if x != nil {
			t.Fatalf("request %d refused: %+v", i+1, x)
		}
		h.End(0, 0)
	}
	_, x := l.Acquire(context.Background(), k, nil, "m")
	if x == nil || x.Kind != Key || x.Type != Requests || x.Limit != 3 || x.Remaining != 0 {
		t.Fatalf("4th request: %+v, want refused for api_key requests", x)
	}
	if want := 50 * time.Second; x.RetryAfter != want || !x.ResetAt.Equal(time.Date(2026, 12, 5, 10, 1, 0, 0, time.UTC)) {
		t.Errorf("retry after %v, reset at %v; want %v and the next minute", x.RetryAfter, x.ResetAt, want)
	}
	// Another key is not affected.
	if _, x := l.Acquire(context.Background(), key(2, func(k *keys.Key) { k.RPMLimit = ptr(3) }), nil, "m"); x != nil {
		t.Errorf("another key refused: %+v", x)
	}
	clk.Advance(50 * time.Second)
	if _, x := l.Acquire(context.Background(), k, nil, "m"); x != nil {
		t.Errorf("refused in the next minute: %+v", x)
	}
}

func TestParallelAndTokens(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(Output)
	k := key(1, func(k *keys.Key) { k.MaxParallelRequests = ptr(2); k.TPMLimit = ptr(100) })
	h1, _ := l.Acquire(context.Background(), k, nil, "m")
	h2, _ := l.Acquire(context.Background(), k, nil, "m")
	if _, x := l.Acquire(context.Background(), k, nil, "m"); x == nil || x.Type != Parallel || x.RetryAfter != time.Second {
		t.Fatalf("third in flight: %+v, want refused for max_parallel_requests", x)
	}
	h1.End(1000, 60) // output tokens count (LiteLLM's default)
	h3, x := l.Acquire(context.Background(), k, nil, "m")
	if x != nil {
		t.Fatalf("refused after one ended: %+v", x)
	}
	var remaining = map[Type]int64{}
	h3.Each(func(_ Kind, t Type, _, rem int64) { remaining[t] = rem })
	if remaining[Tokens] != 40 || remaining[Parallel] != 0 {
		t.Errorf("remaining %v, want 40 tokens and 0 parallel", remaining)
	}
	h2.End(0, 50)
	h3.End(0, 0)
	if _, x := l.Acquire(context.Background(), k, nil, "m"); x == nil || x.Type != Tokens || x.Limit != 100 {
		t.Fatalf("after 110 tokens: %+v, want refused for tokens", x)
	}
}

func TestTeamSharedAndAllOrNothing(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(Total)
	team := &keys.Team{ID: "t1", RPMLimit: ptr(2)}
	a := key(1, func(k *keys.Key) { k.TeamID = "t1"; k.RPMLimit = ptr(5) })
	b := key(2, func(k *keys.Key) { k.TeamID = "t1"; k.RPMLimit = ptr(5) })
	if _, x := l.Acquire(context.Background(), a, team, "m"); x != nil {
		t.Fatal(x)
	}
	if _, x := l.Acquire(context.Background(), b, team, "m"); x != nil {
		t.Fatal(x)
	}
	_, x := l.Acquire(context.Background(), a, team, "m")
	if x == nil || x.Kind != Team || x.ID != "t1" {
		t.Fatalf("third request of the team: %+v, want refused by the team", x)
	}
	// The team's refusal took nothing from the key: 1 of its 5 used.
	var got int64
	h, _ := l.Acquire(context.Background(), a, nil, "m")
	h.Each(func(k Kind, t Type, _, rem int64) {
		if k == Key && t == Requests {
			got = rem
		}
	})
	if got != 3 {
		t.Errorf("key has %d requests left, want 3 (the refused one not counted)", got)
	}
}

func TestModelPerKey(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(Output)
	k := key(1, func(k *keys.Key) { k.ModelLimits = keys.ModelLimitsOf(map[string]int64{"small": 1}, nil) })
	if _, x := l.Acquire(context.Background(), k, nil, "small"); x != nil {
		t.Fatal(x)
	}
	if _, x := l.Acquire(context.Background(), k, nil, "small"); x == nil || x.Kind != KeyModel {
		t.Fatalf("second request for small: %+v, want refused for model_per_key", x)
	}
	if _, x := l.Acquire(context.Background(), k, nil, "big"); x != nil {
		t.Errorf("another model refused: %+v", x)
	}
	// A limit set on an alias of a group (or on the group) holds for the
	// group whatever name a request uses: the caller passes the group
	// and its aliases, and one counter counts them all.
	for _, limit := range []string{"fast", "group"} {
		k := key(2, func(k *keys.Key) { k.ModelLimits = keys.ModelLimitsOf(map[string]int64{limit: 1}, nil) })
		l, _ := newLimiter(Output)
		if _, x := l.Acquire(context.Background(), k, nil, "group", "fast"); x != nil {
			t.Fatalf("limit on %s, first request: %+v", limit, x)
		}
		if _, x := l.Acquire(context.Background(), k, nil, "group", "fast"); x == nil {
			t.Errorf("limit on %s: a second request escaped it", limit)
		}
	}
}

func TestQuotaFromCluster(t *testing.T) {
	t.Parallel()
	l, clk := newLimiter(Output)
	k := key(1, func(k *keys.Key) { k.RPMLimit = ptr(100) })
	h, _ := l.Acquire(context.Background(), k, nil, "m") // creates the counter
	h.End(0, 0)
	c := l.Active()[0]
	q := &Quota{}
	c.SetQuota(q)
	now := clk.Now().UnixNano()
	q.Grant(now, 1)
	if _, x := l.Acquire(context.Background(), k, nil, "m"); x != nil {
		t.Fatalf("refused with a grant in hand: %+v", x)
	}
	refills := 0
	l.Share(func(ctx context.Context, c *Counter) bool {
		refills++
		c.Quota().Grant(now, 2)
		return true
	}, nil)
	if _, x := l.Acquire(context.Background(), k, nil, "m"); x != nil || refills != 1 {
		t.Fatalf("dry grant: %+v after %d refills, want admitted after one", x, refills)
	}
	q.Spent(now)
	_, _ = l.Acquire(context.Background(), k, nil, "m")
	if _, x := l.Acquire(context.Background(), k, nil, "m"); x == nil || x.Type != Requests {
		t.Fatalf("cluster's minute spent: %+v, want refused", x)
	}
	l.Unshare() // Redis away: the replica holds the whole rpm itself
	if _, x := l.Acquire(context.Background(), k, nil, "m"); x != nil {
		t.Fatalf("refused with the rpm local again: %+v", x)
	}
}

// BenchmarkAcquire is the request path's cost of a key with an rpm and a
// parallel limit.
func BenchmarkAcquire(b *testing.B) {
	l := New(Options{})
	k := key(1, func(k *keys.Key) { k.RPMLimit = ptr(1 << 40); k.MaxParallelRequests = ptr(1 << 20) })
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		h, _ := l.Acquire(ctx, k, nil, "m")
		h.End(1, 1)
	}
}

// BenchmarkAcquireModelLimit is BenchmarkAcquire for a key with a limit on
// the model called (model_rpm_limit): the lookup allocates nothing either.
func BenchmarkAcquireModelLimit(b *testing.B) {
	l := New(Options{})
	k := key(1, func(k *keys.Key) {
		k.RPMLimit = ptr(1 << 40)
		k.ModelLimits = keys.ModelLimitsOf(map[string]int64{"a": 1 << 40, "m": 1 << 40, "z": 1}, nil)
	})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		h, _ := l.Acquire(ctx, k, nil, "m")
		h.End(1, 1)
	}
}

// TestIdleCountersForgotten: a key's counters go once it has been idle for
// two minutes with nothing in flight, and not before.
func TestIdleCountersForgotten(t *testing.T) {
	t.Parallel()
	l, clk := newLimiter(Output)
	k := key(1, func(k *keys.Key) { k.RPMLimit = ptr(10) })
	busy := key(2, func(k *keys.Key) { k.RPMLimit = ptr(10) })
	h, _ := l.Acquire(context.Background(), k, nil, "m")
	h.End(0, 0)
	held, _ := l.Acquire(context.Background(), busy, nil, "m") // still in flight
	if n := len(l.Active()); n != 2 {
		t.Fatalf("%d active counters, want 2", n)
	}
	clk.Advance(3 * time.Minute)
	if got := l.Active(); len(got) != 1 || got[0].ID() != keyHex(busy) {
		t.Errorf("after 3 idle minutes: %d counters, want only the one with a request in flight", len(got))
	}
	held.End(0, 0)
}

func keyHex(k *keys.Key) string { return keys.TokenHex(k.Token) }
