package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
	"golang.org/x/sync/semaphore"

	"github.com/maasgate/maasgate/internal/anthropic"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/openai"
)

// gatewayFields are request fields the gateway consumes and never forwards.
var gatewayFields = map[string]bool{
	"fallbacks":         true,
	"num_retries":       true,
	"timeout":           true,
	"disable_fallbacks": true,
	"metadata":          true,
	"tags":              true, // LiteLLM's place for them besides metadata.tags
}

// request is a client request read once and prepared for forwarding: the
// body parsed in place, and the upstream body described as the parts of it
// to send, gateway-only fields left out, with the place where each attempt
// splices in its deployment's upstream model name.
type request struct {
	raw  *bytes.Buffer // the body as received
	json string        // raw as a string, without a copy: see parse
	root gjson.Result  // json parsed
	body upstreamBody

	// open counts the upstream bodies (readers over raw) the transport
	// has not closed yet; raw goes back to the pool only when none is.
	open atomic.Int32
	// held is how many bytes of the in-flight request body budget this
	// request holds; release gives them back.
	held    int64
	holding *semaphore.Weighted

	// ep is the API called; a form endpoint's body is multipart, and its
	// upstream body is sent with contentType.
	ep          deployment.Endpoint
	contentType []string
	// For an Anthropic Messages request, translated to chat completions
	// (raw, body and the rest): the request as the client sent it, in
	// nativeRaw, and as sent to a server that speaks Messages itself.
	nativeRaw *bytes.Buffer
	native    upstreamBody

	model  string
	stream bool
	// askUsage says the client streams without asking for usage: the
	// upstream is asked for it (stream_options.include_usage), so token
	// counts and spend are exact, and its usage chunk is kept from the
	// client.
	askUsage bool

	// Gateway-only fields. Timeout is zero when not given; the others are
	// kept raw for the retry and fallback logic.
	timeout          time.Duration
	numRetries       *int
	disableFallbacks bool
	fallbacks        gjson.Result
	fbGroups         []string                // the request's own fallbacks; nil when none
	fbOverrides      map[string]gjson.Result // per fallback group, fields to override
	metadata         gjson.Result
	tags             gjson.Result
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer keeps one huge body from pinning its memory in the pool.
const maxPooledBuffer = 1 << 20

func getBuffer() *bytes.Buffer { return bufPool.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	if b == nil || b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	bufPool.Put(b)
}

// release ends the request: its share of the body budget is given back,
// and its buffer goes back to the pool unless an upstream body the
// transport still holds reads from it (net/http may close a request body
// after RoundTrip returns); then the garbage collector frees it.
func (q *request) release() {
	if q.held > 0 {
		q.holding.Release(q.held)
	}
	if q.open.Load() == 0 {
		putBuffer(q.raw)
		if q.nativeRaw != nil {
			putBuffer(q.nativeRaw)
		}
	}
	q.nativeRaw, q.native = nil, upstreamBody{}
	q.raw, q.json, q.root, q.body, q.held, q.holding = nil, "", gjson.Result{}, upstreamBody{}, 0, nil
	q.model, q.fallbacks, q.fbGroups, q.fbOverrides, q.metadata, q.tags = "", gjson.Result{}, nil, nil, gjson.Result{}, gjson.Result{}
	q.stream, q.askUsage, q.contentType = false, false, nil
}

// requestFallbacks returns the request's own "fallbacks": the model groups
// in order, and for those given as objects ({"model": "...", ...}) the
// fields that override the request's when that group is tried. It returns
// nil groups when the request has no fallbacks field.
func (q *request) requestFallbacks() ([]string, map[string]gjson.Result, *openai.Error) {
	if !q.fallbacks.Exists() || q.fallbacks.Type == gjson.Null {
		return nil, nil, nil
	}
	if !q.fallbacks.IsArray() {
		return nil, nil, badRequest("\"fallbacks\" must be a list of model names or {\"model\": ...} objects, got %s.", jsonKind(q.fallbacks))
	}
	groups := []string{}
	var overrides map[string]gjson.Result
	var perr *openai.Error
	q.fallbacks.ForEach(func(_, v gjson.Result) bool {
		switch {
		case v.Type == gjson.String:
			groups = append(groups, v.Str)
		case v.IsObject() && v.Get("model").Type == gjson.String:
			name := v.Get("model").Str
			groups = append(groups, name)
			if overrides == nil {
				overrides = map[string]gjson.Result{}
			}
			overrides[name] = v
		default:
			perr = badRequest("\"fallbacks\" entries must be model names or objects with a \"model\" string, got %s.", openai.Clip(v.Raw))
		}
		return perr == nil
	})
	return groups, overrides, perr
}

// readRequest reads and parses the body of r, enforcing the size limit and
// the budget of body bytes held at once.
func (p *Proxy) readRequest(w http.ResponseWriter, r *http.Request, q *request) *openai.Error {
	limit := p.maxBodyBytes
	if r.ContentLength > limit {
		return tooLarge(r.ContentLength, limit)
	}
	rc := http.NewResponseController(w)
	if p.bodyReadTimeout > 0 {
		_ = rc.SetReadDeadline(time.Now().Add(p.bodyReadTimeout))
	}
	q.holding = p.bodyBudget
	var err error
	if r.ContentLength > 0 {
		err = q.readKnown(r.Body, int(r.ContentLength))
	} else {
		// Unknown length (chunked): held as it arrives.
		q.raw = getBuffer()
		_, err = q.raw.ReadFrom(&heldReader{r: http.MaxBytesReader(w, r.Body, limit), q: q})
	}
	if err == nil && p.bodyReadTimeout > 0 {
		// The body is in: clear the deadline, or it would cancel a long
		// stream. On error it stays, so the server discards the rest of
		// the body under it.
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		var busy *openai.Error
		switch {
		case errors.As(err, &busy):
			return busy
		case errors.As(err, &tooBig):
			return tooLarge(-1, limit)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return openai.NewError(http.StatusRequestTimeout, openai.TypeTimeout,
				fmt.Sprintf("The request body did not arrive within %s (--body-read-timeout).", p.bodyReadTimeout))
		}
		return openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest,
			"Could not read the request body: the connection failed or the body was cut short.")
	}
	switch {
	case isForm(q.ep):
		return q.parseForm(r.Header.Get("Content-Type"))
	case q.ep == deployment.Messages:
		return q.parseMessages()
	}
	return q.parse()
}

