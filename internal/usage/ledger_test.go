package usage

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/store"
	"github.com/maasgate/maasgate/internal/store/storetest"
	"github.com/maasgate/maasgate/internal/testutil"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// clock is an injected time, moved by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openStore(t *testing.T, url string) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), url, "sk-test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func databases(t *testing.T) map[string]string {
	return map[string]string{
		"sqlite":   "sqlite://" + filepath.Join(t.TempDir(), "maasgate.db"),
		"postgres": storetest.PostgresURL(t),
	}
}

func ptr[T any](v T) *T { return &v }

// seed stores a team and a key of it and returns them as loaded.
func seed(t *testing.T, s *store.Store, k keys.Key, tm keys.Team) (*keys.Key, *keys.Team) {
	t.Helper()
	team, err := s.CreateTeam(t.Context(), tm)
	if err != nil {
		t.Fatal(err)
	}
	k.TeamID = team.ID
	key, err := s.CreateKey(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	return key, team
}

func newKey(secret string) keys.Key {
	return keys.Key{Token: keys.Token(secret), KeyName: "sk-...", Alias: "alias-" + secret}
}

// TestShutdownLosesNothing: what is recorded before Run's context ends is
// in the store once Run returns, spend and roll-ups, read by a new process.
func TestShutdownLosesNothing(t *testing.T) {
	t.Parallel()
	for name, url := range databases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, url)
			key, team := seed(t, s, newKey("sk-a"), keys.Team{ID: "team-a", Alias: "qa"})
			key.Spend = 0
			at := time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)
			l := New(Options{Store: s, FlushInterval: time.Hour, Now: func() time.Time { return at }})
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- l.Run(ctx) }()
			const n = 200
			for i := range n {
				l.Record(Event{Token: key.Token, Key: key, Team: team, Model: "qwen", Provider: "openai", Endpoint: "/chat/completions",
					PromptTokens: 10, CompletionTokens: 5, Cost: 0.25, Failed: i%10 == 0})
			}
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v, want context.Canceled after a clean final flush", err)
			}
			s.Close()

			again := openStore(t, url)
			k, err := again.Key(t.Context(), key.Token)
			if err != nil {
				t.Fatal(err)
			}
			tm, err := again.Team(t.Context(), team.ID)
			if err != nil {
				t.Fatal(err)
			}
			if k.Spend != n*0.25 || tm.Spend != n*0.25 {
				t.Errorf("stored spend: key %v, team %v; want %v each", k.Spend, tm.Spend, n*0.25)
			}
			rows, total, err := again.DailySpend(t.Context(), store.DailyFilter{Start: "2025-06-01", End: "2025-06-03"})
			if err != nil || total != 1 {
				t.Fatalf("daily rows: %d, %v; want 1", total, err)
			}
			r := rows[0]
			if r.Date != "2025-06-02" || r.Requests != n || r.Failed != n/10 || r.Successful != n-n/10 ||
				r.PromptTokens != 10*n || r.CompletionTokens != 5*n || r.Spend != n*0.25 || r.KeyAlias != "alias-sk-a" || r.TeamID != "team-a" {
				t.Errorf("daily row = %+v", r)
			}
		})
	}
}

// failOnce fails its first write, as a database that is briefly away.
type failOnce struct {
	*store.Store
	failed atomic.Bool
}

func (f *failOnce) WriteUsage(ctx context.Context, b store.UsageBatch) (store.UsageTotals, error) {
	if f.failed.CompareAndSwap(false, true) {
		return store.UsageTotals{}, errors.New("connection refused")
	}
	return f.Store.WriteUsage(ctx, b)
}

