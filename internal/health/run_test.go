package health_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/health"
	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/testutil"
)

const interval = 20 * time.Millisecond

// waitFor polls cond until it holds, failing the test after a bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startRun runs p over ds in the background and returns a function that
// stops it and returns Run's error.
func startRun(t *testing.T, p *health.Prober, ds ...*deployment.Deployment) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- p.Run(ctx, interval, func() []*deployment.Deployment { return ds })
	}()
	stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context was cancelled")
			return nil
		}
	})
	t.Cleanup(func() { _ = stop() })
	return stop
}

func available(d *deployment.Deployment) bool {
	return d.Available(time.Now().UnixNano(), 0)
}

// TestRunFollowsBackend checks the behaviour routing sees: a backend whose
// /health fails leaves rotation, comes back when it recovers, and the
// outage is visible in Latest and the log.
func TestRunFollowsBackend(t *testing.T) {
	mock := startMock(t, mockllm.Config{})
	d := dep{id: "gpu1"}.build(mock.URL() + "/v1")
	logs := &testutil.Buffer{}
	var probed atomic.Int64 // probes run, through Options.Observe
	p := health.New(health.Options{
		Client:  &http.Client{},
		Timeout: 2 * time.Second,
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
		Observe: func(health.Result) { probed.Add(1) },
	})
	stop := startRun(t, p, d)

	waitFor(t, "the first round passes", func() bool {
		pr := d.Probe()
		return pr != nil && pr.Healthy && p.Latest()["gpu1"].Healthy
	})
	if !available(d) {
		t.Fatal("healthy deployment is not available")
	}

	mock.SetFaults(mockllm.Faults{Unhealthy: true})
	waitFor(t, "the deployment leaves rotation", func() bool {
		pr := d.Probe()
		return pr != nil && !pr.Healthy && !available(d)
	})
	if pr := d.Probe(); pr.Status != 503 || pr.Error != "GET /health: 503 Service Unavailable" {
		t.Errorf("Probe() = %d %q, want 503 and the failed request", pr.Status, pr.Error)
	}
	waitFor(t, "Latest reports the failure", func() bool {
		r, ok := p.Latest()["gpu1"]
		return ok && !r.Healthy && r.Status == 503
	})
	waitFor(t, "the log names the group left without a deployment", func() bool {
		for line := range strings.Lines(logs.String()) {
			if strings.Contains(line, "every deployment of the model group failed") &&
				strings.Contains(line, "group=qwen3-14b") {
				return true
			}
		}
		return false
	})

	rounds := probed.Load()
	waitFor(t, "more rounds fail", func() bool { return probed.Load() >= rounds+2 })
	mock.SetFaults(mockllm.Faults{})
	waitFor(t, "the deployment returns to rotation", func() bool {
		pr := d.Probe()
		return pr != nil && pr.Healthy && available(d) && p.Latest()["gpu1"].Healthy
	})
	waitFor(t, "the log says the group is back", func() bool {
		return strings.Contains(logs.String(), "the model group has a healthy deployment again")
	})
	// Each transition is logged once, however many rounds it lasted.
	for _, msg := range []string{"every deployment of the model group failed", "deployment failed its probe; out of rotation",
		"deployment passed its probe; back in rotation", "the model group has a healthy deployment again"} {
		if n := strings.Count(logs.String(), msg); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", msg, n, logs.String())
		}
	}

	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

// TestRunWarnsOnlyForEmptyGroups checks that the warning names a group with
// no healthy deployment left, once, and not one that still has one.
func TestRunWarnsOnlyForEmptyGroups(t *testing.T) {
	up := startMock(t, mockllm.Config{Name: "up"})
	down := startMock(t, mockllm.Config{Name: "down", Faults: mockllm.Faults{Unhealthy: true}})
	ds := []*deployment.Deployment{
		dep{id: "a1", group: "alpha"}.build(up.URL() + "/v1"),
		dep{id: "a2", group: "alpha"}.build(down.URL() + "/v1"),
		dep{id: "b1", group: "beta"}.build(down.URL() + "/v1"),
	}
	logs := &testutil.Buffer{}
	var probed atomic.Int64
	p := health.New(health.Options{Client: &http.Client{}, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Observe: func(health.Result) { probed.Add(1) }})
	stop := startRun(t, p, ds...)
	waitFor(t, "the third round ends", func() bool { return probed.Load() >= 3*int64(len(ds)) })
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	if n := strings.Count(logs.String(), "group=beta deployments=1"); n != 1 {
		t.Errorf("warned %d times about group beta over three rounds, want once:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), "group=alpha deployments") {
		t.Errorf("warned about group alpha, which has a healthy deployment:\n%s", logs)
	}
	if got := len(p.Latest()); got != 3 {
		t.Errorf("Latest has %d results, want 3", got)
	}
	if !available(ds[0]) || available(ds[1]) || available(ds[2]) {
		t.Errorf("available = %v %v %v, want true false false", available(ds[0]), available(ds[1]), available(ds[2]))
	}
}

// TestRunStopDoesNotMarkUnhealthy checks that a round cut short by shutdown
// is not applied: stopping the gateway must not take backends out of
// rotation.
func TestRunStopDoesNotMarkUnhealthy(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
	d := dep{}.build(srv.URL + "/v1")
	p := health.New(health.Options{Client: &http.Client{}})
	stop := startRun(t, p, d)
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("no probe arrived")
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	if pr := d.Probe(); pr != nil {
		t.Errorf("Probe() = %+v after a cancelled round, want nil", pr)
	}
	if !available(d) {
		t.Error("deployment left rotation because the gateway stopped")
	}
	if got := p.Latest(); len(got) != 0 {
		t.Errorf("Latest() = %v, want empty", got)
	}
}

func TestRunRejectsBadInterval(t *testing.T) {
	p := health.New(health.Options{Client: &http.Client{}})
	if err := p.Run(t.Context(), 0, func() []*deployment.Deployment { return nil }); err == nil {
		t.Error("Run with interval 0 returned nil, want an error")
	}
}
