package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tidwall/gjson"

	"github.com/maasgate/maasgate/internal/openai"
)

// gatewayFields are request fields the gateway consumes and never forwards.
var gatewayFields = map[string]bool{
	"fallbacks":         true,
	"num_retries":       true,
	"timeout":           true,
	"disable_fallbacks": true,
	"metadata":          true,
}

// request is a client request read once and prepared for forwarding: the
// body with the gateway-only fields removed, split around the value of
// "model" so each attempt splices in its deployment's upstream model name
// without parsing again.
type request struct {
	raw  *bytes.Buffer // the body as received
	out  *bytes.Buffer // the rewritten body, head then tail
	root gjson.Result  // the parsed body
	head []byte        // out up to where the model value goes
	tail []byte        // out after the model value

	model  string
	stream bool

	// Gateway-only fields. Timeout is zero when not given; the others are
	// kept raw for the retry and fallback logic.
	timeout          time.Duration
	numRetries       *int
	disableFallbacks bool
	fallbacks        gjson.Result
	fbGroups         []string                // the request's own fallbacks; nil when none
	fbOverrides      map[string]gjson.Result // per fallback group, fields to override
	metadata         gjson.Result
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

func (q *request) release() {
	putBuffer(q.raw)
	putBuffer(q.out)
	*q = request{}
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
			perr = badRequest("\"fallbacks\" entries must be model names or objects with a \"model\" string, got %s.", v.Raw)
		}
		return perr == nil
	})
	return groups, overrides, perr
}

// readRequest reads and parses the body of r, enforcing the size limit.
func (p *Proxy) readRequest(w http.ResponseWriter, r *http.Request, q *request) *openai.Error {
	limit := p.maxBodyBytes
	if r.ContentLength > limit {
		return tooLarge(r.ContentLength, limit)
	}
	rc := http.NewResponseController(w)
	if p.bodyReadTimeout > 0 {
		_ = rc.SetReadDeadline(time.Now().Add(p.bodyReadTimeout))
	}
	q.raw = getBuffer()
	if r.ContentLength > 0 {
		// Reserve what was announced, up to a bound: a client that declares
		// a large body and sends it slowly does not get memory up front.
		q.raw.Grow(int(min(r.ContentLength, 1<<20)))
	}
	_, err := q.raw.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err == nil && p.bodyReadTimeout > 0 {
		// The body is in: clear the deadline, or it would cancel a long
		// stream. On error it stays, so the server discards the rest of
		// the body under it.
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tooLarge(-1, limit)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return openai.NewError(http.StatusRequestTimeout, openai.TypeTimeout,
				fmt.Sprintf("The request body did not arrive within %s (--body-read-timeout).", p.bodyReadTimeout))
		}
		return openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest,
			fmt.Sprintf("could not read the request body: %v", err))
	}
	return q.parse()
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
	q.root = gjson.ParseBytes(body)
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
	q.out = getBuffer()
	q.out.Grow(len(body) + 64)
	q.head, q.tail = q.rewrite(q.out, gjson.Result{})
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

// rewrite writes the body to send upstream into out and returns it split
// where the model value goes: gateway-only fields removed, and the fields
// of overrides (a per-request fallback's object) replacing or added to the
// client's. "model" and "stream" cannot be overridden.
func (q *request) rewrite(out *bytes.Buffer, overrides gjson.Result) (head, tail []byte) {
	out.WriteByte('{')
	modelAt := -1
	first := true
	field := func(key, value string) {
		if !first {
			out.WriteByte(',')
		}
		first = false
		out.WriteString(key)
		out.WriteByte(':')
		out.WriteString(value)
	}
	q.root.ForEach(func(key, value gjson.Result) bool {
		name := key.Str
		switch {
		case gatewayFields[name]:
		case name == "model":
			// A repeated "model" key (the last one routes, as in most JSON
			// parsers) is written once.
			if modelAt < 0 {
				field(key.Raw, "")
				modelAt = out.Len()
			}
		default:
			if o := overrides.Get(gjson.Escape(name)); o.Exists() && name != "stream" {
				field(key.Raw, o.Raw)
			} else {
				field(key.Raw, value.Raw)
			}
		}
		return true
	})
	overrides.ForEach(func(key, value gjson.Result) bool {
		name := key.Str
		if name != "model" && name != "stream" && !gatewayFields[name] && !q.root.Get(gjson.Escape(name)).Exists() {
			field(key.Raw, value.Raw)
		}
		return true
	})
	out.WriteByte('}')
	b := out.Bytes()
	return b[:modelAt], b[modelAt:]
}

func (q *request) gatewayField(name string, v gjson.Result) *openai.Error {
	switch name {
	case "timeout":
		if v.Type == gjson.Null {
			return nil
		}
		if v.Type != gjson.Number || v.Num <= 0 {
			return badRequest("\"timeout\" must be a positive number of seconds, got %s.", v.Raw)
		}
		q.timeout = time.Duration(v.Num * float64(time.Second))
	case "num_retries":
		if v.Type == gjson.Null {
			return nil
		}
		if v.Type != gjson.Number || v.Num < 0 || v.Num != float64(int(v.Num)) {
			return badRequest("\"num_retries\" must be a non-negative integer, got %s.", v.Raw)
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