// TestFailedFlushKeeps: a flush that fails keeps its amounts, and the next
// one writes them with what came after; live spend never dips.
func TestFailedFlushKeeps(t *testing.T) {
	t.Parallel()
	s := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "m.db"))
	key, team := seed(t, s, newKey("sk-b"), keys.Team{ID: "t"})
	l := New(Options{Store: &failOnce{Store: s}})
	ev := Event{Token: key.Token, Key: key, Team: team, Model: "m", Cost: 1}
	l.Record(ev)
	if err := l.Flush(t.Context()); err == nil {
		t.Fatal("the first flush did not fail")
	}
	if got := l.KeySpend(key); got != 1 {
		t.Errorf("live spend after a failed flush = %v, want 1", got)
	}
	l.Record(ev)
	if err := l.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	k, _ := s.Key(t.Context(), key.Token)
	rows, _, _ := s.DailySpend(t.Context(), store.DailyFilter{Start: "2000-01-01", End: "2999-01-01"})
	if k.Spend != 2 || len(rows) != 1 || rows[0].Requests != 2 {
		t.Errorf("after the retry: stored spend %v, rows %+v; want 2 and one row of 2 requests", k.Spend, rows)
	}
	if got := l.KeySpend(key); got != 2 {
		t.Errorf("live spend = %v, want 2", got)
	}
}

// TestBudgetReset: a key spends its budget and is refused; once its
// budget_reset_at passes it is allowed at once, before any store write,
// and the next flush resets the stored spend and sets the next reset.
func TestBudgetReset(t *testing.T) {
	t.Parallel()
	for name, url := range databases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, url)
			c := &clock{t: time.Date(2025, 6, 4, 22, 0, 0, 0, time.UTC)}
			reset := time.Date(2025, 6, 5, 0, 0, 0, 0, time.UTC)
			k := newKey("sk-c")
			k.MaxBudget, k.BudgetDuration, k.BudgetResetAt = ptr(1.0), "1d", keys.TimeOf(reset)
			key, team := seed(t, s, k, keys.Team{ID: "t", MaxBudget: ptr(10.0), BudgetDuration: "1d", BudgetResetAt: reset})
			l := New(Options{Store: s, Now: c.Now})
			ev := Event{Token: key.Token, Key: key, Team: team, Model: "m", Cost: 0.5}

			l.Record(ev)
			if err := l.CheckBudget(key, team, c.Now()); err != nil {
				t.Fatalf("at half the budget: %v", err)
			}
			l.Record(ev)
			err := l.CheckBudget(key, team, c.Now())
			var be *BudgetError
			if !errors.As(err, &be) || err.Error() != "Budget has been exceeded! Current cost: 1.0, Max budget: 1.0" {
				t.Fatalf("at the budget: %v, want the key's budget_exceeded", err)
			}
			if err := l.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}

			c.Add(2*time.Hour + time.Second) // past midnight
			if err := l.CheckBudget(key, team, c.Now()); err != nil {
				t.Fatalf("after the reset time, before any flush: %v", err)
			}
			if got := l.KeySpend(key); got != 0 {
				t.Errorf("live spend after the reset = %v, want 0", got)
			}
			l.Record(ev)
			if err := l.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			stored, _ := s.Key(t.Context(), key.Token)
			next := time.Date(2025, 6, 6, 0, 0, 0, 0, time.UTC)
			if stored.Spend != 0.5 || !stored.BudgetResetAt.Time().Equal(next) {
				t.Errorf("stored after the reset: spend %v, budget_reset_at %v; want 0.5 and %v", stored.Spend, stored.BudgetResetAt, next)
			}
			st, _ := s.Team(t.Context(), team.ID)
			if st.Spend != 0.5 || !st.BudgetResetAt.Equal(next) {
				t.Errorf("team stored after the reset: spend %v, budget_reset_at %v", st.Spend, st.BudgetResetAt)
			}
			if got := l.KeySpend(key); got != 0.5 {
				t.Errorf("live spend = %v, want 0.5 (the stale snapshot's 0 plus the new period's)", got)
			}
		})
	}
}

// TestIdleReset: with Options.Keys, a key nobody uses is reset on schedule.
func TestIdleReset(t *testing.T) {
	t.Parallel()
	s := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "m.db"))
	k := newKey("sk-idle")
	k.Spend, k.MaxBudget, k.BudgetDuration, k.BudgetResetAt = 3, ptr(5.0), "1h", keys.TimeOf(time.Date(2025, 6, 4, 10, 0, 0, 0, time.UTC))
	key, team := seed(t, s, k, keys.Team{ID: "t"})
	set := keys.NewSet([]*keys.Key{key}, team)
	l := New(Options{Store: s, Keys: func() *keys.Set { return set }, Now: func() time.Time { return time.Date(2025, 6, 4, 10, 30, 0, 0, time.UTC) }})
	if err := l.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	stored, _ := s.Key(t.Context(), key.Token)
	if stored.Spend != 0 || !stored.BudgetResetAt.Time().Equal(time.Date(2025, 6, 4, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("stored: spend %v, budget_reset_at %v; want 0 and 11:00", stored.Spend, stored.BudgetResetAt)
	}
}

