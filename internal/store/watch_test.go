package store

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/store/storetest"
)

// TestWatch: a write through one store reaches another store's Watch at
// once, and a quiet notification connection is checked, not dropped.
func TestWatch(t *testing.T) {
	old := listenCheck
	listenCheck = 100 * time.Millisecond
	t.Cleanup(func() { listenCheck = old })
	url := storetest.PostgresURL(t)
	writer, reader := open(t, url, "k"), open(t, url, "k")

	var calls atomic.Int64
	changed := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- reader.Watch(ctx, func() { calls.Add(1); changed <- struct{}{} })
	}()
	select { // listening: one call, for what happened before
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch never started listening")
	}
	time.Sleep(500 * time.Millisecond) // several quiet checks
	if n := calls.Load(); n != 1 {
		t.Fatalf("a quiet connection caused %d reloads, want 1 (the first)", n)
	}
	start := time.Now()
	if err := writer.SaveRouterSettings(context.Background(), map[string]any{"num_retries": 3}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
		if took := time.Since(start); took > time.Second {
			t.Errorf("the notification took %v", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a committed write was not notified")
	}
	// A failed write notifies nobody: NOTIFY is part of its transaction.
	writer.beforeCommit = func(context.Context) error { return context.DeadlineExceeded }
	_ = writer.SaveRouterSettings(context.Background(), map[string]any{"num_retries": 4})
	select {
	case <-changed:
		t.Error("a rolled-back write was notified")
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Watch returned %v", err)
	}
}
