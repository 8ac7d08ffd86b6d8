package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/testutil"
)

// waitFor waits until re matches the output and returns the first submatch
// (or the whole match). It fails the test after a generous bound: it waits
// for an event, it does not assert how fast it happens.
func waitFor(t testing.TB, out *testutil.Buffer, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := rx.FindStringSubmatch(out.String()); m != nil {
			return m[len(m)-1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("output never matched %q:\n%s", re, out.String())
	return ""
}

// runningGateway is a maasgate started with run(), as the binary would be.
type runningGateway struct {
	url    string
	stdout *testutil.Buffer
	stderr *testutil.Buffer
	cancel context.CancelFunc // what SIGTERM does
	code   chan int
	once   sync.Once
	exit   int
}

// stop does what SIGTERM does and returns the exit code, once.
func (g *runningGateway) stop(t testing.TB) int {
	g.once.Do(func() {
		g.cancel()
		select {
		case g.exit = <-g.code:
		case <-time.After(30 * time.Second):
			t.Error("gateway did not stop")
			g.exit = -1
		}
	})
	return g.exit
}

// startGateway runs "maasgate <args...>" in-process on a free loopback port
// and waits until it listens. env replaces the environment for the run.
func startGateway(t testing.TB, env map[string]string, args ...string) *runningGateway {
	t.Helper()
	setEnv(t, env)
	ctx, cancel := context.WithCancel(context.Background())
	g := &runningGateway{stdout: &testutil.Buffer{}, stderr: &testutil.Buffer{}, cancel: cancel, code: make(chan int, 1)}
	args = append(args, "--host", "127.0.0.1", "--port", "0")
	if !slices.Contains(args, "--database-url") {
		args = append(args, "--database-url", filepath.Join(t.TempDir(), "maasgate.db"))
	}
	go func() { g.code <- run(ctx, args, g.stdout, g.stderr) }()
	t.Cleanup(func() { g.stop(t) })
	// The address, in the text or the JSON log format.
	g.url = "http://" + waitFor(t, g.stderr, `maasgate listening"(?: addr=|,"addr":")([^\s"]+)`)
	return g
}

// setEnv makes lookupEnv see exactly env for the rest of the test.
func setEnv(t testing.TB, env map[string]string) {
	t.Helper()
	old := lookupEnv
	lookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	t.Cleanup(func() { lookupEnv = old })
}

// startMock starts a simulated backend on loopback with no artificial delay
// unless cfg sets one.
func startMock(t testing.TB, cfg mockllm.Config) *mockllm.Server {
	t.Helper()
	if cfg.TTFT == 0 {
		cfg.TTFT = -1
	}
	if cfg.TPOT == 0 {
		cfg.TPOT = -1
	}
	srv, err := mockllm.Start(context.Background(), "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func writeConfig(t testing.TB, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// call sends an authenticated JSON POST and returns the response with its
// body read.
func call(t *testing.T, url, key, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

func chatBody(model string, maxTokens int) string {
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"max_tokens":%d}`, model, maxTokens)
}