// TestTeamBudget: a team is refused only past its budget, with LiteLLM's
// message naming it.
func TestTeamBudget(t *testing.T) {
	t.Parallel()
	key := &keys.Key{Token: keys.Token("sk-d"), TeamID: "t1"}
	team := &keys.Team{ID: "t1", MaxBudget: ptr(2.0)}
	l := New(Options{})
	l.Record(Event{Token: key.Token, Key: key, Team: team, Cost: 2})
	if err := l.CheckBudget(key, team, time.Now()); err != nil {
		t.Errorf("at the team's budget: %v, want allowed (team spend > max_budget)", err)
	}
	l.Record(Event{Token: key.Token, Key: key, Team: team, Cost: 0.5})
	err := l.CheckBudget(key, team, time.Now())
	if err == nil || err.Error() != "Budget has been exceeded! Team=t1 Current cost: 2.5, Max budget: 2.0" || !errors.Is(err, ErrBudgetExceeded) {
		t.Errorf("past the team's budget: %v", err)
	}
	if e := err.(*BudgetError).OpenAI(); e.Status != 400 || e.Type != "budget_exceeded" || e.Param != "" {
		t.Errorf("OpenAI() = %+v", e)
	}
	zero := &keys.Key{Token: keys.Token("sk-z"), MaxBudget: ptr(0.0)}
	if err := l.CheckBudget(zero, nil, time.Now()); err == nil {
		t.Error("a key with max_budget 0 was allowed (LiteLLM refuses at spend >= max_budget)")
	}
}

// TestReplicasShareSpend: two replicas on one Redis see each other's spend
// within a second, and a budget spent on one is refused on the other.
func TestReplicasShareSpend(t *testing.T) {
	t.Parallel()
	rs := testutil.StartRedis(t)
	key := &keys.Key{Token: keys.Token("sk-e"), MaxBudget: ptr(1.0)}
	var ledgers []*Ledger
	for range 2 {
		rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
		t.Cleanup(func() { rdb.Close() })
		l := New(Options{Redis: rdb, SyncInterval: 20 * time.Millisecond})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- l.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		ledgers = append(ledgers, l)
	}
	a, b := ledgers[0], ledgers[1]
	if err := b.CheckBudget(key, nil, time.Now()); err != nil { // b tracks the key from its first request
		t.Fatal(err)
	}
	a.Record(Event{Token: key.Token, Key: key, Cost: 0.75})
	start := time.Now()
	testutil.Eventually(t, "replica b sees a's spend", func() bool { return b.KeySpend(key) == 0.75 })
	if took := time.Since(start); took > time.Second {
		t.Errorf("b saw a's spend after %v, want within a second", took)
	}
	b.Record(Event{Token: key.Token, Key: key, Cost: 0.25})
	testutil.Eventually(t, "replica a refuses the key b spent", func() bool { return a.CheckBudget(key, nil, time.Now()) != nil })
	if err := b.CheckBudget(key, nil, time.Now()); err == nil {
		t.Error("replica b allows the key whose budget is spent")
	}
	if a.Err() != nil || b.Err() != nil {
		t.Errorf("Err = %v, %v; want nil while Redis is up", a.Err(), b.Err())
	}
}

func BenchmarkRecord(b *testing.B) {
	key := &keys.Key{Token: keys.Token("sk-bench"), MaxBudget: ptr(1e9), TeamID: "t"}
	team := &keys.Team{ID: "t", MaxBudget: ptr(1e9)}
	l := New(Options{})
	ev := Event{Token: key.Token, Key: key, Team: team, Model: "qwen", Provider: "openai", Endpoint: "/chat/completions", PromptTokens: 100, CompletionTokens: 20, Cost: 1e-5}
	l.Record(ev)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		l.Record(ev)
		if err := l.CheckBudget(key, team, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}
