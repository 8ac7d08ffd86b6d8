package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/metrics"
	"github.com/maasgate/maasgate/internal/router"
	"github.com/maasgate/maasgate/internal/usage"
)

// finish reports a call that has ended: its metrics and its log line.
func (p *Proxy) finish(ctx context.Context, c *call) {
	total := p.now().Sub(c.start)
	if c.status == 0 && ctx.Err() != nil { // gone before the response started
		c.status = statusClientClosed
	}
	if c.status == statusClientClosed {
		c.class, c.errStatus, c.ownError = router.Cancelled, statusClientClosed, true
	}
	c.hold.End(c.usage.PromptTokens, c.usage.CompletionTokens)
	p.record(c)
	if p.metrics != nil {
		p.metrics.Finish(&metrics.Call{
			Route: c.route, Group: c.group, Status: c.status, Class: c.class, ErrorStatus: c.errStatus,
			FromDeployment: !c.ownError, D: c.d, Stream: c.req.stream, Key: c.key, Team: c.team,
			Total: total, API: c.apiLatency, TTFT: c.ttft, Overhead: c.overhead,
			PromptTokens: c.usage.PromptTokens, CompletionTokens: c.usage.CompletionTokens, TotalTokens: c.usage.TotalTokens,
			CachedTokens: c.cachedTokens, Queue: c.queued, Operation: operationName(c.ep),
		})
	}
	p.logCall(ctx, c, total)
	p.endSpan(c)
}

// logCall writes the call's one log line: at info, or warn for a 5xx or a
// call that never answered. It holds ids, names, counts and durations,
// never request or response text: errMsg is the gateway's own message.
func (p *Proxy) logCall(ctx context.Context, c *call, total time.Duration) {
	level := slog.LevelInfo
	if c.status >= 500 || c.status == 0 {
		level = slog.LevelWarn
	}
	if !p.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 20)
	attrs = append(attrs,
		slog.String("call_id", c.id),
		slog.String("endpoint", c.ep.String()),
		slog.String("model", clip(c.req.model, maxLoggedModel)),
		slog.String("model_group", c.group),
	)
	if c.responseGroup != "" && c.responseGroup != c.group {
		// After a fallback: the group that answered, as x-litellm-model-group.
		attrs = append(attrs, slog.String("response_group", c.responseGroup))
	}
	if c.d != nil {
		attrs = append(attrs, slog.String("model_id", c.d.ID))
	}
	attrs = append(attrs,
		slog.Bool("stream", c.req.stream),
		slog.Int("status", c.status),
		slog.Int("attempts", c.attempts),
		slog.Int("retries", c.retries),          // x-litellm-attempted-retries: in the response's group
		slog.Int("fallback_depth", c.fallbacks), // x-litellm-attempted-fallbacks
		slog.Float64("duration_ms", ms(total)),
		slog.Float64("upstream_ms", ms(c.upstream)),
		slog.Float64("overhead_ms", ms(c.overhead)),
	)
	if c.req.stream && c.ttft > 0 {
		attrs = append(attrs, slog.Float64("ttft_ms", ms(c.ttft)))
	}
	if u := c.usage; u.TotalTokens > 0 {
		attrs = append(attrs,
			slog.Int64("prompt_tokens", u.PromptTokens),
			slog.Int64("completion_tokens", u.CompletionTokens),
			slog.Int64("total_tokens", u.TotalTokens),
		)
	}
	if c.errMsg != "" {
		attrs = append(attrs, slog.String("error_class", c.class.String()), slog.String("error", clip(c.errMsg, maxLoggedError)))
	}
	p.log.LogAttrs(ctx, level, "request", attrs...)
}

// Bounds on client-controlled text in logs and spans: "model" is any
// string a client sends, and error messages may quote it.
const (
	maxLoggedModel = 256
	maxLoggedError = 1024
)

