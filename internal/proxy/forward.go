package proxy

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"

	"github.com/maasgate/maasgate/internal/anthropic"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/router"
	"github.com/maasgate/maasgate/internal/usage"
)

// statusClientClosed is logged when the client went away (nginx's 499).
const statusClientClosed = 499

// maxErrorBody bounds how much of an upstream error body is read.
const maxErrorBody = 1 << 20

// Header values set on every request or stream, shared as p.version is:
// header maps are only read, or given new slices, never written into.
var (
	jsonContentType = []string{"application/json"} // of upstream requests
	noCache         = []string{"no-cache"}         // Cache-Control of streams
	noBuffering     = []string{"no"}               // X-Accel-Buffering of streams
)

// The causes an attempt's context is cancelled with: the deployment's own
// limits, which charge it with a timeout, and the call's deadline, which
// does not (router.Deadline).
var (
	errStreamTimeout = fmt.Errorf("stream_timeout: %w", router.ErrTimeout)
	errOwnTimeout    = fmt.Errorf("timeout: %w", router.ErrTimeout)
	errDeadline      = fmt.Errorf("call deadline: %w", router.ErrDeadline)
	// errShuttingDown ends the streams still open when a shutdown's grace
	// period is over.
	errShuttingDown = errors.New("the gateway is shutting down")
)

// result is the outcome of one attempt. committed means the response has
// started reaching the client (or the client is gone), so it can be neither
// retried nor replaced by an error response.
type result struct {
	committed bool
	err       *openai.Error
	outcome   router.Outcome
	own       bool // err is the gateway's own (no deployment to try), not a deployment's
	// logged, when set, is err's message as the log shows it: with the
	// addresses and causes that hidden upstream details keep from clients.
	logged string
}

// attempt holds what one try needs to know about its timeouts.
type attempt struct {
	d      *deployment.Deployment
	call   *call
	ctx    context.Context
	cancel context.CancelCauseFunc
	sent   time.Time
	// limit is the deployment's own timeout (its timeout, else the
	// router's); budget the time the attempt got, which is less when the
	// call's deadline comes first.
	limit, budget time.Duration
	shortened     bool // budget is under half to all of limit: the router's deadline came first
	streamTimeout time.Duration
	midResponse   bool // the failure came after the response had started
	native        bool // a Messages request sent as it came, to a server that speaks Messages
	// firstChunk, for a stream with a stream_timeout, cancels the attempt
	// unless the first chunk wins the race for chunkState (0 waiting, 1
	// the chunk came, 2 the timeout came), so a chunk that arrives as the
	// timer fires is never cut off after it was relayed.
	firstChunk *time.Timer
	chunkState atomic.Int32
}

// gotFirst records that the response's first chunk (or a response that is
// not a stream) arrived, and reports whether it did so before the
// stream_timeout.
func (a *attempt) gotFirst() bool {
	if a.firstChunk == nil {
		return true
	}
	if !a.chunkState.CompareAndSwap(0, 1) {
		return false
	}
	a.firstChunk.Stop()
	return true
}

// ownLimitSlack is how much short of its own timeout an attempt may be
// given and still be blamed for running out of it: the first attempt of a
// call bounded by the router's timeout starts a few microseconds into it.
func ownLimitSlack(limit time.Duration) time.Duration { return min(limit/20, 100*time.Millisecond) }

