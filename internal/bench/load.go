package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/maasgate/maasgate/internal/openai"
)

// scenario is one kind of request the load is made of.
type scenario struct {
	Name      string
	Path      string // /v1/chat/completions or /v1/embeddings
	Stream    bool
	PromptLen int  // bytes of prompt text
	Embedding bool // the embedding model serves it
}

// body is the request body of s for a model.
func (s scenario) body(model string, maxTokens int) []byte {
	var v any
	prompt := promptText(s.PromptLen)
	switch {
	case s.Embedding:
		v = map[string]any{"model": model, "input": prompt}
	default:
		req := map[string]any{
			"model":      model,
			"messages":   []map[string]string{{"role": "user", "content": prompt}},
			"max_tokens": maxTokens,
		}
		if s.Stream {
			req["stream"] = true
			req["stream_options"] = map[string]bool{"include_usage": true}
		}
		v = req
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings and numbers always marshal
	}
	return b
}

// promptText is n bytes of English-looking text.
func promptText(n int) string {
	const words = "Summarise the following notes about the GPU cluster in two sentences. "
	return strings.Repeat(words, n/len(words)+1)[:n]
}

// endpoint is one side of the comparison: the backend reached directly, or
// the gateway in front of it.
type endpoint struct {
	Name       string // "direct" or "gateway"
	URL        string // base URL without /v1
	Key        string // bearer token, or ""
	ChatModel  string
	EmbedModel string

	client *http.Client
	ttfb   *firstBytes
}

func newEndpoint(name, url, key, chatModel, embedModel string) *endpoint {
	fb := &firstBytes{seen: map[uint64]time.Duration{}}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	fb.next = &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: 20000,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &endpoint{
		Name: name, URL: strings.TrimSuffix(url, "/"), Key: key,
		ChatModel: chatModel, EmbedModel: embedModel,
		client: &http.Client{Transport: fb, Timeout: time.Minute},
		ttfb:   fb,
	}
}

func (e *endpoint) model(s scenario) string {
	if s.Embedding {
		return e.EmbedModel
	}
	return e.ChatModel
}

func (e *endpoint) header() http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	if e.Key != "" {
		h.Set("Authorization", "Bearer "+e.Key)
	}
	return h
}

// firstBytes is a RoundTripper that notes, per vegeta sequence number, when
// the first byte of each response body arrived: the time to first token of a
// stream, which vegeta itself does not report.
type firstBytes struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen map[uint64]time.Duration
}

func (f *firstBytes) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := f.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	seq, err := strconv.ParseUint(r.Header.Get("X-Vegeta-Seq"), 10, 64)
	if err == nil {
		resp.Body = &firstByteBody{ReadCloser: resp.Body, start: start, seq: seq, f: f}
	}
	return resp, nil
}

// take returns and forgets the time to first byte of request seq.
func (f *firstBytes) take(seq uint64) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.seen[seq]
	delete(f.seen, seq)
	return d, ok
}

// reset forgets everything, between attacks (whose sequences restart at 0).
func (f *firstBytes) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.seen)
}

type firstByteBody struct {
	io.ReadCloser
	start time.Time
	seq   uint64
	f     *firstBytes
	done  bool
}

func (b *firstByteBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && !b.done {
		b.done = true
		d := time.Since(b.start)
		b.f.mu.Lock()
		b.f.seen[b.seq] = d
		b.f.mu.Unlock()
	}
	return n, err
}

// sample is what one slice of load against one endpoint gave.
type sample struct {
	Requests int
	Errors   int
	Latency  []time.Duration // successful requests: time to last byte
	TTFB     []time.Duration // successful requests: time to first body byte
	Elapsed  time.Duration   // from the first request sent to the last sent
	Span     time.Duration   // from the first request sent to the last answer's end
	CPU      time.Duration   // CPU time the measured process used meanwhile
	errs     map[string]int
}

