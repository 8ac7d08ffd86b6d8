package deployment

import (
	"sync"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/config"
)

// minute0 is the start of a minute; the tests step from it with explicit
// times rather than a clock.
var minute0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).UnixNano()

func at(d time.Duration) int64 { return minute0 + int64(d) }

func TestMinuteCountRollsOver(t *testing.T) {
	var c minuteCount
	steps := []struct {
		name string
		now  time.Duration // since minute0
		add  int64         // 0 = load only
		want int64
	}{
		{"first add", 0, 5, 5},
		{"same minute adds up", 30 * time.Second, 7, 12},
		{"last nanosecond of the minute", time.Minute - 1, 0, 12},
		{"next minute starts at zero", time.Minute, 0, 0},
		{"add in the next minute does not carry over", time.Minute + time.Second, 3, 3},
		{"only the latest minute is kept", 59 * time.Second, 0, 0},
		{"negative adds are ignored", time.Minute + 2*time.Second, -4, 3},
		{"a minute later still", 3*time.Minute + 10*time.Second, 1, 1},
	}
	for _, s := range steps {
		got := c.load(at(s.now))
		if s.add != 0 {
			got = c.add(at(s.now), s.add)
		}
		if got != s.want {
			t.Errorf("%s: count = %d, want %d", s.name, got, s.want)
		}
		if s.add != 0 && c.load(at(s.now)) != got {
			t.Errorf("%s: load = %d after add returned %d", s.name, c.load(at(s.now)), got)
		}
	}
}

func TestMinuteCountSaturates(t *testing.T) {
	var c minuteCount
	c.add(minute0, countMask-1)
	if got := c.add(minute0, 10); got != countMask {
		t.Errorf("count past the limit = %d, want it held at %d", got, int64(countMask))
	}
}

func TestMinuteUsageLimitsAvailability(t *testing.T) {
	d := New(config.Model{Name: "g", ID: "a", Params: config.Params{RPM: 2, TPM: 1000}}, FromConfig)
	steps := []struct {
		name          string
		now           time.Duration
		requests      int64
		tokens        int64
		wantAvailable bool
	}{
		{"fresh", 0, 0, 0, true},
		{"one request, some tokens", time.Second, 1, 400, true},
		{"at tpm", 2 * time.Second, 0, 600, false},
		{"new minute resets tpm", time.Minute, 0, 0, true},
		{"at rpm", time.Minute + time.Second, 2, 10, false},
		{"new minute resets rpm", 2 * time.Minute, 0, 0, true},
	}
	for _, s := range steps {
		now := at(s.now)
		for range s.requests {
			d.CountRequest(now)
		}
		d.AddTokens(now, s.tokens)
		if got := d.Available(now, 0); got != s.wantAvailable {
			reqs, toks := d.MinuteUsage(now)
			t.Errorf("%s: Available = %v with %d requests and %d tokens this minute, want %v", s.name, got, reqs, toks, s.wantAvailable)
		}
	}
}

func TestMinuteUsageExactUnderConcurrency(t *testing.T) {
	d := New(config.Model{Name: "g", ID: "a"}, FromConfig)
	const workers, each = 16, 2000
	now := at(10 * time.Second)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				d.CountRequest(now)
				d.AddTokens(now, 3)
			}
		})
	}
	wg.Wait()
	reqs, toks := d.MinuteUsage(now)
	if reqs != workers*each || toks != 3*workers*each {
		t.Errorf("MinuteUsage = %d requests, %d tokens; want %d and %d", reqs, toks, workers*each, 3*workers*each)
	}
}

func TestFailWindow(t *testing.T) {
	d := New(config.Model{Name: "g", ID: "a"}, FromConfig)
	steps := []struct {
		name         string
		now          time.Duration
		failed       bool
		reset        bool // ResetFailures before recording
		wantRequests int64
		wantFailures int64
	}{
		{"success", 0, false, false, 1, 0},
		{"failure", time.Second, true, false, 2, 1},
		{"another failure", 59 * time.Second, true, false, 3, 2},
		{"next minute starts afresh", time.Minute, true, false, 1, 1},
		{"success in that minute", time.Minute + time.Second, false, false, 2, 1},
		{"reset clears the minute", time.Minute + 2*time.Second, false, true, 1, 0},
		{"failure after reset", time.Minute + 3*time.Second, true, false, 2, 1},
	}
	for _, s := range steps {
		if s.reset {
			d.ResetFailures()
		}
		reqs, fails := d.RecordResult(at(s.now), s.failed)
		if reqs != s.wantRequests || fails != s.wantFailures {
			t.Errorf("%s: RecordResult = %d requests, %d failures; want %d, %d", s.name, reqs, fails, s.wantRequests, s.wantFailures)
		}
	}
}

func TestFailWindowExactUnderConcurrency(t *testing.T) {
	var w failWindow
	const workers, each = 16, 1000
	now := at(5 * time.Second)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			for j := range each {
				w.record(now, (i+j)%4 == 0)
			}
		})
	}
	wg.Wait()
	reqs, fails := w.record(now, false)
	if reqs != workers*each+1 || fails != workers*each/4 {
		t.Errorf("after %d records got %d requests, %d failures; want %d, %d", workers*each+1, reqs, fails, workers*each+1, workers*each/4)
	}
}

func TestLatencyWindow(t *testing.T) {
	tests := []struct {
		name     string
		samples  []float64
		wantMean float64
		wantN    int
	}{
		{"never observed", nil, 0, 0},
		{"one sample", []float64{0.02}, 0.02, 1},
		{"mean of a few", []float64{0.01, 0.02, 0.03}, 0.02, 3},
		// 1..12: the first two are overwritten, leaving 3..12.
		{"keeps the last ten", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 7.5, 10},
		// A zero sample (an instant answer) still counts as observed.
		{"zero counts as a sample", []float64{0}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(config.Model{Name: "g", ID: "a"}, FromConfig)
			for _, s := range tt.samples {
				d.ObserveLatency(s)
			}
			mean, n := d.Latency()
			if n != tt.wantN || mean < tt.wantMean-1e-9 || mean > tt.wantMean+1e-9 {
				t.Errorf("Latency = %g over %d samples, want %g over %d", mean, n, tt.wantMean, tt.wantN)
			}
		})
	}
}

func TestLatencyWindowUnderConcurrency(t *testing.T) {
	d := New(config.Model{Name: "g", ID: "a"}, FromConfig)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				d.ObserveLatency(0.5)
				d.Latency()
			}
		})
	}
	wg.Wait()
	if mean, n := d.Latency(); n != latencySamples || mean != 0.5 {
		t.Errorf("Latency = %g over %d samples, want 0.5 over %d", mean, n, latencySamples)
	}
}

// BenchmarkLatencyWindow measures recording a latency sample, done once per
// response, and reading the mean, done for every deployment of a tier on
// every latency-based pick.
func BenchmarkLatencyWindow(b *testing.B) {
	d := New(config.Model{Name: "g", ID: "a"}, FromConfig)
	for i := range latencySamples {
		d.ObserveLatency(0.01 + 0.001*float64(i))
	}
	b.Run("observe", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d.ObserveLatency(0.012)
		}
	})
	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		var sum float64
		for b.Loop() {
			mean, _ := d.Latency()
			sum += mean
		}
		if sum <= 0 {
			b.Fatal("no mean")
		}
	})
}
