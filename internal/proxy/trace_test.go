package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/router"
)

// traceparentRecorder is an upstream that records the traceparent of each
// request and answers from status: an error, or a completion with usage.
type traceparentRecorder struct {
	mu      sync.Mutex
	parents []string
	baggage []string
	srv     *httptest.Server
}

func newTraceparentRecorder(t *testing.T, status int) *traceparentRecorder {
	rec := &traceparentRecorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rec.mu.Lock()
		rec.parents = append(rec.parents, r.Header.Get("Traceparent"))
		rec.baggage = append(rec.baggage, r.Header.Get("Baggage"))
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if status != http.StatusOK {
			w.WriteHeader(status)
			fmt.Fprint(w, `{"error":{"message":"engine died","type":"server_error"}}`)
			return
		}
		fmt.Fprint(w, `{"id":"c1","object":"chat.completion","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *traceparentRecorder) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.parents...)
}

const (
	clientTrace       = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan        = "00f067aa0ba902b7"
	clientTraceparent = "00-" + clientTrace + "-" + clientSpan + "-01"
)

// TestTracing: a request that fails on one deployment and succeeds on the
// next makes a server span continuing the client's trace, with one client
// span per attempt carrying the deployment and GenAI attributes; each
// upstream request carries its attempt's span as traceparent.
func TestTracing(t *testing.T) {
	bad := newTraceparentRecorder(t, http.StatusInternalServerError)
	good := newTraceparentRecorder(t, http.StatusOK)
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })

	rt := router.New([]config.Model{
		dep("qwen3-14b", "bad", bad.srv.URL+"/v1"),
		dep("qwen3-14b", "good", good.srv.URL+"/v1?key=query-secret-1234"),
	}, config.RouterSettings{RoutingStrategy: router.RoundRobin, NumRetries: 1, AllowedFails: 100}, nil)
	tr := NewTransport()
	t.Cleanup(tr.CloseIdleConnections)
	p := New(Options{Router: rt, Transport: tr, Version: "test", Tracer: tp.Tracer("test")})
	mux := http.NewServeMux()
	p.Register(mux)
	gw := httptest.NewServer(mux)
	t.Cleanup(gw.Close)

	req, _ := http.NewRequest("POST", gw.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"qwen3-14b","messages":[{"role":"user","content":"hello"}]}`))
	req.Header.Set("Traceparent", clientTraceparent)
	req.Header.Set("Baggage", "tenant=acme")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200 after a retry", resp.StatusCode)
	}

	spans := exporter.GetSpans() // ended spans, attempts first
	if len(spans) != 3 {
		t.Fatalf("got %d spans, want 3 (two attempts and the request): %v", len(spans), spanNames(spans.Snapshots()))
	}
	first, second, server := spans[0], spans[1], spans[2]
	if server.Name != "chat qwen3-14b" || server.SpanKind != trace.SpanKindServer {
		t.Errorf("request span %q kind %v, want \"chat qwen3-14b\" server", server.Name, server.SpanKind)
	}
	if got := server.SpanContext.TraceID().String(); got != clientTrace {
		t.Errorf("request span trace %s, want the client's %s", got, clientTrace)
	}
	if got := server.Parent.SpanID().String(); got != clientSpan || !server.Parent.IsRemote() {
		t.Errorf("request span parent %s (remote %v), want the client's span %s", got, server.Parent.IsRemote(), clientSpan)
	}
	wantServer := map[string]any{
		"gen_ai.operation.name":      "chat",
		"gen_ai.request.model":       "qwen3-14b",
		"gen_ai.response.model":      "up-qwen3-14b",
		"gen_ai.usage.input_tokens":  int64(7),
		"gen_ai.usage.output_tokens": int64(3),
		"http.response.status_code":  int64(200),
		"http.route":                 "/v1/chat/completions",
		"maasgate.model_group":       "qwen3-14b",
		"maasgate.deployment.id":     "good",
		"maasgate.attempts":          int64(2),
		"maasgate.fallback_depth":    int64(0),
		"maasgate.stream":            false,
	}
	if diff := cmp.Diff(wantServer, attrs(server.Attributes, wantServer)); diff != "" {
		t.Errorf("request span attributes (-want +got):\n%s", diff)
	}
	if id := attrs(server.Attributes, map[string]any{"maasgate.call_id": nil})["maasgate.call_id"]; id == nil || id == "" {
		t.Error("request span has no maasgate.call_id")
	}

	for i, tt := range []struct {
		span   tracetest.SpanStub
		id     string
		status int64
		failed bool
		rec    *traceparentRecorder
	}{{first, "bad", 500, true, bad}, {second, "good", 200, false, good}} {
		s := tt.span
		if s.Name != "chat up-qwen3-14b" || s.SpanKind != trace.SpanKindClient {
			t.Errorf("attempt %d: span %q kind %v, want \"chat up-qwen3-14b\" client", i, s.Name, s.SpanKind)
		}
		if s.Parent.SpanID() != server.SpanContext.SpanID() {
			t.Errorf("attempt %d: parent %s, want the request span %s", i, s.Parent.SpanID(), server.SpanContext.SpanID())
		}
		want := map[string]any{
			"maasgate.deployment.id":    tt.id,
			"gen_ai.request.model":      "up-qwen3-14b",
			"gen_ai.provider.name":      "openai",
			"http.response.status_code": tt.status,
			"server.address":            "127.0.0.1",
		}
		if tt.failed {
			want["error.type"] = "server_error"
		} else {
			want["gen_ai.usage.input_tokens"] = int64(7)
			want["gen_ai.usage.output_tokens"] = int64(3)
		}
		if diff := cmp.Diff(want, attrs(s.Attributes, want)); diff != "" {
			t.Errorf("attempt %d attributes (-want +got):\n%s", i, diff)
		}
		if gotErr := s.Status.Code == codes.Error; gotErr != tt.failed {
			t.Errorf("attempt %d: status %v, want error %v", i, s.Status, tt.failed)
		}
		wantParent := fmt.Sprintf("00-%s-%s-01", clientTrace, s.SpanContext.SpanID())
		if diff := cmp.Diff([]string{wantParent}, tt.rec.received()); diff != "" {
			t.Errorf("attempt %d: upstream traceparent (-want +got):\n%s", i, diff)
		}
		tt.rec.mu.Lock()
		if diff := cmp.Diff([]string{"tenant=acme"}, tt.rec.baggage); diff != "" {
			t.Errorf("attempt %d: upstream baggage (-want +got):\n%s", i, diff)
		}
		tt.rec.mu.Unlock()
		for _, kv := range s.Attributes {
			if strings.Contains(kv.Value.String(), "query-secret") {
				t.Errorf("attempt %d: attribute %s carries the api_base query: %s", i, kv.Key, kv.Value.String())
			}
		}
	}
}

