package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/testutil"
)

// The benchmarks in this file run the gateway as its own process against
// loopback backends and report what an operator would see: the gateway's
// peak memory under large bodies, and the share of requests a backend that
// never answers costs. They take a minute or two and run only with -bench:
//
//	go test -run - -bench 'LargeBodyMemory|StalledBackend' -benchtime 1x ./cmd/maasgate

// BenchmarkLargeBodyMemory reports the gateway's peak RSS while 16 clients
// each send a 31 MiB chat request at once, against the request bytes it
// holds, and the growth of its RSS while it relays one 200 MiB
// non-streaming response. Each case gets a fresh gateway.
func BenchmarkLargeBodyMemory(b *testing.B) {
	bin := buildBenchBinary(b)
	for _, tc := range []struct {
		name string
		env  []string
	}{
		// The default budget: 1024 MiB of request bodies, all 16 fit.
		{"requests/GOMEMLIMIT=unset", nil},
		// A third of the limit, 512 MiB: all 16 fit.
		{"requests/GOMEMLIMIT=1536MiB", []string{"GOMEMLIMIT=1536MiB"}},
		// The shipped Kubernetes manifest's: 300 MiB, some get 503.
		{"requests/GOMEMLIMIT=900MiB", []string{"GOMEMLIMIT=900MiB"}},
	} {
		b.Run(tc.name, func(b *testing.B) { benchLargeRequests(b, bin, tc.env) })
	}
	b.Run("response/200MiB", func(b *testing.B) { benchLargeResponse(b, bin) })
}

// Sizes of the large-body cases.
const (
	largeClients  = 16
	largeWaves    = 3
	largeBodySize = 31 << 20
	largeRespSize = 200 << 20
)

// benchLargeRequests sends largeWaves waves of largeClients chat requests
// of largeBodySize bytes through a fresh gateway started with env, and
// reports its peak RSS against the request bytes one wave holds.
func benchLargeRequests(b *testing.B, bin string, env []string) {
	body := largeChatBody(largeBodySize)
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: largeClients}}
	b.Cleanup(client.CloseIdleConnections)

	var worst struct{ idle, first, peak, held uint64 }
	var admitted, rejected int
	for b.Loop() {
		upstream := newBarrier(largeClients)
		up := httptest.NewServer(upstream)
		gw := startGatewayProcess(b, bin, writeConfig(b, largeConfig(up.URL)), env)
		idle := gw.resetPeak(b)

		// Waves one after the other: the bodies of one are garbage
		// while the next arrives, as under steady load. The first wave
		// alone shows what the gateway holds; the later ones add the
		// garbage collector's headroom (GOGC=100 lets the heap reach
		// twice what was live at the last collection).
		admitted, rejected = 0, 0
		most := 0 // admitted in one wave, at most
		var first uint64
		for wave := range largeWaves {
			upstream.reset()
			codes := make([]int, largeClients)
			var wg sync.WaitGroup
			for i := range largeClients {
				wg.Go(func() { codes[i] = post(b, client, gw.url+"/v1/chat/completions", body) })
			}
			wg.Wait()
			inWave := 0
			for _, c := range codes {
				switch c {
				case http.StatusOK:
					inWave++
				case http.StatusServiceUnavailable:
					rejected++
				default:
					b.Fatalf("a 31 MiB request got %d, want 200 or 503 (budget)", c)
				}
			}
			admitted += inWave
			most = max(most, inWave)
			if wave == 0 {
				_, first = gw.memory(b)
			}
		}
		_, peak := gw.memory(b)
		gw.stop()
		up.Close()

		held := uint64(most) * uint64(len(body))
		if peak > worst.peak {
			worst.idle, worst.first, worst.peak, worst.held = idle, first, peak, held
		}
	}
	b.ReportMetric(mibOf(worst.idle), "idle-RSS-MiB")
	b.ReportMetric(mibOf(worst.first), "first-wave-peak-RSS-MiB")
	b.ReportMetric(mibOf(worst.peak), "peak-RSS-MiB")
	b.ReportMetric(mibOf(worst.held), "in-flight-MiB")
	b.ReportMetric(float64(worst.peak)/float64(max(worst.held, 1)), "peak/in-flight")
	b.ReportMetric(float64(admitted)/largeWaves, "admitted/wave")
	b.ReportMetric(float64(rejected)/largeWaves, "rejected-503/wave")
}

// barrier is an upstream that reads and discards a request's body, then
// holds its small chat answer until n requests have arrived (or 3 s have
// passed, when the gateway answered some of them 503 itself), so that the
// gateway holds every admitted body at the same time. reset starts the
// count again, between waves.
type barrier struct {
	n       int
	mu      sync.Mutex
	arrived int
	all     chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, all: make(chan struct{})} }

func (h *barrier) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.arrived, h.all = 0, make(chan struct{})
}

