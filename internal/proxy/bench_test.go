package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/maasgate/maasgate/internal/auth"
	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/limits"
	"github.com/maasgate/maasgate/internal/metrics"
	"github.com/maasgate/maasgate/internal/router"
	"github.com/maasgate/maasgate/internal/usage"
)

// discardWriter is a flushing ResponseWriter that keeps only the status and
// a byte count, so benchmarks measure the proxy and not a recorder's buffer.
// reset clears the header map in place, keeping its storage, as a server
// hands each request a fresh map.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func newDiscardWriter() *discardWriter { return &discardWriter{h: http.Header{}} }

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}
func (w *discardWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(b)
	return len(b), nil
}
func (w *discardWriter) Flush() {}
func (w *discardWriter) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
}

// upstreamHeader is what a vLLM server (uvicorn) sends with a response, as
// net/http's client hands it over.
func upstreamHeader(contentType string) http.Header {
	return http.Header{
		"Date":           {"Mon, 24 Nov 2026 10:00:00 GMT"},
		"Server":         {"uvicorn"},
		"Content-Type":   {contentType},
		"Content-Length": {"612"},
		"X-Request-Id":   {"chatcmpl-8f3b2c1d9e4a4b7c8d6e5f4a3b2c1d0e"},
	}
}

func benchDeployment() *deployment.Deployment {
	return deployment.New(dep("qwen3-14b", "gpu-a-qwen3-14b", "http://10.0.0.7:8000/v1"), deployment.FromConfig)
}

// BenchmarkHeaders measures the headers written on every response: the
// upstream's passed on under llm_provider-, and the x-litellm-* ones.
func BenchmarkHeaders(b *testing.B) {
	p := New(Options{Router: router.New(nil, config.RouterSettings{}, nil), Version: "bench"})
	d := benchDeployment()
	up := upstreamHeader("application/json")
	c := &call{start: time.Now(), retries: 1, upstream: 40 * time.Millisecond}
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		clear(h)
		p.copyUpstreamHeaders(h, up, false)
		p.setResultHeaders(h, c, d)
	}
	if got := h[providerKey("X-Request-Id")]; len(got) != 1 || got[0] != up["X-Request-Id"][0] {
		b.Fatalf("upstream header not passed on: %v", h)
	}
}

// sseBody is a vLLM chat completion stream of n content chunks, the finish
// chunk and the usage chunk (stream_options.include_usage), then [DONE],
// one event per element.
func sseBody(n int) [][]byte {
	const prefix = `data: {"id":"chatcmpl-8f3b2c1d9e4a4b7c8d6e5f4a3b2c1d0e","object":"chat.completion.chunk","created":1795000000,"model":"Qwen/Qwen3-14B","choices":`
	events := make([][]byte, 0, n+3)
	for i := range n {
		events = append(events, fmt.Appendf(nil, "%s[{\"index\":0,\"delta\":{\"content\":\" tok%d\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n", prefix, i))
	}
	events = append(events,
		[]byte(prefix+`[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}`+"\n\n"),
		fmt.Appendf(nil, "%s[],\"usage\":{\"prompt_tokens\":12,\"total_tokens\":%d,\"completion_tokens\":%d}}\n\n", prefix, 12+n, n),
		[]byte("data: [DONE]\n\n"))
	return events
}

// eventReader returns one event per Read, as a stream arrives when the
// server flushes each chunk and the gateway keeps up.
type eventReader struct {
	events [][]byte
	i      int
}

func (r *eventReader) Read(p []byte) (int, error) {
	if r.i == len(r.events) {
		return 0, io.EOF
	}
	n := copy(p, r.events[r.i])
	r.i++
	return n, nil
}

func (r *eventReader) Close() error { return nil }

// BenchmarkRelayStream measures relaying a streamed chat completion once the
// upstream has answered: headers, then every chunk scanned for usage,
// written and flushed. ns/chunk is the cost per event.
func BenchmarkRelayStream(b *testing.B) {
	const chunks = 128
	events := sseBody(chunks)
	var size int64
	for _, e := range events {
		size += int64(len(e))
	}
	p := New(Options{Router: router.New(nil, config.RouterSettings{}, nil), Version: "bench"})
	d := benchDeployment()
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	w := newDiscardWriter()
	body := &eventReader{events: events}
	resp := &http.Response{StatusCode: http.StatusOK, Header: upstreamHeader("text/event-stream"), Body: body}
	var res result
	b.ReportAllocs()
	b.SetBytes(size)
	for b.Loop() {
		w.reset()
		body.i = 0
		c := call{start: time.Now(), req: request{stream: true}}
		a := attempt{d: d, ctx: context.Background(), sent: c.start}
		res = p.relayStream(w, r, &c, &a, resp)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/chunk")
	if res.err != nil || res.outcome.TotalTokens != 12+chunks || w.n != int(size) {
		b.Fatalf("relayed %d of %d bytes, outcome %+v, error %v", w.n, size, res.outcome, res.err)
	}
}

// chatResponse is a vLLM chat completion of a few tokens.
const chatResponse = `{"id":"chatcmpl-8f3b2c1d9e4a4b7c8d6e5f4a3b2c1d0e","object":"chat.completion","created":1795000000,` +
	`"model":"up-qwen3-14b","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?",` +
	`"tool_calls":[]},"logprobs":null,"finish_reason":"stop","stop_reason":null}],` +
	`"usage":{"prompt_tokens":21,"total_tokens":31,"completion_tokens":10,"prompt_tokens_details":null},"prompt_logprobs":null}`

// cannedTransport answers every request in process with chatResponse.
type cannedTransport struct{ header http.Header }

func (t cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		return nil, err
	}
	r.Body.Close() // as a transport does: the request's buffer goes back to the pool
	return &http.Response{StatusCode: http.StatusOK, Header: t.header, Body: io.NopCloser(strings.NewReader(chatResponse)), Request: r}, nil
}