// clip returns s cut to at most n bytes, on a UTF-8 boundary, marked "…"
// when cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// Span attributes of maasgate's own, beside the GenAI semantic conventions.
const (
	attrCallID        = attribute.Key("maasgate.call_id")
	attrModelGroup    = attribute.Key("maasgate.model_group")
	attrDeploymentID  = attribute.Key("maasgate.deployment.id")
	attrAttempts      = attribute.Key("maasgate.attempts")
	attrFallbackDepth = attribute.Key("maasgate.fallback_depth")
	attrStream        = attribute.Key("maasgate.stream")
	attrCooledDown    = attribute.Key("maasgate.cooled_down")
)

// operations are the GenAI operation names of the endpoints: the
// convention's where it has one, else the endpoint's own name.
var operations = [...]attribute.KeyValue{
	deployment.Chat:          semconv.GenAIOperationNameChat,
	deployment.Completion:    semconv.GenAIOperationNameTextCompletion,
	deployment.Embedding:     semconv.GenAIOperationNameEmbeddings,
	deployment.Rerank:        semconv.GenAIOperationNameKey.String("rerank"),
	deployment.Score:         semconv.GenAIOperationNameKey.String("score"),
	deployment.Transcription: semconv.GenAIOperationNameKey.String("transcription"),
	deployment.Translation:   semconv.GenAIOperationNameKey.String("translation"),
	deployment.Tokenize:      semconv.GenAIOperationNameKey.String("tokenize"),
	deployment.Detokenize:    semconv.GenAIOperationNameKey.String("detokenize"),
	deployment.Responses:     semconv.GenAIOperationNameChat,
	deployment.Messages:      semconv.GenAIOperationNameChat,
}

// startSpan starts the call's server span, continuing the trace of the
// client's traceparent, when tracing is on.
func (p *Proxy) startSpan(r *http.Request, c *call) {
	if p.tracer == nil {
		return
	}
	ctx := p.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	_, c.span = p.tracer.Start(ctx, operations[c.ep].Value.AsString(),
		trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(c.start),
		trace.WithAttributes(operations[c.ep], attrCallID.String(c.id), semconv.HTTPRoute(c.route)))
}

// endSpan ends the call's span with what the call came to.
func (p *Proxy) endSpan(c *call) {
	s := c.span
	if s == nil {
		return
	}
	if c.group != "" { // a served group: span names stay few
		s.SetName(operations[c.ep].Value.AsString() + " " + c.group)
	}
	s.SetAttributes(
		// Cloned: the span outlives the request, whose model string is a
		// view of a buffer the next request reuses.
		semconv.GenAIRequestModel(strings.Clone(clip(c.req.model, maxLoggedModel))),
		attrModelGroup.String(c.group),
		attrStream.Bool(c.req.stream),
		attrAttempts.Int(c.attempts),
		attrFallbackDepth.Int(c.fallbacks),
		semconv.HTTPResponseStatusCode(c.status),
	)
	if c.d != nil {
		s.SetAttributes(attrDeploymentID.String(c.d.ID), semconv.GenAIResponseModel(c.d.UpstreamModel))
	}
	if u := c.usage; u.TotalTokens > 0 {
		s.SetAttributes(semconv.GenAIUsageInputTokens(int(u.PromptTokens)), semconv.GenAIUsageOutputTokens(int(u.CompletionTokens)))
	}
	if c.errMsg != "" {
		s.SetAttributes(semconv.ErrorTypeKey.String(c.class.String()))
		s.SetStatus(codes.Error, clip(c.errMsg, maxLoggedError))
	}
	s.End(trace.WithTimestamp(p.now()))
}