func (h *barrier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	h.mu.Lock()
	all := h.all
	if h.arrived++; h.arrived == h.n {
		close(all)
	}
	h.mu.Unlock()
	select {
	case <-all:
	case <-time.After(3 * time.Second):
	case <-r.Context().Done():
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m",`+
		`"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],`+
		`"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
}

// benchLargeResponse relays one non-streaming response of largeRespSize
// bytes through a fresh gateway and reports how much its RSS grew.
func benchLargeResponse(b *testing.B, bin string) {
	resp := largeEmbeddingResponse(largeRespSize)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(resp)))
		_, _ = w.Write(resp)
	}))
	b.Cleanup(up.Close)
	cfg := writeConfig(b, largeConfig(up.URL))
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{}}
	b.Cleanup(client.CloseIdleConnections)

	var growth uint64
	for b.Loop() {
		gw := startGatewayProcess(b, bin, cfg, nil)
		before := gw.resetPeak(b)
		req, err := http.NewRequest("POST", gw.url+"/v1/embeddings", strings.NewReader(`{"model":"m","input":"x"}`))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testKey)
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK || n != int64(len(resp)) {
			b.Fatalf("status %d, %d of %d bytes, %v", res.StatusCode, n, len(resp), err)
		}
		_, peak := gw.memory(b)
		gw.stop()
		growth = max(growth, peak-before)
	}
	b.ReportMetric(mibOf(uint64(len(resp))), "response-MiB")
	b.ReportMetric(mibOf(growth), "RSS-increase-MiB")
}

// largeConfig serves model m from one upstream, with bodies up to 40 MiB.
func largeConfig(upstream string) string {
	return fmt.Sprintf(`model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: %s/v1}
general_settings: {master_key: os.environ/LITELLM_MASTER_KEY, max_request_size_mb: 40}
`, upstream)
}

// largeChatBody is a chat request of about size bytes whose prompt is text
// with escaped newlines, as a long document would be sent.
func largeChatBody(size int) []byte {
	const line = `Summarise the following notes about the GPU cluster in two sentences.\n`
	head, tail := `{"model":"m","max_tokens":16,"messages":[{"role":"user","content":"`, `"}]}`
	n := size - len(head) - len(tail)
	return []byte(head + strings.Repeat(line, n/len(line)) + tail)
}

// largeEmbeddingResponse is an embeddings response of about size bytes: one
// huge vector, with its usage at the end as OpenAI-compatible servers send it.
func largeEmbeddingResponse(size int) []byte {
	const num = "0.123456789,"
	var buf bytes.Buffer
	buf.Grow(size + 200)
	buf.WriteString(`{"object":"list","model":"m","data":[{"object":"embedding","index":0,"embedding":[`)
	for buf.Len() < size {
		buf.WriteString(num)
	}
	buf.WriteString(`0]}],"usage":{"prompt_tokens":1,"total_tokens":1}}`)
	return buf.Bytes()
}

// post sends body with the test key and returns the status, the body read
// and discarded.
func post(b *testing.B, client *http.Client, url string, body []byte) int {
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		b.Error(err)
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	res, err := client.Do(req)
	if err != nil {
		b.Error(err)
		return 0
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode
}

// BenchmarkStalledBackend replays the review's scenario: five backends of
// one model, one of which accepts requests and never answers, under an
// open-loop load of 300 requests/s for 15 s with a 20 s client timeout,
// through a gateway with the default settings. It reports the share of
// requests that failed or hung, and how many requests the silent backend
// still received after the first 10 s: with the stall watch on (the
// default) it should leave rotation within a few seconds; with
// --stall-after 0 it keeps its fifth of the traffic.
func BenchmarkStalledBackend(b *testing.B) {
	bin := buildBenchBinary(b)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"stall-after=default", nil},
		{"stall-after=0", []string{"--stall-after", "0"}},
	} {
		b.Run(tc.name, func(b *testing.B) { benchStalledBackend(b, bin, tc.args) })
	}
}

// The load of the stalled-backend scenario.
const (
	stallRate     = 300
	stallDuration = 15 * time.Second
	stallTimeout  = 20 * time.Second
)

// benchStalledBackend runs the scenario of BenchmarkStalledBackend against a
// fresh gateway started with args.
func benchStalledBackend(b *testing.B, bin string, args []string) {
	var text strings.Builder
	text.WriteString("model_list:\n")
	var hung *mockllm.Server
	for i := range 5 {
		srv := startMock(b, mockllm.Config{
			Name: fmt.Sprintf("gpu-%d", i), Models: []string{"m"}, MaxConcurrent: 64,
			TTFT: 20 * time.Millisecond, TPOT: 5 * time.Millisecond,
			Faults: mockllm.Faults{Hang: i == 0},
		})
		if i == 0 {
			hung = srv
		}
		fmt.Fprintf(&text, "  - model_name: m\n    litellm_params: {model: openai/m, api_base: %s/v1}\n", srv.URL())
	}
	text.WriteString("general_settings: {master_key: os.environ/LITELLM_MASTER_KEY}\n")
	cfg := writeConfig(b, text.String())

	var total, ok, timedOut, otherErr int
	var hungTotal, hungLate int64
	var lastHung time.Duration // when the last request that hung was sent
	for b.Loop() {
		gw := startGatewayProcess(b, bin, cfg, nil, args...)
		before := hung.Stats().Requests
		client := &http.Client{Timeout: stallTimeout, Transport: &http.Transport{
			MaxIdleConnsPerHost: stallRate * int(stallTimeout/time.Second), DisableCompression: true,
		}}
		atk := vegeta.NewAttacker(vegeta.Client(client), vegeta.Workers(64), vegeta.MaxWorkers(10000))
		target := vegeta.NewStaticTargeter(vegeta.Target{
			Method: "POST", URL: gw.url + "/v1/chat/completions",
			Body:   []byte(`{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`),
			Header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + testKey}},
		})
		var at10s atomic.Int64
		mark := time.AfterFunc(10*time.Second, func() { at10s.Store(hung.Stats().Requests) })
		total, ok, timedOut, otherErr, lastHung = 0, 0, 0, 0, 0
		start := time.Now()
		for res := range atk.Attack(target, vegeta.Rate{Freq: stallRate, Per: time.Second}, stallDuration, "stall") {
			total++
			switch {
			case res.Code == http.StatusOK && res.Error == "":
				ok++
			case strings.Contains(res.Error, "Client.Timeout") || strings.Contains(res.Error, "deadline exceeded"):
				timedOut++
				lastHung = max(lastHung, res.Timestamp.Sub(start))
			default:
				otherErr++
			}
		}
		mark.Stop()
		after := hung.Stats().Requests
		hungTotal, hungLate = after-before, after-at10s.Load()
		client.CloseIdleConnections()
		gw.stop()
	}
	failed := total - ok
	b.ReportMetric(float64(total), "requests")
	b.ReportMetric(float64(timedOut), "hung")
	b.ReportMetric(float64(otherErr), "other-errors")
	b.ReportMetric(100*float64(failed)/float64(max(total, 1)), "failed-%")
	b.ReportMetric(float64(hungTotal), "to-silent-backend")
	b.ReportMetric(float64(hungLate), "to-silent-backend-after-10s")
	b.ReportMetric(lastHung.Seconds(), "last-hung-sent-at-s")
}

// buildBenchBinary builds maasgate into the benchmark's temporary directory.
func buildBenchBinary(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "maasgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// gatewayProcess is "maasgate serve" run as its own process, so that the
// memory it reports is the gateway's alone.
type gatewayProcess struct {
	url  string
	cmd  *exec.Cmd
	proc procfs.Proc
	logs *testutil.Buffer
	once sync.Once
}

// startGatewayProcess runs "bin serve --config cfg args..." on a free
// loopback port with the master key testKey and env added to an
// environment without Go runtime or maasgate settings, and waits until it
// listens.
func startGatewayProcess(b *testing.B, bin, cfg string, env []string, args ...string) *gatewayProcess {
	b.Helper()
	args = append([]string{"serve", "--config", cfg, "--host", "127.0.0.1", "--port", "0",
		"--database-url", filepath.Join(b.TempDir(), "maasgate.db")}, args...)
	g := &gatewayProcess{cmd: exec.Command(bin, args...), logs: &testutil.Buffer{}}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "MAASGATE_"), name == "LITELLM_MASTER_KEY",
			name == "GOMEMLIMIT", name == "GOGC", name == "GODEBUG", name == "GOMAXPROCS":
			continue
		}
		g.cmd.Env = append(g.cmd.Env, kv)
	}
	g.cmd.Env = append(append(g.cmd.Env, "LITELLM_MASTER_KEY="+testKey), env...)
	g.cmd.Stdout, g.cmd.Stderr = io.Discard, g.logs
	// The gateway goes with the benchmark, even if the benchmark is killed.
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := g.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(g.stop)
	g.url = "http://" + waitFor(b, g.logs, `maasgate listening" addr=(\S+)`)
	var err error
	if g.proc, err = procfs.NewProc(g.cmd.Process.Pid); err != nil {
		b.Fatal(err)
	}
	return g
}

// memory returns the gateway's resident set now and its peak (VmHWM).
func (g *gatewayProcess) memory(b *testing.B) (rss, peak uint64) {
	b.Helper()
	st, err := g.proc.NewStatus()
	if err != nil {
		b.Fatal(err)
	}
	return st.VmRSS, st.VmHWM
}

// resetPeak sets the peak RSS to the RSS now, so that start-up's peak is not
// counted, and returns it.
func (g *gatewayProcess) resetPeak(b *testing.B) uint64 {
	b.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", g.cmd.Process.Pid), []byte("5"), 0); err != nil {
		b.Fatalf("reset the peak RSS: %v", err)
	}
	rss, _ := g.memory(b)
	return rss
}

// stop ends the gateway, once.
func (g *gatewayProcess) stop() {
	g.once.Do(func() {
		_ = g.cmd.Process.Kill()
		_ = g.cmd.Wait()
	})
}

func mibOf(n uint64) float64 { return float64(n) / (1 << 20) }
