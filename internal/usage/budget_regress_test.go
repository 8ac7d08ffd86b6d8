package usage

import (
	"context"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/store"
)

// memStore is a store that keeps spend in a map: a fake, to hold a flush
// in the middle of its write (slowStore), which a real database cannot be
// made to do on cue.
type memStore struct{ spend map[[32]byte]float64 }

func (f *memStore) WriteUsage(ctx context.Context, b store.UsageBatch) (store.UsageTotals, error) {
	out := store.UsageTotals{Keys: map[[32]byte]store.SpendTotal{}, Teams: map[string]store.SpendTotal{}}
	for t, a := range b.Keys {
		f.spend[t] += a.Amount
		out.Keys[t] = store.SpendTotal{Spend: f.spend[t]}
	}
	return out, nil
}

// TestIdleAccountKeepsSpend: a key idle for hours is not forgotten while
// its snapshot's spend is older than what was stored: it would come back
// with the snapshot's spend, and a spent budget would open again.
func TestIdleAccountKeepsSpend(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	fs := &memStore{spend: map[[32]byte]float64{}}
	l := New(Options{Store: fs, Now: c.Now})
	k := &keys.Key{Token: keys.Token("sk-a"), MaxBudget: ptr(10.0)} // snapshot: spend 0, never reloaded (SQLite)
	l.Record(Event{Token: k.Token, Key: k, Model: "m", Cost: 9.99})
	if err := l.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := l.CheckBudget(k, nil, c.Now()); err != nil {
		t.Fatalf("under budget: %v", err)
	}
	l.Record(Event{Token: k.Token, Key: k, Model: "m", Cost: 0.02})
	_ = l.Flush(t.Context())
	if err := l.CheckBudget(k, nil, c.Now()); err == nil {
		t.Fatalf("10.01 spent of 10: want refused")
	}
	c.Add(2 * time.Hour)
	_ = l.Flush(t.Context()) // prunes the idle account
	if err := l.CheckBudget(k, nil, c.Now()); err == nil {
		t.Errorf("key over budget (store holds %v) admitted after an idle hour", fs.spend[k.Token])
	}
}

type slowStore struct {
	memStore
	entered, release chan struct{}
}

func (s *slowStore) WriteUsage(ctx context.Context, b store.UsageBatch) (store.UsageTotals, error) {
	close(s.entered)
	<-s.release
	return s.memStore.WriteUsage(ctx, b)
}

// TestSpendBeingWrittenCounts: while a flush writes, the amounts it took
// still count toward the budget.
func TestSpendBeingWrittenCounts(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ss := &slowStore{memStore: memStore{spend: map[[32]byte]float64{}}, entered: make(chan struct{}), release: make(chan struct{})}
	l := New(Options{Store: ss, Now: c.Now})
	k := &keys.Key{Token: keys.Token("sk-a"), MaxBudget: ptr(10.0)}
	l.Record(Event{Token: k.Token, Key: k, Model: "m", Cost: 12})
	if err := l.CheckBudget(k, nil, c.Now()); err == nil {
		t.Fatal("want refused before the flush")
	}
	done := make(chan error)
	go func() { done <- l.Flush(context.Background()) }()
	<-ss.entered
	err := l.CheckBudget(k, nil, c.Now())
	close(ss.release)
	<-done
	if err == nil {
		t.Errorf("spent key admitted while its spend was being written")
	}
}
