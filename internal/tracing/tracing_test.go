package tracing

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// clearOTelEnv unsets every OTEL_* variable for the duration of the test, so
// the exporters and resource detector, which read the process environment,
// see only what the test sets.
func clearOTelEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OTEL_") {
			t.Setenv(k, "") // restores the old value on cleanup
			os.Unsetenv(k)
		}
	}
}

// setEnv sets env in the process environment for the duration of the test.
func setEnv(t *testing.T, env map[string]string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
}

func TestSetupOff(t *testing.T) {
	const endpoint = "http://127.0.0.1:4318"
	tests := []struct {
		name string
		env  map[string]string
	}{
		{name: "no endpoint", env: nil},
		{name: "blank endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": " "}},
		{name: "no endpoint with other settings", env: map[string]string{
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			"OTEL_SERVICE_NAME":           "gw",
		}},
		{name: "sdk disabled", env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
			"OTEL_SDK_DISABLED":           "true",
		}},
		{name: "sdk disabled in capitals", env: map[string]string{
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
			"OTEL_SDK_DISABLED":                  "TRUE",
		}},
		{name: "traces exporter none", env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
			"OTEL_TRACES_EXPORTER":        "none",
		}},
		{name: "off wins over an invalid protocol", env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
			"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift",
			"OTEL_SDK_DISABLED":           "true",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(key string) (string, bool) {
				v, ok := tt.env[key]
				return v, ok
			}
			tp, ok, err := Setup(t.Context(), getenv, "v1.2.3")
			if tp != nil || ok || err != nil {
				t.Errorf("Setup = %v, %v, %v; want nil, false, nil", tp, ok, err)
			}
		})
	}
}

func TestSetupErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // substrings of the error
	}{
		{
			name: "unknown protocol",
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
				"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift",
			},
			want: []string{`OTEL_EXPORTER_OTLP_PROTOCOL="thrift"`, "http/protobuf", "http/json", "grpc"},
		},
		{
			name: "per-signal protocol is the one named",
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://127.0.0.1:4318",
				"OTEL_EXPORTER_OTLP_PROTOCOL":        "grpc",
				"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/xml",
			},
			want: []string{`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/xml"`},
		},
		{
			name: "unsupported traces exporter",
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
				"OTEL_TRACES_EXPORTER":        "zipkin",
			},
			want: []string{`OTEL_TRACES_EXPORTER="zipkin"`, "otlp", "none"},
		},
		{
			name: "endpoint without a scheme does not parse",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318"},
			want: []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"},
		},
		{
			name: "host and port read as a scheme",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
			want: []string{"OTEL_EXPORTER_OTLP_ENDPOINT", `"collector:4318"`, "http:// or https://"},
		},
		{
			name: "unparseable endpoint",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://[::1"},
			want: []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "want a URL"},
		},
		{
			name: "per-signal endpoint is the one checked",
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://127.0.0.1:4318",
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://127.0.0.1/v1/traces",
			},
			want: []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "scheme"},
		},
		{
			name: "grpc endpoint without a host",
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": "http://",
				"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			},
			want: []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "no host"},
		},
		{
			name: "malformed resource attributes",
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
				"OTEL_RESOURCE_ATTRIBUTES":    "deployment.environment.name",
			},
			want: []string{"OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearOTelEnv(t)
			setEnv(t, tt.env)
			tp, ok, err := Setup(t.Context(), os.LookupEnv, "v1.2.3")
			if err == nil {
				_ = tp.Shutdown(t.Context())
				t.Fatalf("Setup = _, %v, nil; want an error", ok)
			}
			if tp != nil || ok {
				t.Errorf("Setup = %v, %v, _; want nil, false with the error", tp, ok)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// receiver is an OTLP trace collector for both transports: it records every
// export request it is sent.
type receiver struct {
	coltracepb.UnimplementedTraceServiceServer

	mu   sync.Mutex
	reqs []*coltracepb.ExportTraceServiceRequest
}

func (r *receiver) add(req *coltracepb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
}

func (r *receiver) requests() []*coltracepb.ExportTraceServiceRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reqs
}

// Export implements the OTLP/gRPC trace service.
func (r *receiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.add(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// ServeHTTP implements OTLP/HTTP in its protobuf and JSON encodings.
func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg coltracepb.ExportTraceServiceRequest
	contentType := req.Header.Get("Content-Type")
	switch contentType {
	case "application/x-protobuf":
		err = proto.Unmarshal(body, &msg)
	case "application/json":
		err = protojson.Unmarshal(body, &msg)
		fixJSONIDs(&msg)
	default:
		http.Error(w, "unexpected Content-Type "+contentType, http.StatusUnsupportedMediaType)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.add(&msg)
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK) // an empty body is an empty ExportTraceServiceResponse
}

// fixJSONIDs undoes protojson's reading of OTLP/JSON's hex trace and span IDs
// as base64: re-encoding the bytes as base64 gives back the hex text.
func fixJSONIDs(msg *coltracepb.ExportTraceServiceRequest) {
	fix := func(b []byte) []byte {
		if len(b) == 0 {
			return b
		}
		id, err := hex.DecodeString(base64.StdEncoding.EncodeToString(b))
		if err != nil {
			return b
		}
		return id
	}
	for _, rs := range msg.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				s.TraceId, s.SpanId, s.ParentSpanId = fix(s.TraceId), fix(s.SpanId), fix(s.ParentSpanId)
			}
		}
	}
}