// TestTraceparentForwardedWithoutTracing: with tracing off, the client's
// trace context reaches the upstream unchanged.
func TestTraceparentForwardedWithoutTracing(t *testing.T) {
	up := newTraceparentRecorder(t, http.StatusOK)
	gw, _ := newGateway(t, config.RouterSettings{}, dep("qwen3-14b", "a", up.srv.URL+"/v1"))
	req, _ := http.NewRequest("POST", gw.URL+"/v1/chat/completions", strings.NewReader(`{"model":"qwen3-14b","messages":[]}`))
	req.Header.Set("Traceparent", clientTraceparent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if diff := cmp.Diff([]string{clientTraceparent}, up.received()); diff != "" {
		t.Errorf("upstream traceparent (-want +got):\n%s", diff)
	}
}

// attrs returns the attributes named in want, by name, as plain values.
func attrs(kvs []attribute.KeyValue, want map[string]any) map[string]any {
	out := map[string]any{}
	for _, kv := range kvs {
		if _, ok := want[string(kv.Key)]; ok {
			out[string(kv.Key)] = kv.Value.AsInterface()
		}
	}
	return out
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name())
	}
	return names
}

// TestSpanOutlivesItsRequest: a span is exported after its request has
// ended and its body buffer has gone back to the pool; what the span says
// must be its own request's, never bytes of the requests after it.
func TestSpanOutlivesItsRequest(t *testing.T) {
	t.Parallel()
	up := newTraceparentRecorder(t, http.StatusOK)
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	url := gatewayWith(t, func(o *Options) { o.Tracer = tp.Tracer("test") }, dep("g", "g1", up.srv.URL+"/v1"))

	send(t, url, `{"model":"unknown-model-AAAA","messages":[]}`)
	for range 50 {
		// The same size, so it reuses the first one's buffer.
		send(t, url, `{"model":"SECRET-PROMPT-OF-B","messages":[]}`)
	}
	spans := exporter.GetSpans()
	got := attrs(spans[0].Attributes, map[string]any{"gen_ai.request.model": nil})["gen_ai.request.model"]
	if got != "unknown-model-AAAA" {
		t.Errorf("the first request's span says model %q", got)
	}
}
