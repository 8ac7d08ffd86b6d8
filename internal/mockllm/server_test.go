package mockllm_test

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// testBackend is a mock served over real HTTP by httptest.
type testBackend struct {
	*mockllm.Server
	name   string
	url    string
	client *http.Client
}

// newBackend serves New(cfg) on a loopback port for the test's duration.
func newBackend(t *testing.T, cfg mockllm.Config) *testBackend {
	t.Helper()
	s := mockllm.New(cfg)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	t.Cleanup(func() { _ = s.Close() }) // runs first: ends hung handlers
	name := cfg.Name
	if name == "" {
		name = mockllm.DefaultName
	}
	return &testBackend{Server: s, name: name, url: ts.URL, client: ts.Client()}
}

// instant returns cfg without simulated delays, for tests of shapes.
func instant(cfg mockllm.Config) mockllm.Config {
	cfg.TTFT, cfg.TPOT = -1, -1
	return cfg
}

type reply struct {
	Status int
	Header http.Header
	Body   string
}

// call sends one request; header holds name, value pairs.
func (b *testBackend) call(t *testing.T, method, path, body string, header ...string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: string(got)}
}

// decode parses JSON into a generic value, failing the test on error.
func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return m
}

// scrub checks the random id and the timestamp of a response object and
// replaces them with "<id>" and 0 so the rest can be compared exactly.
func scrub(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	if id, _ := m["id"].(string); !strings.Contains(id, "-") || len(id) < 32 {
		t.Errorf("id = %q, want prefix-<32 hex digits>", id)
	}
	if created, _ := m["created"].(float64); created < 1e9 {
		t.Errorf("created = %v, want a Unix time", m["created"])
	}
	m["id"], m["created"] = "<id>", 0.0
	return m
}

// errorCase is a request the mock must refuse, and the status and error
// type it must answer with.
type errorCase struct {
	name       string
	path       string
	body       string
	wantStatus int
	wantType   string
}

// checkErrors POSTs each case to b in parallel and checks the answer's
// status and vLLM's error envelope: its type, and its code equal to the
// status.
func checkErrors(t *testing.T, b *testBackend, tests []errorCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := b.call(t, "POST", tt.path, tt.body)
			e, _ := decode(t, got.Body)["error"].(map[string]any)
			if got.Status != tt.wantStatus || e["type"] != tt.wantType || e["code"] != float64(tt.wantStatus) {
				t.Errorf("status %d, body %s; want %d %s", got.Status, got.Body, tt.wantStatus, tt.wantType)
			}
		})
	}
}

// sseEvents splits a server-sent-event stream into its data payloads.
func sseEvents(t *testing.T, body string) []string {
	t.Helper()
	if !strings.HasSuffix(body, "\n\n") {
		t.Errorf("stream does not end with a blank line: %q", body)
	}
	var out []string
	for ev := range strings.SplitSeq(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok {
			t.Fatalf("event %q has no data: prefix", ev)
		}
		out = append(out, data)
	}
	return out
}

