package main

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// otlpReceiver is an OTLP/HTTP trace collector on loopback that keeps the
// spans it is sent.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var msg coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range msg.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			o.spans = append(o.spans, ss.GetSpans()...)
		}
	}
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
}

// TestTracingExport: with OTEL_EXPORTER_OTLP_ENDPOINT set, a request's
// spans reach the collector by the time the gateway has stopped, in the
// client's trace.
func TestTracingExport(t *testing.T) {
	rec := &otlpReceiver{}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/traces", rec)
	collector := httptest.NewServer(mux)
	defer collector.Close()
	// The exporter reads the process environment itself.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	env := map[string]string{"LITELLM_MASTER_KEY": testKey, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL}

	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}})
	g := startGateway(t, env, "serve", "--config", writeConfig(t, oneGroupConfig(a, "")))
	req, _ := http.NewRequest("POST", g.url+"/v1/chat/completions", strings.NewReader(chatBody("qwen3-14b", 2)))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	var server, attempt *tracepb.Span
	for _, s := range rec.spans {
		if hex.EncodeToString(s.TraceId) != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("span %q in trace %x, want the client's", s.Name, s.TraceId)
		}
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = s
		case tracepb.Span_SPAN_KIND_CLIENT:
			attempt = s
		}
	}
	if len(rec.spans) != 2 || server == nil || attempt == nil {
		t.Fatalf("collector got %d spans, want the request's (server) and its attempt's (client): %v", len(rec.spans), rec.spans)
	}
	if server.Name != "chat qwen3-14b" || hex.EncodeToString(server.ParentSpanId) != "00f067aa0ba902b7" {
		t.Errorf("request span %q with parent %x, want \"chat qwen3-14b\" under the client's span", server.Name, server.ParentSpanId)
	}
	if string(attempt.ParentSpanId) != string(server.SpanId) {
		t.Errorf("attempt span's parent %x, want the request span %x", attempt.ParentSpanId, server.SpanId)
	}
	model := ""
	for _, kv := range attempt.Attributes {
		if kv.Key == "gen_ai.request.model" {
			model = kv.Value.GetStringValue()
		}
	}
	if model != "qwen3-14b" {
		t.Errorf("attempt span gen_ai.request.model = %q, want qwen3-14b", model)
	}
}