// parseMessages reads an Anthropic Messages request: as it came, for a
// server that speaks Messages, and translated to chat completions, which
// the request then is for everything else (routing, limits, usage). Both
// bodies are kept until the request ends, so the translation is held in
// the body budget too.
func (q *request) parseMessages() *openai.Error {
	if e := q.parse(); e != nil {
		return e
	}
	chat, aerr := anthropic.ToChat(q.raw.Bytes())
	if aerr != nil {
		return openai.NewError(aerr.Status, openai.TypeInvalidRequest, aerr.Message)
	}
	if e := q.hold(int64(len(chat.Body))); e != nil {
		return e
	}
	q.nativeRaw, q.native = q.raw, q.body
	q.raw = bytes.NewBuffer(chat.Body) // the translation's own memory: no copy
	q.model, q.stream = "", false      // metadata and tags stay, unless the translation has its own
	return q.parse()
}

// readKnown reads a body of announced length n into one buffer of n
// bytes (a pooled one up to 1 MiB). The budget is held in two stages: the
// first 64 KiB before they are read, and the rest, with the memory for it,
// only once those have arrived; so a client that announces 32 MB and sends
// nothing holds 64 KiB of the budget, not 32 MB.
func (q *request) readKnown(body io.Reader, n int) error {
	first := min(n, holdStep)
	if e := q.hold(int64(first)); e != nil {
		return e
	}
	q.raw = getBuffer()
	if err := q.readN(body, first); err != nil || n == first {
		return err
	}
	if e := q.hold(int64(n - first)); e != nil {
		return e
	}
	if n > maxPooledBuffer {
		whole := bytes.NewBuffer(make([]byte, 0, n))
		whole.Write(q.raw.Bytes())
		putBuffer(q.raw)
		q.raw = whole
	}
	return q.readN(body, n-first)
}

// readN reads exactly n more bytes of body into q.raw. It uses ReadFull,
// not ReadFrom, which would grow the buffer for one more read to see the
// end.
func (q *request) readN(body io.Reader, n int) error {
	q.raw.Grow(n)
	buf := q.raw.AvailableBuffer()[:n]
	if _, err := io.ReadFull(body, buf); err != nil {
		return err
	}
	q.raw.Write(buf) // in place: buf is the buffer's own free space
	return nil
}