// serveHTTP serves r as an OTLP/HTTP collector on loopback and returns its
// base URL.
func serveHTTP(t *testing.T, r *receiver) string {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/traces", r)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// serveGRPC serves r as an OTLP/gRPC collector on loopback and returns its
// URL.
func serveGRPC(t *testing.T, r *receiver) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, r)
	go srv.Serve(lis) // returns when Stop closes lis
	t.Cleanup(srv.Stop)
	return "http://" + lis.Addr().String()
}

// exportedSpan is what a collector shows of a span.
type exportedSpan struct {
	Resource     map[string]string
	Scope        string
	Name         string
	Kind         string
	TraceID      string
	ParentSpanID string
	Attributes   map[string]string
}

func summarize(reqs []*coltracepb.ExportTraceServiceRequest) []exportedSpan {
	var spans []exportedSpan
	for _, req := range reqs {
		for _, rs := range req.GetResourceSpans() {
			res := attrs(rs.GetResource().GetAttributes())
			delete(res, "telemetry.sdk.version") // changes with every otel release
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					spans = append(spans, exportedSpan{
						Resource:     res,
						Scope:        ss.GetScope().GetName(),
						Name:         s.GetName(),
						Kind:         s.GetKind().String(),
						TraceID:      hex.EncodeToString(s.GetTraceId()),
						ParentSpanID: hex.EncodeToString(s.GetParentSpanId()),
						Attributes:   attrs(s.GetAttributes()),
					})
				}
			}
		}
	}
	return spans
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = strconv.FormatInt(v.IntValue, 10)
		default:
			m[kv.GetKey()] = kv.GetValue().String()
		}
	}
	return m
}

// TestSetupExports checks that a span started under an incoming traceparent
// reaches a real OTLP collector, over each protocol, with the resource that
// identifies the gateway.
func TestSetupExports(t *testing.T) {
	const (
		incomingTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		incomingSpanID  = "00f067aa0ba902b7"
		scope           = "github.com/maasgate/maasgate/internal/proxy"
	)
	sdk := map[string]string{"telemetry.sdk.language": "go", "telemetry.sdk.name": "opentelemetry"}
	withSDK := func(m map[string]string) map[string]string {
		for k, v := range sdk {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name         string
		serve        func(*testing.T, *receiver) string
		env          map[string]string
		wantResource map[string]string
	}{
		{
			name:         "http/protobuf by default",
			serve:        serveHTTP,
			wantResource: withSDK(map[string]string{"service.name": "maasgate", "service.version": "v1.2.3"}),
		},
		{
			name:  "http/protobuf with service name and resource attributes",
			serve: serveHTTP,
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
				"OTEL_SERVICE_NAME":           "gateway-eu",
				"OTEL_RESOURCE_ATTRIBUTES":    "deployment.environment.name=staging,service.name=ignored",
			},
			wantResource: withSDK(map[string]string{
				"service.name":                "gateway-eu",
				"service.version":             "v1.2.3",
				"deployment.environment.name": "staging",
			}),
		},
		{
			name:         "http/json",
			serve:        serveHTTP,
			env:          map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
			wantResource: withSDK(map[string]string{"service.name": "maasgate", "service.version": "v1.2.3"}),
		},
		{
			name:  "grpc",
			serve: serveGRPC,
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
				"OTEL_EXPORTER_OTLP_INSECURE": "true",
			},
			wantResource: withSDK(map[string]string{"service.name": "maasgate", "service.version": "v1.2.3"}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearOTelEnv(t)
			r := &receiver{}
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tt.serve(t, r))
			setEnv(t, tt.env)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()

			tp, ok, err := Setup(ctx, os.LookupEnv, "v1.2.3")
			if err != nil || !ok {
				t.Fatalf("Setup = _, %v, %v; want a provider", ok, err)
			}
			incoming := http.Header{"Traceparent": {"00-" + incomingTraceID + "-" + incomingSpanID + "-01"}}
			reqCtx := Propagator().Extract(ctx, propagation.HeaderCarrier(incoming))
			_, span := tp.Tracer(scope).Start(reqCtx, "chat gpt-oss-120b",
				trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(
					attribute.String("gen_ai.request.model", "gpt-oss-120b"),
					attribute.Int("http.response.status_code", 200),
				))
			span.End()
			if err := tp.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}

			want := []exportedSpan{{
				Resource:     tt.wantResource,
				Scope:        scope,
				Name:         "chat gpt-oss-120b",
				Kind:         "SPAN_KIND_SERVER",
				TraceID:      incomingTraceID,
				ParentSpanID: incomingSpanID,
				Attributes: map[string]string{
					"gen_ai.request.model":      "gpt-oss-120b",
					"http.response.status_code": "200",
				},
			}}
			if diff := cmp.Diff(want, summarize(r.requests())); diff != "" {
				t.Errorf("collector got (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPropagatorForwardsTraceparentAndBaggage(t *testing.T) {
	in := http.Header{
		"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"Baggage":     {"tenant=acme"},
	}
	ctx := Propagator().Extract(t.Context(), propagation.HeaderCarrier(in))
	out := http.Header{}
	Propagator().Inject(ctx, propagation.HeaderCarrier(out))
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("forwarded headers (-incoming +forwarded):\n%s", diff)
	}
}