// startAttempt starts the client span of an attempt on d.
func (p *Proxy) startAttempt(r *http.Request, c *call, d *deployment.Deployment) {
	if c.span == nil {
		return
	}
	attrs := []attribute.KeyValue{
		operations[c.ep],
		semconv.GenAIRequestModel(d.UpstreamModel),
		attrDeploymentID.String(d.ID),
		attrModelGroup.String(d.Group),
		semconv.URLFull(deployment.PublicURL(d.URL(c.ep))), // no api_base credentials or query
	}
	if prov := d.Model.Params.Provider; prov != "" {
		attrs = append(attrs, semconv.GenAIProviderNameKey.String(prov))
	}
	if u, err := url.Parse(d.PublicAPIBase()); err == nil {
		attrs = append(attrs, semconv.ServerAddress(u.Hostname()))
		if port, err := strconv.Atoi(u.Port()); err == nil {
			attrs = append(attrs, semconv.ServerPort(port))
		}
	}
	_, c.attemptSpan = p.tracer.Start(trace.ContextWithSpan(r.Context(), c.span),
		operations[c.ep].Value.AsString()+" "+d.UpstreamModel,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// endAttempt ends the current attempt's span with its outcome.
func (p *Proxy) endAttempt(c *call, o router.Outcome, cooled bool) {
	s := c.attemptSpan
	if s == nil {
		return
	}
	c.attemptSpan = nil
	if o.Status != 0 {
		s.SetAttributes(semconv.HTTPResponseStatusCode(o.Status))
	}
	if o.Class == router.Success {
		if o.TotalTokens > 0 {
			s.SetAttributes(semconv.GenAIUsageInputTokens(int(o.PromptTokens)), semconv.GenAIUsageOutputTokens(int(o.CompletionTokens)))
		}
	} else {
		s.SetAttributes(semconv.ErrorTypeKey.String(o.Class.String()))
		s.SetStatus(codes.Error, o.Class.String())
	}
	if cooled {
		s.SetAttributes(attrCooledDown.Bool(true))
	}
	s.End()
}

// traceHeaders sets the trace context of an upstream request: the
// attempt's span with tracing on, else the client's own traceparent and
// tracestate. The client's baggage is passed on as it came either way:
// the gateway adds none.
func (p *Proxy) traceHeaders(r *http.Request, c *call, h http.Header) {
	if v := r.Header["Baggage"]; v != nil {
		h["Baggage"] = v
	}
	if c.attemptSpan != nil {
		ctx := trace.ContextWithSpan(r.Context(), c.attemptSpan)
		p.propagator.Inject(ctx, propagation.HeaderCarrier(h))
		return
	}
	if v := r.Header["Traceparent"]; v != nil {
		h["Traceparent"] = v
		if v := r.Header["Tracestate"]; v != nil {
			h["Tracestate"] = v
		}
	}
}

// record counts the call's tokens and cost toward its key's and team's
// spend and the daily usage: in memory, written in batches by the ledger.
// Calls refused before routing (no group) are not counted.
func (p *Proxy) record(c *call) {
	if p.usage == nil || c.group == "" {
		return
	}
	e := usage.Event{Key: c.key, Team: c.team, Model: c.group, Endpoint: c.route,
		PromptTokens: c.usage.PromptTokens, CompletionTokens: c.usage.CompletionTokens,
		Failed: c.status == 0 || c.status >= 400 || c.errStatus != 0}
	switch {
	case c.key != nil:
		e.Token = c.key.Token
	case p.adminToken != [32]byte{}:
		e.Token = p.adminToken
	default:
		return
	}
	if c.d != nil {
		e.UpstreamModel, e.Provider = c.d.UpstreamModel, c.d.Model.Params.Provider
		e.Cost = cost(c.d, e.PromptTokens, e.CompletionTokens)
	}
	p.usage.Record(e)
}

// cost prices tokens at the deployment's input_cost_per_token and
// output_cost_per_token (zero when not set).
func cost(d *deployment.Deployment, prompt, completion int64) float64 {
	return usage.Cost(d.Model.Params.InputCostPerToken, d.Model.Params.OutputCostPerToken, prompt, completion)
}