// readEvents reads data payloads from a live stream until it ends, returning
// them and the error that ended it (nil at a clean EOF).
func readEvents(r io.Reader) ([]string, error) {
	var out []string
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if data, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "data: "); ok && err == nil {
			out = append(out, data)
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestResponseShapes(t *testing.T) {
	b := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"m", "m2"}}))
	tests := []struct {
		name string
		path string
		body string
		want string
	}{
		{
			name: "chat with max_tokens ends by length",
			path: "/v1/chat/completions",
			body: `{"model":"m","max_tokens":6,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi there"}]}]}`,
			want: `{"id":"<id>","object":"chat.completion","created":0,"model":"m","system_fingerprint":"gpu-a",
				"choices":[{"index":0,"message":{"role":"assistant","content":"Hello from gpu-a. Hello from"},"logprobs":null,"finish_reason":"length","stop_reason":null}],
				"usage":{"prompt_tokens":4,"total_tokens":10,"completion_tokens":6}}`,
		},
		{
			name: "chat max_completion_tokens wins over max_tokens",
			path: "/v1/chat/completions",
			body: `{"model":"m2","max_tokens":9,"max_completion_tokens":2,"messages":[{"role":"user","content":"hi"}]}`,
			want: `{"id":"<id>","object":"chat.completion","created":0,"model":"m2","system_fingerprint":"gpu-a",
				"choices":[{"index":0,"message":{"role":"assistant","content":"Hello from"},"logprobs":null,"finish_reason":"length","stop_reason":null}],
				"usage":{"prompt_tokens":1,"total_tokens":3,"completion_tokens":2}}`,
		},
		{
			name: "chat without max_tokens gives the default and stops",
			path: "/v1/chat/completions",
			body: `{"messages":[{"role":"user","content":"hi"}]}`,
			want: `{"id":"<id>","object":"chat.completion","created":0,"model":"m","system_fingerprint":"gpu-a",
				"choices":[{"index":0,"message":{"role":"assistant","content":"Hello from gpu-a. Hello from gpu-a. Hello from gpu-a. Hello from gpu-a."},"logprobs":null,"finish_reason":"stop","stop_reason":null}],
				"usage":{"prompt_tokens":1,"total_tokens":17,"completion_tokens":16}}`,
		},
		{
			name: "completion",
			path: "/v1/completions",
			body: `{"model":"m","prompt":"Once upon a time","max_tokens":3}`,
			want: `{"id":"<id>","object":"text_completion","created":0,"model":"m","system_fingerprint":"gpu-a",
				"choices":[{"index":0,"text":"Hello from gpu-a","logprobs":null,"finish_reason":"length","stop_reason":null}],
				"usage":{"prompt_tokens":4,"total_tokens":7,"completion_tokens":3}}`,
		},
		{
			name: "completion with token ids",
			path: "/v1/completions",
			body: `{"model":"m","prompt":[1,2,3,4,5],"max_tokens":1}`,
			want: `{"id":"<id>","object":"text_completion","created":0,"model":"m","system_fingerprint":"gpu-a",
				"choices":[{"index":0,"text":"Hello","logprobs":null,"finish_reason":"length","stop_reason":null}],
				"usage":{"prompt_tokens":5,"total_tokens":6,"completion_tokens":1}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := b.call(t, "POST", tt.path, tt.body)
			if got.Status != http.StatusOK {
				t.Fatalf("status %d, body %s", got.Status, got.Body)
			}
			if ct := got.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if diff := cmp.Diff(decode(t, tt.want), scrub(t, decode(t, got.Body))); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestModelsAndHealth(t *testing.T) {
	b := newBackend(t, mockllm.Config{Name: "gpu-b", Models: []string{"llama", "llama-alias"}, MaxModelLen: 4096})

	got := b.call(t, "GET", "/v1/models", "")
	m := decode(t, got.Body)
	for _, card := range m["data"].([]any) {
		card := card.(map[string]any)
		if c, _ := card["created"].(float64); c < 1e9 {
			t.Errorf("created = %v", card["created"])
		}
		card["created"] = 0.0
	}
	want := decode(t, `{"object":"list","data":[
		{"id":"llama","object":"model","created":0,"owned_by":"vllm","root":"llama","parent":null,"max_model_len":4096},
		{"id":"llama-alias","object":"model","created":0,"owned_by":"vllm","root":"llama-alias","parent":null,"max_model_len":4096}]}`)
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("/v1/models (-want +got):\n%s", diff)
	}

	h := b.call(t, "GET", "/health", "")
	if diff := cmp.Diff(reply{Status: 200, Body: ""}, reply{Status: h.Status, Body: h.Body}); diff != "" {
		t.Errorf("/health (-want +got):\n%s", diff)
	}
}

func TestErrors(t *testing.T) {
	b := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"m"}, APIKey: "sk-good", MaxModelLen: 100}))
	key := []string{"Authorization", "Bearer sk-good"}
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		header     []string
		wantStatus int
		want       string // exact JSON; "" = check only the status and type
		wantType   string
	}{
		{
			name: "unknown model is 404 as vLLM words it", method: "POST", path: "/v1/chat/completions",
			body: `{"model":"gpt-5","messages":[]}`, header: key, wantStatus: 404,
			want: "{\"error\":{\"message\":\"The model `gpt-5` does not exist.\",\"type\":\"NotFoundError\",\"param\":\"model\",\"code\":404}}",
		},
		{
			name: "unknown embedding model", method: "POST", path: "/v1/embeddings",
			body: `{"model":"nope","input":"x"}`, header: key, wantStatus: 404, wantType: "NotFoundError",
		},
		{
			name: "malformed JSON", method: "POST", path: "/v1/chat/completions",
			body: `{"model":`, header: key, wantStatus: 400, wantType: "BadRequestError",
		},
		{
			name: "wrong type", method: "POST", path: "/v1/completions",
			body: `{"model":"m","prompt":"x","stream":"yes"}`, header: key, wantStatus: 400, wantType: "BadRequestError",
		},
		{
			name: "missing messages", method: "POST", path: "/v1/chat/completions",
			body: `{"model":"m"}`, header: key, wantStatus: 400, wantType: "BadRequestError",
		},
		{
			name: "missing prompt", method: "POST", path: "/v1/completions",
			body: `{"model":"m"}`, header: key, wantStatus: 400, wantType: "BadRequestError",
		},
		{
			name: "zero max_tokens", method: "POST", path: "/v1/completions",
			body: `{"model":"m","prompt":"x","max_tokens":0}`, header: key, wantStatus: 400,
			want: `{"error":{"message":"max_tokens must be at least 1, got 0.","type":"BadRequestError","param":"max_tokens","code":400}}`,
		},
		{
			name: "over max_model_len", method: "POST", path: "/v1/completions",
			body: `{"model":"m","prompt":"x","max_tokens":100}`, header: key, wantStatus: 400, wantType: "BadRequestError",
		},
		{
			name: "empty embedding input", method: "POST", path: "/v1/embeddings",
			body: `{"model":"m","input":[]}`, header: key, wantStatus: 400, wantType: "BadRequestError",
		},
		{
			name: "no key", method: "POST", path: "/v1/chat/completions",
			body: `{"model":"m","messages":[]}`, wantStatus: 401, want: `{"error":"Unauthorized"}`,
		},
		{
			name: "wrong key", method: "GET", path: "/v1/models",
			header: []string{"Authorization", "Bearer sk-bad"}, wantStatus: 401, want: `{"error":"Unauthorized"}`,
		},
		{
			name: "key without Bearer", method: "POST", path: "/v1/embeddings",
			body: `{"model":"m","input":"x"}`, header: []string{"Authorization", "sk-good"}, wantStatus: 401, want: `{"error":"Unauthorized"}`,
		},
		{
			name: "unknown path", method: "GET", path: "/v1/nothing", wantStatus: 404, want: `{"detail":"Not Found"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := b.call(t, tt.method, tt.path, tt.body, tt.header...)
			if got.Status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", got.Status, tt.wantStatus, got.Body)
			}
			if got.Header.Get("X-Mock-Backend") != "gpu-a" {
				t.Errorf("X-Mock-Backend = %q, want gpu-a", got.Header.Get("X-Mock-Backend"))
			}
			if tt.want != "" {
				if diff := cmp.Diff(decode(t, tt.want), decode(t, got.Body)); diff != "" {
					t.Errorf("body (-want +got):\n%s", diff)
				}
				return
			}
			e, _ := decode(t, got.Body)["error"].(map[string]any)
			if e["type"] != tt.wantType || e["code"] != float64(tt.wantStatus) || e["message"] == "" {
				t.Errorf("error = %v, want type %s and code %d", e, tt.wantType, tt.wantStatus)
			}
		})
	}

	t.Run("the right key is accepted", func(t *testing.T) {
		if got := b.call(t, "GET", "/v1/models", "", key...); got.Status != 200 {
			t.Errorf("status %d: %s", got.Status, got.Body)
		}
	})
	t.Run("health, metrics and control need no key", func(t *testing.T) {
		for _, path := range []string{"/health", "/metrics", "/mock/faults", "/mock/stats"} {
			if got := b.call(t, "GET", path, ""); got.Status != 200 {
				t.Errorf("GET %s: status %d", path, got.Status)
			}
		}
	})
}