func (s *sample) merge(o sample) {
	s.Requests += o.Requests
	s.Errors += o.Errors
	s.Latency = append(s.Latency, o.Latency...)
	s.TTFB = append(s.TTFB, o.TTFB...)
	s.Elapsed += o.Elapsed
	s.Span += o.Span
	s.CPU += o.CPU
	if s.errs == nil {
		s.errs = map[string]int{}
	}
	for k, v := range o.errs {
		s.errs[k] += v
	}
}

// attack sends s to e at rate requests per second for d (or until ctx
// ends) and waits for every answer. A request counts as an error unless it gets a 2xx with a complete
// body: for a stream, one that ends with "data: [DONE]" and carries no error
// event.
func (e *endpoint) attack(ctx context.Context, s scenario, body []byte, rate int, d time.Duration, latencyGuess time.Duration) sample {
	e.ttfb.reset()
	workers := uint64(float64(rate)*latencyGuess.Seconds()*1.5) + 10
	atk := vegeta.NewAttacker(vegeta.Client(e.client), vegeta.Workers(workers))
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodPost, URL: e.URL + s.Path, Body: body, Header: e.header()})
	out := sample{errs: map[string]int{}}
	var first, last, end time.Time
	for res := range atk.Attack(tr, vegeta.Rate{Freq: rate, Per: time.Second}, d, e.Name) {
		out.Requests++
		if first.IsZero() || res.Timestamp.Before(first) {
			first = res.Timestamp
		}
		if res.Timestamp.After(last) {
			last = res.Timestamp
		}
		if res.End().After(end) {
			end = res.End()
		}
		ttfb, _ := e.ttfb.take(res.Seq)
		if msg := failure(res, s.Stream); msg != "" {
			out.Errors++
			out.errs[msg]++
			continue
		}
		out.Latency = append(out.Latency, res.Latency)
		out.TTFB = append(out.TTFB, ttfb)
	}
	out.Elapsed, out.Span = last.Sub(first), end.Sub(first)
	return out
}

// failure says why res is not a complete, successful answer, or "".
func failure(res *vegeta.Result, stream bool) string {
	switch {
	case res.Error != "" && res.Code == 0:
		return res.Error
	case res.Code < 200 || res.Code > 299:
		msg := fmt.Sprintf("HTTP %d", res.Code)
		if m, _ := openai.ParseUpstreamError(res.Body); m != "" {
			msg += ": " + firstLine(m)
		}
		return msg
	case stream && bytes.Contains(res.Body, []byte(`data: {"error"`)):
		return "error event in stream"
	case stream && !bytes.HasSuffix(bytes.TrimSpace(res.Body), []byte("data: [DONE]")):
		return "stream ended without data: [DONE]"
	}
	return ""
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// percentiles of a set of durations, in microseconds.
type percentiles struct {
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p99_9_us"`
}

// percentilesOf sorts ds and returns its nearest-rank percentiles.
func percentilesOf(ds []time.Duration) percentiles {
	if len(ds) == 0 {
		return percentiles{}
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		i := int(q*float64(len(ds))+0.999999) - 1
		i = max(0, min(i, len(ds)-1))
		return float64(ds[i]) / float64(time.Microsecond)
	}
	return percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99), P999: at(0.999)}
}

func (p percentiles) minus(o percentiles) percentiles {
	return percentiles{P50: p.P50 - o.P50, P90: p.P90 - o.P90, P99: p.P99 - o.P99, P999: p.P999 - o.P999}
}

// topErrors lists the most frequent error messages, most frequent first.
func topErrors(errs map[string]int, n int) []string {
	type kv struct {
		msg   string
		count int
	}
	var all []kv
	for m, c := range errs {
		all = append(all, kv{m, c})
	}
	slices.SortFunc(all, func(a, b kv) int { return b.count - a.count })
	var out []string
	for i, e := range all {
		if i == n {
			break
		}
		out = append(out, fmt.Sprintf("%d× %s", e.count, e.msg))
	}
	return out
}