// try sends the request to d and relays the response. Non-streaming
// responses up to maxBufferedResponse are read whole before anything is
// written, so a failure while reading is still an uncommitted error that
// can be retried; larger ones (relayLarge) and streams are committed once
// they start.
//
// The attempt runs until the deployment's own timeout or the call's
// deadline, whichever comes first. Running out of its own timeout (or
// stream_timeout), or of at least half of it where the router's deadline
// came first, charges the deployment with a timeout; the request's own
// deadline, or the little that earlier attempts left of the router's,
// cancels the attempt as router.Deadline, which never cools a deployment
// down.
func (p *Proxy) try(w http.ResponseWriter, r *http.Request, c *call, d *deployment.Deployment) result {
	routerTimeout, routerStreamTimeout := c.plan.Timeouts()
	a := attempt{d: d, call: c, limit: d.Timeout, streamTimeout: d.StreamTimeout}
	if a.limit == 0 {
		a.limit = routerTimeout
	}
	if a.streamTimeout == 0 {
		a.streamTimeout = routerStreamTimeout
	}
	left := c.deadline.Sub(p.now())
	cause := errDeadline
	a.budget = max(left, time.Millisecond)
	switch {
	case a.limit > 0 && left >= a.limit-ownLimitSlack(a.limit):
		a.budget, cause = min(a.limit, a.budget), errOwnTimeout // its own limit binds
	case a.limit > 0 && !c.fromRequest && left >= a.limit/2:
		// The router's deadline binds, but the deployment had at least
		// half its own time: a deployment that hangs on a retry is
		// still charged. Only the request's own deadline, or the sliver
		// that earlier attempts left, is not its failure.
		cause, a.shortened = errOwnTimeout, true
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	ctx, cancelT := context.WithTimeoutCause(ctx, a.budget, cause)
	defer cancelT()
	a.ctx, a.cancel = ctx, cancel

	// The body reads from the client's body in place; the transport may
	// still read it after RoundTrip returns (net/http's contract), so the
	// request counts it open until the transport closes it.
	model := d.ModelJSON()
	wildcard := c.plan.Target().Wildcard
	if wildcard != "" {
		model = d.ModelJSONFor(wildcard)
	}
	contentType := jsonContentType
	if c.req.contentType != nil { // a form: the model is the field's text
		model, contentType = d.ModelFor(wildcard), c.req.contentType
	}
	body, url := &c.body, d.URL(c.ep)
	if c.messages && d.NativeMessages { // the server speaks Messages: as the client sent it
		body, url, a.native = &c.req.native, d.URL(deployment.Messages), true
	}
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body.reader(model, &c.req.open))
	if err != nil {
		return result{err: openai.NewError(http.StatusInternalServerError, openai.TypeServerError,
			fmt.Sprintf("deployment %s: build request: %v", d.ID, err)), outcome: router.Outcome{Class: router.ClientError}}
	}
	out.ContentLength = body.len(len(model))
	out.GetBody = func() (io.ReadCloser, error) { return body.reader(model, &c.req.open), nil }
	out.Header = http.Header{
		"Content-Type": contentType,
		"Accept":       r.Header["Accept"],
		"User-Agent":   p.userAgent,
	}
	if a.native {
		out.Header["Anthropic-Version"] = r.Header["Anthropic-Version"]
		out.Header["Anthropic-Beta"] = r.Header["Anthropic-Beta"]
	}
	if h := d.AuthHeader(); h != "" {
		out.Header["Authorization"] = []string{h}
	}
	p.traceHeaders(r, c, out.Header)

	if c.req.stream && a.streamTimeout > 0 {
		a.firstChunk = time.AfterFunc(a.streamTimeout, func() {
			if a.chunkState.CompareAndSwap(0, 2) {
				cancel(errStreamTimeout)
			}
		})
		defer a.firstChunk.Stop()
	}

	a.sent = p.now()
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		c.upstream += p.now().Sub(a.sent)
		return p.transportError(r, &a, err)
	}
	defer resp.Body.Close()
	stream := resp.StatusCode >= 200 && resp.StatusCode <= 299 && isEventStream(resp.Header.Get("Content-Type"))
	if !stream {
		// Its headers are the answer (a stream's come before its engine
		// has produced anything: its first chunk is, in relayStream).
		c.pick.FirstToken(p.now().Sub(a.sent))
		a.gotFirst() // not a stream: read it whole
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		c.upstream += p.now().Sub(a.sent)
		e := p.upstreamError(p.hides(c.key), d, resp, b)
		return result{err: e, outcome: router.Outcome{
			Class:      router.Classify(resp.StatusCode, nil, e.Message),
			Status:     resp.StatusCode,
			RetryAfter: router.ParseRetryAfter(resp.Header, p.now()),
		}}
	}
	if stream {
		return p.relayStream(w, r, c, &a, resp)
	}

	translate := c.messages && !a.native
	limit := maxBufferedResponse
	if translate {
		limit = maxTranslatedResponse // translated whole, never relayed in pieces
	}
	buf := getBuffer()
	defer putBuffer(buf)
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, int64(limit)+1))
	if err == nil && buf.Len() > limit {
		if translate {
			c.upstream += p.now().Sub(a.sent)
			return result{err: openai.NewError(http.StatusBadGateway, openai.TypeAPIError, fmt.Sprintf(
				"Deployment %s answered with more than %d MiB, too much to translate to a Messages response.", d.ID, limit>>20)),
				outcome: router.Outcome{Class: router.ServerError, Status: http.StatusBadGateway}}
		}
		return p.relayLarge(w, r, c, &a, resp, buf.Bytes())
	}
	latency := p.now().Sub(a.sent)
	c.upstream += latency
	c.apiLatency = latency
	if err != nil {
		a.midResponse = true
		return p.transportError(r, &a, err)
	}
	o := router.Outcome{Class: router.Success, Status: resp.StatusCode, Latency: latency}
	u := gjson.GetBytes(buf.Bytes(), "usage")
	o.PromptTokens, o.CompletionTokens, o.TotalTokens = usageOf(u)
	c.noteCached(cachedTokens(u))
	c.keepReply(buf.Bytes())
	answer := buf.Bytes()
	switch {
	case c.req.ep == deployment.Responses:
		answer = c.responseIDs(d).body(answer)
	case translate:
		var aerr *anthropic.Error
		if answer, _, aerr = anthropic.FromChat(nil, answer, c.req.model); aerr != nil {
			// aerr may quote the server (an error object in a 200): kept
			// from clients upstream details are hidden from, as a 5xx's is.
			msg := fmt.Sprintf("Deployment %s answered with a chat completion that could not be translated", d.ID)
			if p.hides(c.key) {
				msg += "."
			} else {
				msg += ": " + d.Scrub(aerr.Message)
			}
			return result{err: openai.NewError(http.StatusBadGateway, openai.TypeAPIError, msg),
				outcome: router.Outcome{Class: router.ServerError, Status: http.StatusBadGateway}}
		}
	}

	h := w.Header()
	p.copyUpstreamHeaders(h, resp.Header, p.hides(c.key))
	h["Content-Length"] = []string{strconv.Itoa(len(answer))}
	p.setResultHeaders(h, c, d)
	if p.usage != nil && resp.StatusCode < 300 {
		if v, ok := usage.ResponseCostHeader(cost(d, o.PromptTokens, o.CompletionTokens)); ok {
			h[hdrResponseCost] = []string{v}
		}
	}
	c.status, c.answered = resp.StatusCode, true
	w.WriteHeader(resp.StatusCode)
	if _, err := w.Write(answer); err != nil {
		c.status = statusClientClosed
	}
	return result{committed: true, outcome: o}
}

