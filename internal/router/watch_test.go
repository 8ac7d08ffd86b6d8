package router

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/testutil"
)

// TestCooldownLoggedOncePerTransition: a burst of failures from requests
// already in flight logs one cooldown, and its end is logged once, within
// Watch's interval, with no traffic needed to notice it.
func TestCooldownLoggedOncePerTransition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs testutil.Buffer
		settings := config.DefaultRouterSettings() // cooldown_time 5s
		r := New([]config.Model{model("g", "a"), model("g", "b")}, settings, slog.New(slog.NewTextHandler(&logs, nil)))
		d, _ := r.Deployment("a")
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- r.Watch(ctx, time.Second) }()

		started := 0
		for range 10 { // ten in-flight requests all fail on a dead server
			if r.Record(d, Outcome{Class: ConnectionError}) {
				started++
			}
		}
		if started != 1 {
			t.Errorf("Record reported %d cooldown starts for one burst, want 1", started)
		}
		count := func(msg string) int { return strings.Count(logs.String(), msg) }
		if n := count("deployment cooling down"); n != 1 {
			t.Errorf("cooldown start logged %d times, want 1:\n%s", n, logs.String())
		}
		time.Sleep(4 * time.Second)
		if n := count("cooldown over"); n != 0 {
			t.Errorf("cooldown end logged during the cooldown:\n%s", logs.String())
		}
		time.Sleep(2 * time.Second) // the cooldown ended at 5s; the watch ticks at 6s
		synctest.Wait()
		if n := count("deployment cooldown over; back in rotation"); n != 1 {
			t.Errorf("cooldown end logged %d times, want 1:\n%s", n, logs.String())
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := count("cooldown over"); n != 1 {
			t.Errorf("cooldown end logged %d times after 10 more seconds, want 1", n)
		}
		if !strings.Contains(logs.String(), "model_id=a") {
			t.Errorf("log lines do not name the deployment:\n%s", logs.String())
		}
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	})
}

// TestShortCooldownEndLogged: a cooldown that starts and ends between two
// ticks of Watch still has its end logged, once.
func TestShortCooldownEndLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs testutil.Buffer
		r := New([]config.Model{model("g", "a"), model("g", "b")}, config.DefaultRouterSettings(), slog.New(slog.NewTextHandler(&logs, nil)))
		d, _ := r.Deployment("a")
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() { _ = r.Watch(ctx, time.Second) }()
		synctest.Wait()
		time.Sleep(100 * time.Millisecond)
		r.Record(d, Outcome{Class: ConnectionError, RetryAfter: 300 * time.Millisecond}) // ends before the next tick
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if n := strings.Count(logs.String(), "deployment cooldown over"); n != 1 {
			t.Errorf("a 300 ms cooldown's end logged %d times, want 1:\n%s", n, logs.String())
		}
	})
}
