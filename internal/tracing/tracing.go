// Package tracing builds an OpenTelemetry tracer provider from the standard
// OTEL_* environment variables, so the gateway can be pointed at any OTLP
// collector (Jaeger, Tempo, the OpenTelemetry Collector) without a flag of
// its own.
//
// Tracing is off unless an OTLP endpoint is configured: the caller then gets
// no provider and uses no tracer at all, so an untraced gateway pays nothing
// for it. Nothing here touches the otel global provider or propagator; the
// caller passes the provider's tracer and [Propagator] to the code that needs
// them.
package tracing

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// defaultServiceName is the service.name reported when OTEL_SERVICE_NAME is
// not set.
const defaultServiceName = "maasgate"

// The protocols accepted in OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL.
const (
	protocolHTTPProtobuf = "http/protobuf"
	protocolHTTPJSON     = "http/json"
	protocolGRPC         = "grpc"
)

// Setup returns a TracerProvider exporting spans over OTLP when the standard
// environment asks for it, or ok=false (tracing off) otherwise.
//
// Tracing is on only when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_EXPORTER_OTLP_ENDPOINT is non-empty, OTEL_SDK_DISABLED is not "true"
// and OTEL_TRACES_EXPORTER is not "none". When it is off, Setup returns a nil
// provider, ok=false and a nil error, whatever else the environment holds.
// When it is on, the protocol (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else
// OTEL_EXPORTER_OTLP_PROTOCOL) must be "http/protobuf" (the default),
// "http/json" or "grpc", OTEL_TRACES_EXPORTER must be empty or "otlp", and the
// endpoint must be an http or https URL (or unix for grpc): the exporters
// only log an endpoint they cannot use and send to localhost instead, so
// Setup turns a typo into a start-up error rather than silently lost spans.
//
// getenv (os.LookupEnv outside tests) is read only for those decisions and
// OTEL_SERVICE_NAME. The SDK offers no way to inject a lookup, so the
// exporters, the resource detector, the sampler and the batch processor read
// the rest straight from the process environment: the endpoint itself,
// headers, timeout, TLS and insecure, compression, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (default
// ParentBased(AlwaysOn)) and OTEL_BSP_*. A malformed OTEL_RESOURCE_ATTRIBUTES
// is an error; an unknown OTEL_TRACES_SAMPLER, like a failed export, is only
// reported to the otel global error handler, which logs it.
//
// Spans are batched. The caller must call tp.Shutdown on exit, with a
// context bounding how long it may take, to flush the spans still queued.
func Setup(ctx context.Context, getenv func(string) (string, bool), serviceVersion string) (tp *sdktrace.TracerProvider, ok bool, err error) {
	env := func(key string) string {
		v, _ := getenv(key)
		return strings.TrimSpace(v)
	}
	key := endpointVar(env)
	exporter := env("OTEL_TRACES_EXPORTER")
	if key == "" || exporter == "none" || strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") {
		return nil, false, nil
	}
	if exporter != "" && exporter != "otlp" {
		return nil, false, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: want %q or %q", exporter, "otlp", "none")
	}

	protocolKey := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	protocol := env(protocolKey)
	if protocol == "" {
		protocolKey = "OTEL_EXPORTER_OTLP_PROTOCOL"
		protocol = env(protocolKey)
	}
	if protocol == "" {
		protocol = protocolHTTPProtobuf
	}
	switch protocol {
	case protocolHTTPProtobuf, protocolHTTPJSON, protocolGRPC:
	default:
		return nil, false, fmt.Errorf("%s=%q: want %q, %q or %q", protocolKey, protocol, protocolHTTPProtobuf, protocolHTTPJSON, protocolGRPC)
	}
	if err := checkEndpoint(env(key), protocol); err != nil {
		return nil, false, fmt.Errorf("%s: %w", key, err)
	}

	serviceName := env("OTEL_SERVICE_NAME")
	if serviceName == "" {
		serviceName = defaultServiceName
	}
	// The environment comes last so that OTEL_RESOURCE_ATTRIBUTES can
	// override service.version, as the specification expects of user
	// configuration. resource.New fails on a schema URL conflict, so the
	// semconv import must stay the version the SDK's telemetry detector
	// uses (v1.43.0 in otel v1.47.0); an upgrade that moves it fails
	// TestSetupExports until the import is bumped.
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(serviceName), semconv.ServiceVersion(serviceVersion)),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, false, fmt.Errorf("tracing resource from OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}

	var exp sdktrace.SpanExporter
	switch protocol {
	case protocolGRPC:
		exp, err = otlptracegrpc.New(ctx)
	case protocolHTTPJSON:
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON))
	default:
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEncoding(otlptracehttp.EncodingProtobuf))
	}
	if err != nil {
		return nil, false, fmt.Errorf("otlp %s trace exporter: %w", protocol, err)
	}

	// No WithSampler: NewTracerProvider reads OTEL_TRACES_SAMPLER and
	// OTEL_TRACES_SAMPLER_ARG itself and defaults to ParentBased(AlwaysOn).
	tp = sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
	)
	return tp, true, nil
}

// Propagator returns the W3C Trace Context and Baggage propagator, with which
// the gateway continues an incoming traceparent and forwards it upstream.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// endpointVar returns the name of the variable the exporter takes its
// endpoint from (the per-signal one wins), or "" when neither is set.
func endpointVar(env func(string) string) string {
	for _, key := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if env(key) != "" {
			return key
		}
	}
	return ""
}

// defaultPort returns the port OTLP collectors listen on for protocol.
func defaultPort(protocol string) int {
	if protocol == protocolGRPC {
		return 4317
	}
	return 4318
}

// checkEndpoint reports whether the exporter for protocol would use endpoint.
// The exporters only log an endpoint they cannot parse and fall back to
// localhost, which would lose every span without a visible error.
func checkEndpoint(endpoint, protocol string) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("want a URL such as http://collector:%d: %w", defaultPort(protocol), err)
	}
	switch {
	case protocol == protocolGRPC && u.Scheme == "unix":
		if u.Path == "" {
			return fmt.Errorf("%q: unix endpoint without a socket path", endpoint)
		}
		return nil
	case u.Scheme != "http" && u.Scheme != "https":
		want := "http:// or https://"
		if protocol == protocolGRPC {
			want += " (or unix:// for grpc)"
		}
		return fmt.Errorf("%q: scheme must be %s", endpoint, want)
	case u.Host == "":
		return fmt.Errorf("%q: no host", endpoint)
	}
	return nil
}