// hold takes n more bytes of the body budget, or answers 503 when the
// gateway already holds as many request bytes as the operator allows.
func (q *request) hold(n int64) *openai.Error {
	if q.holding == nil {
		return nil
	}
	if !q.holding.TryAcquire(n) {
		e := openai.NewError(http.StatusServiceUnavailable, openai.TypeServerError,
			"The gateway is holding as many request bytes as it may at once (--max-request-mb-in-flight); retry in a moment.")
		e.Header = http.Header{"Retry-After": {"1"}}
		return e
	}
	q.held += n
	return nil
}

// heldReader holds body budget for the bytes of a body of unknown length
// as they arrive, in steps, so a reader never holds much more than it read.
type heldReader struct {
	r io.Reader
	q *request
}

// holdStep is how much budget a body of unknown length takes at a time.
const holdStep = 64 << 10

func (h *heldReader) Read(p []byte) (int, error) {
	p = p[:min(len(p), holdStep)]
	if total := int64(h.q.raw.Len() + len(p)); total > h.q.held {
		if e := h.q.hold(max(holdStep, total-h.q.held)); e != nil {
			return 0, e
		}
	}
	return h.r.Read(p)
}

func tooLarge(size, limit int64) *openai.Error {
	msg := fmt.Sprintf("Request body is too large: the limit is %s (general_settings.max_request_size_mb).", mib(limit))
	if size > 0 {
		msg = fmt.Sprintf("Request body is too large: %s exceeds the limit of %s (general_settings.max_request_size_mb).", mib(size), mib(limit))
	}
	return openai.NewError(http.StatusRequestEntityTooLarge, openai.TypeInvalidRequest, msg)
}

// mib renders a byte count for messages.
func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.2f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
}

func badRequest(format string, args ...any) *openai.Error {
	return openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, fmt.Sprintf(format, args...))
}

// parse validates the body as a JSON object, extracts what routing needs and
// builds the rewritten body. Keys are copied byte for byte; only the
// whitespace between them is not kept.
func (q *request) parse() *openai.Error {
	body := q.raw.Bytes()
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("Request body is empty: send a JSON object with at least \"model\".")
	}
	if !validJSON(body) {
		return badRequest("Request body is not valid JSON.")
	}
	// Parsed in place: root and every result from it are substrings of
	// raw, which nothing writes to until release, after which none of
	// them may be used: a string from the body that must outlive the
	// request (a span attribute, exported later) is cloned where it is
	// kept (endSpan).
	q.json = unsafe.String(unsafe.SliceData(body), len(body))
	q.root = gjson.Parse(q.json)
	if !q.root.IsObject() {
		return badRequest("Request body must be a JSON object, got %s.", jsonKind(q.root))
	}
	var perr *openai.Error
	hasModel := false
	q.root.ForEach(func(key, value gjson.Result) bool {
		switch name := key.Str; {
		case gatewayFields[name]:
			perr = q.gatewayField(name, value)
		case name == "model":
			if value.Type != gjson.String {
				perr = badRequest("\"model\" must be a string, got %s.", jsonKind(value))
			}
			q.model, hasModel = value.Str, true
		case name == "stream":
			q.stream = value.Type == gjson.True
		}
		return perr == nil
	})
	if perr != nil {
		return perr
	}
	if !hasModel || q.model == "" {
		return badRequest("Request body is missing \"model\": name one of the models listed by GET /v1/models.")
	}
	// Chat and completion streams only: the other APIs have no
	// stream_options.
	q.askUsage = q.stream && (q.ep == deployment.Chat || q.ep == deployment.Completion) &&
		q.root.Get("stream_options.include_usage").Type != gjson.True
	q.body = q.rewrite(gjson.Result{})
	return nil
}

// maxRecursiveBrackets bounds the bodies gjson's validator checks. It is
// two to three times as fast as encoding/json's but recurses once per
// level of nesting, so a deeply nested body would overflow the stack. The
// depth is at most the number of '{' and '[' in the body, so below this
// bound the recursion stays within about 100 KiB of stack. Bodies with
// more brackets (long conversations, large tool schemas) go to
// encoding/json, which validates iteratively with a depth limit of 10000.
// Below the bound the two agree on every document (FuzzValidJSON).
const maxRecursiveBrackets = 1000