// reusableBody is a request body that can be rewound, so one request
// serves every iteration.
type reusableBody struct{ bytes.Reader }

func (*reusableBody) Close() error { return nil }

// BenchmarkServe measures one non-streaming chat completion through the
// proxy's handler: read and rewrite the body, pick, forward, read the
// answer, set the headers, record the outcome. "loopback" forwards over
// the tuned transport to an HTTP server on 127.0.0.1, so it counts what
// net/http allocates on both sides too; "in-process" answers from memory,
// leaving the proxy's own work.
func BenchmarkServe(b *testing.B) {
	const reqBody = `{"model":"qwen3-14b","messages":[{"role":"system","content":"You are a helpful assistant."},` +
		`{"role":"user","content":"Say hello."}],"max_tokens":16,"temperature":0.7,"metadata":{"user":"u1"}}`
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["X-Request-Id"] = []string{"chatcmpl-8f3b2c1d9e4a4b7c8d6e5f4a3b2c1d0e"}
		_, _ = io.WriteString(w, chatResponse)
	}))
	b.Cleanup(upstream.Close)
	loopback := NewTransport()
	b.Cleanup(loopback.CloseIdleConnections)
	canned := cannedTransport{header: upstreamHeader("application/json")}
	tp := sdktrace.NewTracerProvider() // spans recorded, exported nowhere
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	// 10,000 virtual keys, one of them the benchmark's.
	const virtualKey = "sk-bench-virtual-key-0001"
	ks := make([]*keys.Key, 10_000)
	for i := range ks {
		ks[i] = &keys.Key{Token: keys.Token(fmt.Sprintf("sk-bench-key-%08d", i)), Models: []string{"qwen3-14b"}}
	}
	ks[0].Token = keys.Token(virtualKey)
	authn := auth.New("sk-bench-master-key", fixedKeys{keys.NewSet(ks)})
	for _, tc := range []struct {
		name      string
		transport http.RoundTripper
		metrics   bool
		tracer    trace.Tracer
		key       string // sent as the Bearer key, through the authenticator; "" for none
	}{
		{"loopback", loopback, false, nil, ""},
		{"in-process", canned, false, nil, ""},
		// Authentication: the master key, and a virtual key limited to the
		// model, checked in memory among 10,000.
		{"in-process+master-key", canned, false, nil, "sk-bench-master-key"},
		{"in-process+virtual-key", canned, false, nil, virtualKey},
		// What the gateway binary runs: metrics always, tracing when set.
		{"in-process+metrics", canned, true, nil, ""},
		{"in-process+metrics+tracing", canned, true, tp.Tracer("bench"), ""},
		// Metrics labelled with the key: "None" for the master key, the
		// virtual key's hash, alias and team for it.
		{"in-process+metrics+master-key", canned, true, nil, "sk-bench-master-key"},
		{"in-process+metrics+virtual-key", canned, true, nil, virtualKey},
	} {
		b.Run(tc.name, func(b *testing.B) {
			rt := router.New([]config.Model{
				dep("qwen3-14b", "gpu-a", upstream.URL+"/v1", func(p *config.Params) { p.APIKey = "sk-upstream" }),
			}, config.DefaultRouterSettings(), nil)
			var m *metrics.Metrics
			if tc.metrics {
				m = metrics.New(metrics.Options{Registry: prometheus.NewRegistry(), Deployments: rt.Deployments,
					MaxKeys: metrics.DefaultMaxKeys})
			}
			o := Options{Router: rt, Transport: tc.transport, Version: "bench", Metrics: m, Tracer: tc.tracer}
			var h http.Handler
			mux := http.NewServeMux()
			h = mux
			if tc.key != "" {
				// As the gateway runs: keys' limits and the spend ledger
				// (in memory; its batched writes are off the request path).
				o.Keys, o.Limits = authn, limits.New(limits.Options{})
				o.Usage, o.AdminToken = usage.New(usage.Options{}), keys.Token("sk-bench-master-key")
				h = authn.Wrap(mux)
			}
			New(o).Register(mux)
			raw := []byte(reqBody)
			body := &reusableBody{}
			r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", body)
			r.Header.Set("Content-Type", "application/json")
			if tc.key != "" {
				r.Header.Set("Authorization", "Bearer "+tc.key)
			}
			r.ContentLength = int64(len(reqBody))
			w := newDiscardWriter()
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				body.Reset(raw)
				h.ServeHTTP(w, r)
				if w.status != http.StatusOK {
					b.Fatalf("status %d, headers %v", w.status, w.h)
				}
			}
			if w.n != len(chatResponse) {
				b.Fatalf("relayed %d bytes, want %d", w.n, len(chatResponse))
			}
		})
	}
}

// fixedKeys holds virtual keys that never change.
type fixedKeys struct{ set *keys.Set }

func (f fixedKeys) Keys() *keys.Set { return f.set }