// usageOf reads the token counts of a usage object.
func usageOf(usage gjson.Result) (prompt, completion, total int64) {
	prompt, completion, total = usage.Get("prompt_tokens").Int(), usage.Get("completion_tokens").Int(), usage.Get("total_tokens").Int()
	if prompt == 0 && completion == 0 { // the Responses and Messages APIs' names
		prompt, completion = usage.Get("input_tokens").Int(), usage.Get("output_tokens").Int()
		if total == 0 {
			total = prompt + completion
		}
	}
	return prompt, completion, total
}

// relayLarge relays a non-streaming response too large to hold (more than
// maxBufferedResponse; head is its start, already read) as it arrives, so
// a 200 MB batch of embeddings costs the gateway a few buffers, not 200 MB.
// It commits before the whole response is in: a failure after this point
// cannot be retried, and the client's response is cut off (the connection
// is aborted), never ended as if complete. The usage is read from the last
// bytes, where OpenAI-compatible servers put it.
func (p *Proxy) relayLarge(w http.ResponseWriter, r *http.Request, c *call, a *attempt, resp *http.Response, head []byte) result {
	started := p.now()
	c.upstream += started.Sub(a.sent)
	h := w.Header()
	p.copyUpstreamHeaders(h, resp.Header, p.hides(c.key))
	delete(h, "Content-Length")
	if resp.ContentLength >= 0 {
		h["Content-Length"] = []string{strconv.FormatInt(resp.ContentLength, 10)}
	}
	p.setResultHeaders(h, c, a.d)
	c.status, c.answered = resp.StatusCode, true
	w.WriteHeader(resp.StatusCode)
	var tail usageTail
	tail.add(head)
	_, werr := w.Write(head)
	chunkp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(chunkp)
	var err error
	for werr == nil && err == nil {
		var n int
		n, err = resp.Body.Read(*chunkp)
		if n > 0 {
			a.d.Progress()
			tail.add((*chunkp)[:n])
			_, werr = w.Write((*chunkp)[:n])
		}
	}
	end := p.now()
	c.upstream += end.Sub(started)
	latency := end.Sub(a.sent)
	c.apiLatency = latency
	switch {
	case werr != nil:
		c.status = statusClientClosed
		return result{committed: true, outcome: router.Outcome{Class: router.Cancelled}}
	case err != io.EOF:
		a.midResponse = true
		res := p.transportError(r, a, err)
		res.committed = true
		if res.err != nil {
			c.errMsg, c.class, c.errStatus = cmp.Or(res.logged, res.err.Message), res.outcome.Class, res.err.Status
			c.abort = true // the client must see a broken response, not a short one
		}
		return res
	}
	o := router.Outcome{Class: router.Success, Status: resp.StatusCode, Latency: latency}
	o.PromptTokens, o.CompletionTokens, o.TotalTokens = tail.usage()
	c.noteCached(tail.cached)
	return result{committed: true, outcome: o}
}