func decodeFloat32s(t *testing.T, s string) []float32 {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b)%4 != 0 {
		t.Fatalf("base64 embedding %q: %v", s, err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func TestEmbeddings(t *testing.T) {
	a := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"e5"}, EmbeddingDim: 32}))
	other := newBackend(t, instant(mockllm.Config{Name: "gpu-b", Models: []string{"e5"}, EmbeddingDim: 32}))

	type embedding struct {
		Index     int       `json:"index"`
		Object    string    `json:"object"`
		Embedding []float32 `json:"embedding"`
	}
	type response struct {
		Object            string      `json:"object"`
		Model             string      `json:"model"`
		SystemFingerprint string      `json:"system_fingerprint"`
		Data              []embedding `json:"data"`
		Usage             struct {
			PromptTokens     int `json:"prompt_tokens"`
			TotalTokens      int `json:"total_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	embed := func(t *testing.T, b *testBackend, body string) response {
		t.Helper()
		got := b.call(t, "POST", "/v1/embeddings", body)
		if got.Status != 200 {
			t.Fatalf("status %d: %s", got.Status, got.Body)
		}
		var r response
		if err := json.Unmarshal([]byte(got.Body), &r); err != nil {
			t.Fatal(err)
		}
		if r.Object != "list" || r.Model != "e5" || r.SystemFingerprint != b.name {
			t.Errorf("object %q model %q fingerprint %q", r.Object, r.Model, r.SystemFingerprint)
		}
		for i, d := range r.Data {
			if d.Index != i || d.Object != "embedding" {
				t.Errorf("data[%d] index %d object %q", i, d.Index, d.Object)
			}
			var sum float64
			for _, x := range d.Embedding {
				sum += float64(x) * float64(x)
			}
			if math.Abs(sum-1) > 1e-5 {
				t.Errorf("data[%d] has squared norm %v, want 1", i, sum)
			}
		}
		return r
	}

	tests := []struct {
		name       string
		body       string
		wantCount  int
		wantDim    int
		wantTokens int
	}{
		{"string", `{"model":"e5","input":"the quick brown fox"}`, 1, 32, 4},
		{"list of strings", `{"model":"e5","input":["a b","c","a b"]}`, 3, 32, 5},
		{"token ids", `{"model":"e5","input":[101,2023,102]}`, 1, 32, 3},
		{"lists of token ids", `{"model":"e5","input":[[1,2],[3]]}`, 2, 32, 3},
		{"fewer dimensions", `{"model":"e5","input":"x","dimensions":8}`, 1, 8, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := embed(t, a, tt.body)
			if len(r.Data) != tt.wantCount {
				t.Fatalf("got %d embeddings, want %d", len(r.Data), tt.wantCount)
			}
			for i, d := range r.Data {
				if len(d.Embedding) != tt.wantDim {
					t.Errorf("data[%d] has %d dimensions, want %d", i, len(d.Embedding), tt.wantDim)
				}
			}
			if r.Usage.PromptTokens != tt.wantTokens || r.Usage.TotalTokens != tt.wantTokens || r.Usage.CompletionTokens != 0 {
				t.Errorf("usage = %+v, want %d prompt tokens", r.Usage, tt.wantTokens)
			}
		})
	}

	t.Run("vectors depend only on the content", func(t *testing.T) {
		r := embed(t, a, `{"model":"e5","input":["a b","c","a b"]}`)
		if diff := cmp.Diff(r.Data[0].Embedding, r.Data[2].Embedding); diff != "" {
			t.Errorf("equal texts differ:\n%s", diff)
		}
		if cmp.Equal(r.Data[0].Embedding, r.Data[1].Embedding) {
			t.Error("different texts embed equally")
		}
		again := embed(t, other, `{"model":"e5","input":"c"}`)
		if diff := cmp.Diff(r.Data[1].Embedding, again.Data[0].Embedding); diff != "" {
			t.Errorf("another backend embeds differently:\n%s", diff)
		}
	})

	t.Run("base64 encoding", func(t *testing.T) {
		floats := embed(t, a, `{"model":"e5","input":"hello"}`)
		got := a.call(t, "POST", "/v1/embeddings", `{"model":"e5","input":"hello","encoding_format":"base64"}`)
		var r struct {
			Data []struct {
				Embedding string `json:"embedding"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(got.Body), &r); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(floats.Data[0].Embedding, decodeFloat32s(t, r.Data[0].Embedding)); diff != "" {
			t.Errorf("base64 vector differs from the float one:\n%s", diff)
		}
	})

	t.Run("too many dimensions", func(t *testing.T) {
		if got := a.call(t, "POST", "/v1/embeddings", `{"model":"e5","input":"x","dimensions":33}`); got.Status != 400 {
			t.Errorf("status %d, want 400", got.Status)
		}
	})
}

