package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/testutil"
)

// buildBinary builds maasgate once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "maasgate")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startBinary runs the built gateway as a real process and waits until it
// listens.
func startBinary(t *testing.T, bin string, args ...string) (*exec.Cmd, *testutil.Buffer, string) {
	t.Helper()
	args = append(args, "--host", "127.0.0.1", "--port", "0")
	if !slices.Contains(args, "--database-url") {
		args = append(args, "--database-url", filepath.Join(t.TempDir(), "maasgate.db"))
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "LITELLM_MASTER_KEY="+testKey)
	var stderr testutil.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := waitFor(t, &stderr, `maasgate listening" addr=(\S+)`)
	return cmd, &stderr, "http://" + addr
}

func openStream(t *testing.T, url string, tokens int) (*bufio.Reader, io.Closer) {
	return openStreamAs(t, url, testKey, "m", tokens)
}

func openStreamAs(t *testing.T, url, key, model string, tokens int) (*bufio.Reader, io.Closer) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions",
		strings.NewReader(fmt.Sprintf(`{"model":%q,"stream":true,"max_tokens":%d,"messages":[]}`, model, tokens)))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first line %q, %v", line, err)
	}
	return br, resp.Body
}

func TestSIGTERMLetsStreamsFinish(t *testing.T) {
	bin := buildBinary(t)
	backend := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"m"}, TPOT: 20 * time.Millisecond})
	cfg := writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: %s/v1}
general_settings: {master_key: os.environ/LITELLM_MASTER_KEY}
`, backend.URL()))

	t.Run("in-flight stream completes, then exit 0", func(t *testing.T) {
		cmd, stderr, url := startBinary(t, bin, "serve", "--config", cfg, "--shutdown-grace", "30s")
		stream, _ := openStream(t, url, 50) // about a second of tokens
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitFor(t, stderr, "shutting down")
		// No new connections once shutdown has begun.
		if resp, err := http.Get(url + "/health/liveliness"); err == nil {
			resp.Body.Close()
			t.Errorf("a new request was accepted after SIGTERM (status %d)", resp.StatusCode)
		}
		rest, err := io.ReadAll(stream)
		if err != nil || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
			t.Errorf("stream did not finish cleanly after SIGTERM: %v, tail %q", err, tail(string(rest)))
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("gateway exited with %v, want exit 0\n%s", err, stderr.String())
		}
	})

	t.Run("grace period over: exit 0 anyway", func(t *testing.T) {
		cmd, stderr, url := startBinary(t, bin, "serve", "--config", cfg, "--shutdown-grace", "200ms")
		stream, _ := openStream(t, url, 2000) // 40 s of tokens: longer than the grace
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("gateway exited with %v, want exit 0\n%s", err, stderr.String())
		}
		rest, _ := io.ReadAll(stream)
		if strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
			t.Errorf("a 40 s stream finished within a 200 ms grace period")
		}
		// Cut short, it says why: an in-band error event, its last line.
		last := string(rest[max(0, len(rest)-400):])
		if !strings.HasSuffix(last, "}\n\n") || !strings.Contains(last, `data: {"error":{"message":"The gateway is shutting down`) {
			t.Errorf("a stream cut by shutdown ends without an error event: tail %q", tail(string(rest)))
		}
	})
}

func TestDemoSIGTERMLetsStreamsFinish(t *testing.T) {
	bin := buildBinary(t)
	cmd, stderr, url := startBinary(t, bin, "demo", "--ttft", "1ms", "--tpot", "20ms")
	stream, _ := openStreamAs(t, url, demoKey, "qwen3-7b", 50)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(stream)
	if err != nil || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Errorf("demo cut a stream on SIGTERM: %v, tail %q", err, tail(string(rest)))
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("demo exited with %v, want 0\n%s", err, stderr.String())
	}
}

func tail(s string) string {
	if len(s) > 120 {
		return s[len(s)-120:]
	}
	return s
}

// TestSIGTERMKeepsSpend: spend recorded in memory and not yet written (the
// ledger writes every 10 s) survives a SIGTERM, the stream that was in
// flight when it came included, as the next start reads it back.
func TestSIGTERMKeepsSpend(t *testing.T) {
	bin := buildBinary(t)
	backend := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"m"}, TPOT: 10 * time.Millisecond})
	cfg := writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: %s/v1, input_cost_per_token: 0.001, output_cost_per_token: 0.01}
general_settings: {master_key: os.environ/LITELLM_MASTER_KEY}
`, backend.URL()))
	db := filepath.Join(t.TempDir(), "spend.db")
	cmd, stderr, url := startBinary(t, bin, "serve", "--config", cfg, "--database-url", db)
	_, gen := adminCall(t, "POST", url+"/key/generate", `{"key_alias":"sigterm"}`)
	secret, _ := gen["key"].(string)

	// A whole request, then a stream still running when SIGTERM comes.
	resp, body := call(t, url+"/v1/chat/completions", secret, chatBody("m", 3))
	var done struct {
		Usage struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(body), &done); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(
		`{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":30,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	sresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	br := bufio.NewReader(sresp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	streamed, _ := io.ReadAll(br)
	var su struct {
		Usage struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
	}
	for _, line := range strings.Split(string(streamed), "\n") {
		if data, ok := strings.CutPrefix(line, "data: "); ok && strings.Contains(data, `"usage":{`) {
			_ = json.Unmarshal([]byte(data), &su)
		}
	}
	if su.Usage.CompletionTokens != 30 {
		t.Fatalf("the stream's usage: %+v in %q", su.Usage, tail(string(streamed)))
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
	want := float64(done.Usage.PromptTokens+su.Usage.PromptTokens)*0.001 + float64(done.Usage.CompletionTokens+su.Usage.CompletionTokens)*0.01

	_, _, url = startBinary(t, bin, "serve", "--config", cfg, "--database-url", db)
	_, info := adminCall(t, "GET", url+"/key/info?key="+secret, "")
	in, _ := info["info"].(map[string]any)
	if got, _ := in["spend"].(float64); math.Abs(got-want) > 1e-9 {
		t.Errorf("spend after SIGTERM and a restart: %v, want %v (a request and the stream in flight)", got, want)
	}
}