// maxBufferedResponse is the largest non-streaming response held whole
// before it is relayed, so a failure while reading it can still be
// retried. Chat completions are far smaller; large batches of embeddings
// are relayed as they arrive.
const maxBufferedResponse = 4 << 20

// usageTail keeps the last bytes of a relayed response, where its usage
// object is.
type usageTail struct {
	b      []byte
	cached int64 // cachedTokens of the usage, once read
}

// maxUsageTail bounds the bytes kept: a usage object with its details is a
// few hundred bytes.
const maxUsageTail = 8 << 10

func (t *usageTail) add(p []byte) {
	if len(p) >= maxUsageTail {
		t.b = append(t.b[:0], p[len(p)-maxUsageTail:]...)
		return
	}
	if drop := len(t.b) + len(p) - maxUsageTail; drop > 0 {
		t.b = append(t.b[:0], t.b[drop:]...)
	}
	t.b = append(t.b, p...)
}

// usage reads the token counts of the last "usage" object in the tail.
func (t *usageTail) usage() (prompt, completion, total int64) {
	i := bytes.LastIndex(t.b, []byte(`"usage"`))
	if i < 0 {
		return 0, 0, 0
	}
	j := bytes.IndexByte(t.b[i:], '{')
	if j < 0 {
		return 0, 0, 0
	}
	u := gjson.ParseBytes(t.b[i+j:])
	t.cached = cachedTokens(u)
	return usageOf(u)
}