var (
	openBrace   = []byte("{")
	openBracket = []byte("[")
)

// validJSON reports whether body is valid JSON, choosing the validator
// that is fast and safe for it.
func validJSON(body []byte) bool {
	if bytes.Count(body, openBrace)+bytes.Count(body, openBracket) <= maxRecursiveBrackets {
		return gjson.ValidBytes(body)
	}
	return json.Valid(body)
}

// rewrite returns the body to send upstream: gateway-only fields removed,
// and the fields of overrides (a per-request fallback's object) replacing
// or added to the client's. "model" and "stream" cannot be overridden.
// Runs of fields kept as they are become one part, so a typical body is a
// handful of parts around the model value, whatever its size.
func (q *request) rewrite(overrides gjson.Result) upstreamBody {
	var b upstreamBody
	b.parts = make([]string, 0, 8)
	b.add("{")
	json := q.json
	first := true
	runStart, runEnd := -1, -1 // a run of fields written as they are
	flush := func() {
		if runStart >= 0 {
			if !first {
				b.add(",")
			}
			b.add(json[runStart:runEnd])
			first, runStart = false, -1
		}
	}
	field := func(key, value string) {
		flush()
		if !first {
			b.add(",")
		}
		first = false
		b.add(key)
		b.add(":")
		b.add(value)
	}
	modelDone, optionsDone := false, false
	q.root.ForEach(func(key, value gjson.Result) bool {
		name := key.Str
		switch {
		case gatewayFields[name]:
			flush()
		case name == "stream_options" && q.askUsage:
			flush()
			if !optionsDone {
				field(key.Raw, withUsage(value))
				optionsDone = true
			}
		case name == "model":
			// A repeated "model" key (the last one routes, as in most JSON
			// parsers) is written once.
			flush()
			if !modelDone {
				field(key.Raw, "")
				b.markModel()
				modelDone = true
			}
		default:
			if o := overrides.Get(gjson.Escape(name)); o.Exists() && name != "stream" {
				field(key.Raw, o.Raw)
				break
			}
			if runStart < 0 {
				runStart = key.Index
			}
			runEnd = value.Index + len(value.Raw)
		}
		return true
	})
	flush()
	if q.askUsage && !optionsDone {
		field(`"stream_options"`, `{"include_usage":true}`)
	}
	overrides.ForEach(func(key, value gjson.Result) bool {
		name := key.Str
		if name != "model" && name != "stream" && !(name == "stream_options" && q.askUsage) && !gatewayFields[name] && !q.root.Get(gjson.Escape(name)).Exists() {
			field(key.Raw, value.Raw)
		}
		return true
	})
	b.add("}")
	return b
}

func (q *request) gatewayField(name string, v gjson.Result) *openai.Error {
	switch name {
	case "timeout":
		if v.Type == gjson.Null {
			return nil
		}
		if v.Type != gjson.Number || v.Num <= 0 {
			return badRequest("\"timeout\" must be a positive number of seconds, got %s.", openai.Clip(v.Raw))
		}
		// Capped well inside time.Duration: the router's timeout caps it
		// further (callTimeout).
		q.timeout = time.Duration(min(v.Num, 1e9) * float64(time.Second))
	case "num_retries":
		if v.Type == gjson.Null {
			return nil
		}
		if v.Type != gjson.Number || v.Num < 0 || v.Num != float64(int(v.Num)) {
			return badRequest("\"num_retries\" must be a non-negative integer, got %s.", openai.Clip(v.Raw))
		}
		n := int(v.Num)
		q.numRetries = &n
	case "disable_fallbacks":
		q.disableFallbacks = v.Type == gjson.True
	case "fallbacks":
		q.fallbacks = v
		var e *openai.Error
		q.fbGroups, q.fbOverrides, e = q.requestFallbacks()
		return e
	case "metadata":
		q.metadata = v
	case "tags":
		q.tags = v
	}
	return nil
}

func jsonKind(v gjson.Result) string {
	switch v.Type {
	case gjson.Null:
		return "null"
	case gjson.False, gjson.True:
		return "a boolean"
	case gjson.Number:
		return "a number"
	case gjson.String:
		return "a string"
	}
	if v.IsArray() {
		return "an array"
	}
	return "an object"
}