func TestLastRequestAndStats(t *testing.T) {
	b := newBackend(t, instant(mockllm.Config{Models: []string{"m"}}))
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"user":"u1"}`
	b.call(t, "POST", "/v1/chat/completions", body, "X-Trace", "abc")
	b.call(t, "POST", "/v1/completions", `{"model":"unknown","prompt":"x"}`)
	b.call(t, "POST", "/v1/embeddings", `{"model":"m","input":"x y"}`)
	b.call(t, "POST", "/v1/chat/completions", body, "X-Trace", "def")

	st := b.Stats()
	last := st.LastRequest
	st.LastRequest = nil
	want := mockllm.Stats{
		Requests: 4, Completed: 3, Rejected: 1,
		ChatCompletions: 2, Completions: 1, Embeddings: 1,
		PromptTokens: 1 + 2 + 1, GenerationTokens: 2 + 2,
	}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	if last == nil {
		t.Fatal("no LastRequest")
	}
	if last.Method != "POST" || last.Path != "/v1/chat/completions" || string(last.Body) != body || last.Header.Get("X-Trace") != "def" {
		t.Errorf("LastRequest = %s %s %q X-Trace=%q", last.Method, last.Path, last.Body, last.Header.Get("X-Trace"))
	}

	got := b.call(t, "GET", "/mock/stats", "")
	m := decode(t, got.Body)
	lr, _ := m["last_request"].(map[string]any)
	if m["requests"] != 4.0 || m["completed"] != 3.0 || lr["body"] != body || lr["path"] != "/v1/chat/completions" {
		t.Errorf("/mock/stats = %s", got.Body)
	}
}