// relayStream forwards a server-sent-event stream. It waits for the first
// chunk (bounded by stream_timeout) before committing, so a deployment that
// fails before then can still be retried; then it writes and flushes every
// chunk as it arrives. An error after the first chunk is sent in-band as an
// error event, the stream ends, and the failure is reported to the router.
func (p *Proxy) relayStream(w http.ResponseWriter, r *http.Request, c *call, a *attempt, resp *http.Response) result {
	chunkp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(chunkp)
	chunk := *chunkp
	n, err := readSome(resp.Body, chunk)
	ttft := p.now().Sub(a.sent)
	c.upstream += ttft
	if n == 0 {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		a.midResponse = true
		return p.transportError(r, a, err)
	}
	if !a.gotFirst() { // the stream_timeout fired as the chunk came
		return p.transportError(r, a, errStreamTimeout)
	}
	c.pick.FirstToken(ttft)
	c.ttft = ttft

	h := w.Header()
	p.copyUpstreamHeaders(h, resp.Header, p.hides(c.key))
	delete(h, "Content-Length")
	h["Cache-Control"] = noCache
	h["X-Accel-Buffering"] = noBuffering
	p.setResultHeaders(h, c, a.d)
	c.status, c.answered = resp.StatusCode, true
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	stop := context.AfterFunc(p.ending, func() { a.cancel(errShuttingDown) })
	defer stop()
	o := router.Outcome{Class: router.Success, Status: resp.StatusCode, Stream: true, Latency: ttft}
	var usage streamUsage
	if c.hint != nil {
		usage.keep = c
	}
	var strip streamFilter
	var messages *messagesStream
	switch {
	case c.messages && !a.native:
		messages = &messagesStream{s: anthropic.NewStream(c.req.model)}
		strip = messages
	case c.req.askUsage:
		strip = newUsageStrip()
	case c.req.ep == deployment.Responses:
		strip = &lineFilter{ed: c.responseIDs(a.d)}
	}
	var tail [2]byte // the last bytes written, to end a partial event before an error
	for {
		if n > 0 || strip != nil && err != nil {
			usage.scan(chunk[:n])
			out := chunk[:n]
			if strip != nil {
				out = strip.filter(out)
				if err != nil { // the last bytes: nothing more will end a line
					out = append(out, strip.take(err == io.EOF)...)
				}
			}
			if len(out) > 0 {
				if _, werr := w.Write(out); werr != nil {
					c.status = statusClientClosed
					return result{committed: true, outcome: c.cutShort(&usage, router.Cancelled)}
				}
				if ferr := rc.Flush(); ferr != nil {
					c.status = statusClientClosed
					return result{committed: true, outcome: c.cutShort(&usage, router.Cancelled)}
				}
				if k := len(out); k >= 2 {
					tail = [2]byte{out[k-2], out[k-1]}
				} else {
					tail = [2]byte{tail[1], out[0]}
				}
			}
		}
		if err != nil {
			break
		}
		n, err = resp.Body.Read(chunk)
		if n > 0 {
			a.d.Progress()
		}
	}
	o.PromptTokens, o.CompletionTokens, o.TotalTokens = usage.tokens()
	c.noteCached(usage.cached)
	c.apiLatency = p.now().Sub(a.sent)
	c.upstream += c.apiLatency - ttft
	if err == io.EOF {
		return result{committed: true, outcome: o}
	}
	a.midResponse = true
	res := p.transportError(r, a, err)
	// What was relayed was used: its tokens count (spend, tpm), whoever
	// cut the stream.
	cut := c.cutShort(&usage, res.outcome.Class)
	res.outcome.PromptTokens, res.outcome.CompletionTokens, res.outcome.TotalTokens = cut.PromptTokens, cut.CompletionTokens, cut.TotalTokens
	if res.err == nil { // the client went away
		return res
	}
	c.errMsg, c.class, c.errStatus = cmp.Or(res.logged, res.err.Message), res.outcome.Class, res.err.Status
	if messages != nil {
		_, _ = w.Write(messages.s.Fail(nil, anthropic.FromOpenAI(res.err)))
	} else {
		_ = openai.WriteErrorEvent(w, tail[:], res.err)
	}
	_ = rc.Flush()
	res.committed = true
	return res
}

// chunkPool holds the buffers streams are relayed through, one per stream
// for its whole life; every write copies out of it. Events are a few
// hundred bytes; a read that ends inside one is carried over (streamUsage).
var chunkPool = sync.Pool{New: func() any {
	b := make([]byte, 8<<10)
	return &b
}}

// readSome reads until it has at least one byte or an error.
func readSome(r io.Reader, buf []byte) (int, error) {
	for {
		n, err := r.Read(buf)
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// streamUsage takes the token counts from a stream's usage chunk, and counts
// content events as a fallback estimate (vLLM sends about one token per
// event) when the stream has none.
type streamUsage struct {
	events                    int64
	prompt, completion, total int64
	cached                    int64 // cachedTokens of the usage

	// partial is the start of a line that a read ended in the middle of,
	// kept (up to maxPartialLine bytes; truncated says if more came) until
	// the next read completes it.
	partial   []byte
	truncated bool
	// keep, when set, takes each whole event's text (the cache-aware
	// strategy's reply).
	keep *call
}

// maxPartialLine bounds the part of a line carried from one read to the
// next. A usage event is a few hundred bytes; a longer line is still
// counted as an event, but not read for usage.
const maxPartialLine = 16 << 10

var (
	newline    = []byte("\n")
	dataPrefix = []byte("data: ")
	// usageKey is the end of a "usage" key: its opening quote is left out
	// (bytes.Index looks for the first byte first, and a quote would stop
	// it at every key and string), and so is what follows the closing one,
	// since servers that pretty-print JSON write `"usage": {`. Inside a JSON
	// string a quote is escaped, so text that mentions usage does not
	// match.
	usageKey = []byte(`usage"`)
)

// scan counts the events in b that carry a JSON object and takes the token
// counts from one that has a usage object. It goes line by line: JSON
// escapes newlines in strings, so each newline ends a line of the stream
// and one fast byte search finds it. A line cut by the end of a read is
// carried over and read once the next read completes it.
func (u *streamUsage) scan(b []byte) {
	if len(u.partial) > 0 || u.truncated {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			u.carry(b)
			return
		}
		u.carry(b[:i])
		u.line(u.partial, !u.truncated)
		u.partial, u.truncated = u.partial[:0], false
		b = b[i+1:]
	}
	for len(b) > 0 {
		line, rest, complete := bytes.Cut(b, newline)
		if !complete {
			u.carry(line)
			return
		}
		u.line(line, true)
		b = rest
	}
}

// carry keeps b as part of an unfinished line, up to maxPartialLine bytes.
func (u *streamUsage) carry(b []byte) {
	n := min(len(b), maxPartialLine-len(u.partial))
	u.partial = append(u.partial, b[:n]...)
	if n < len(b) {
		u.truncated = true
	}
}

// line counts one line of the stream, and reads a usage in it if whole.
func (u *streamUsage) line(line []byte, whole bool) {
	data, ok := bytes.CutPrefix(line, dataPrefix)
	if !ok || len(data) == 0 || data[0] != '{' {
		return
	}
	u.events++
	if whole && u.keep != nil {
		u.keep.keepDelta(data)
	}
	if !whole || !bytes.Contains(data, usageKey) {
		return
	}
	// Chat and completions: "usage" with total_tokens. Anthropic's
	// Messages: message_start's message.usage, message_delta's usage, in
	// input_tokens and output_tokens. Responses: response.completed's
	// response.usage. An event has one of them: one that has the path but
	// no object there ("usage":null on every chunk of some servers' chat
	// streams) is not scanned again for the others.
	for _, path := range [...]string{"usage", "message.usage", "response.usage"} {
		usage := gjson.GetBytes(data, path)
		if !usage.IsObject() {
			if usage.Exists() {
				return
			}
			continue
		}
		u.cached = max(u.cached, cachedTokens(usage))
		if t := usage.Get("total_tokens").Int(); t > 0 {
			if p := usage.Get("prompt_tokens"); p.Exists() {
				u.prompt, u.completion, u.total = p.Int(), usage.Get("completion_tokens").Int(), t
			} else {
				u.prompt, u.completion, u.total = usage.Get("input_tokens").Int(), usage.Get("output_tokens").Int(), t
			}
			return
		}
		in, out := usage.Get("input_tokens").Int(), usage.Get("output_tokens").Int()
		if in > 0 || out > 0 {
			u.prompt, u.completion = max(u.prompt, in), max(u.completion, out)
			u.total = u.prompt + u.completion
		}
		return
	}
}

// tokens returns the stream's usage, or with none, its event count as the
// completion (and total) estimate.
func (u *streamUsage) tokens() (prompt, completion, total int64) {
	if u.total > 0 {
		return u.prompt, u.completion, u.total
	}
	return 0, u.events, u.events
}

// transportError maps a failure to reach or read from a deployment to the
// error the client sees and the outcome the router records. Messages name
// the deployment id, never its api_key. When the client has gone away the
// result is committed with no error: there is no one to answer.
func (p *Proxy) transportError(r *http.Request, a *attempt, err error) result {
	if r.Context().Err() != nil {
		return result{committed: true, outcome: router.Outcome{Class: router.Cancelled}}
	}
	d := a.d
	cause := context.Cause(a.ctx)
	for _, known := range []error{errStreamTimeout, errOwnTimeout, errDeadline, errShuttingDown} {
		if errors.Is(cause, known) {
			err = known
		}
	}
	o := router.Outcome{Class: router.Classify(0, err, "")}
	switch err {
	case errShuttingDown:
		// Not the deployment's doing: recorded like a client gone.
		return result{outcome: router.Outcome{Class: router.Cancelled}, err: openai.NewError(http.StatusServiceUnavailable, openai.TypeServerError,
			"The gateway is shutting down and its grace period is over: the stream was cut short. Send the request again.")}
	case errStreamTimeout:
		return result{outcome: o, err: openai.NewError(http.StatusRequestTimeout, openai.TypeTimeout,
			fmt.Sprintf("Deployment %s sent no stream chunk within stream_timeout=%gs.", d.ID, a.streamTimeout.Seconds()))}
	case errOwnTimeout:
		msg := fmt.Sprintf("Request timed out: deployment %s did not answer within timeout=%gs.", d.ID, a.limit.Seconds())
		if a.shortened {
			msg = fmt.Sprintf("Request timed out: deployment %s did not answer within %gs, the rest of the router's timeout=%gs.",
				d.ID, a.budget.Round(time.Millisecond).Seconds(), a.call.timeout.Seconds())
		}
		return result{outcome: o, err: openai.NewError(http.StatusRequestTimeout, openai.TypeTimeout, msg)}
	case errDeadline:
		c := a.call
		msg := fmt.Sprintf("Request timed out: the request's timeout=%gs ran out while waiting for deployment %s.", c.timeout.Seconds(), d.ID)
		if !c.fromRequest {
			msg = fmt.Sprintf("Request timed out: the router's timeout=%gs for the whole call ran out while waiting for deployment %s (attempt %d; earlier attempts used most of it).",
				c.timeout.Seconds(), d.ID, c.attempts)
		}
		return result{outcome: o, err: openai.NewError(http.StatusRequestTimeout, openai.TypeTimeout, msg)}
	}
	// The cause without the request URL, whose query may hold a key.
	detail := fmt.Sprintf(" (%s): %s", d.PublicAPIBase(), d.Scrub(deployment.DescribeTransportError(a.ctx, err, a.budget)))
	what := "is unreachable"
	if a.midResponse {
		what = "broke off its response"
	}
	res := result{outcome: o, err: openai.NewError(http.StatusBadGateway, openai.TypeAPIError,
		fmt.Sprintf("Deployment %s %s%s", d.ID, what, detail))}
	if p.hides(a.call.key) {
		res.logged = res.err.Message
		res.err.Message = fmt.Sprintf("Deployment %s %s.", d.ID, what)
	}
	return res
}

// upstreamError keeps the upstream's status and message, with the
// deployment's credentials scrubbed from the message (a server may quote
// the Authorization header it got). With upstream details hidden (hide), a
// 5xx's text (stack traces, paths, addresses) is replaced by the status; a 4xx's
// is kept, since it is about the client's request.
func (p *Proxy) upstreamError(hide bool, d *deployment.Deployment, resp *http.Response, body []byte) *openai.Error {
	msg, typ := openai.ParseUpstreamError(body)
	if msg == "" || hide && resp.StatusCode >= 500 {
		msg = fmt.Sprintf("deployment %s returned %s with no message", d.ID, resp.Status)
		if hide {
			msg = fmt.Sprintf("Deployment %s returned %s.", d.ID, resp.Status)
		}
	}
	msg = d.Scrub(msg)
	if typ == "" {
		typ = openai.TypeForStatus(resp.StatusCode)
	}
	e := openai.NewError(resp.StatusCode, typ, msg)
	for _, k := range []string{"Retry-After", "Retry-After-Ms"} {
		if v := resp.Header[k]; len(v) > 0 {
			if e.Header == nil {
				e.Header = http.Header{}
			}
			e.Header[k] = v
		}
	}
	return e
}

// isEventStream reports whether a Content-Type is text/event-stream, with
// or without parameters.
func isEventStream(contentType string) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mediaType), "text/event-stream")
}

// cutShort is the outcome of a stream that ended before its end, with
// the tokens it relayed: the events counted as completion tokens (vLLM
// sends about one token per event), and without a usage chunk (it comes
// last) the prompt estimated from the request's size, about four bytes a
// token.
func (c *call) cutShort(u *streamUsage, class router.Class) router.Outcome {
	o := router.Outcome{Class: class, Stream: true}
	o.PromptTokens, o.CompletionTokens, o.TotalTokens = u.tokens()
	if o.PromptTokens == 0 {
		o.PromptTokens = c.body.len(0) / 4
		o.TotalTokens += o.PromptTokens
	}
	return o
}

// maxTranslatedResponse bounds a chat completion translated to a Messages
// response, which is read whole.
const maxTranslatedResponse = 16 << 20

// streamFilter edits a relayed stream: filter returns what the client
// gets of b now, take what it gets at the end (eof: the upstream ended it
// normally).
type streamFilter interface {
	filter(b []byte) []byte
	take(eof bool) []byte
}

// messagesStream translates a chat completion stream to Anthropic's
// Messages events.
type messagesStream struct {
	s   *anthropic.Stream
	out []byte
}

func (m *messagesStream) filter(b []byte) []byte {
	m.out = m.s.Write(m.out[:0], b)
	return m.out
}

func (m *messagesStream) take(eof bool) []byte {
	if !eof {
		return nil // the error event follows
	}
	return m.s.End(nil)
}
