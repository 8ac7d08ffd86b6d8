package mockllm

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// apiError is an error as vLLM writes it:
// {"error":{"message","type","param","code"}} with code the HTTP status as a
// number and type a Python-style exception name ("NotFoundError").
type apiError struct {
	status int
	typ    string
	msg    string
	param  string // "" is null
}

type errorBody struct {
	Error errorInfo `json:"error"`
}

type errorInfo struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    int     `json:"code"`
}

func badRequest(msg, param string) apiError {
	return apiError{status: http.StatusBadRequest, typ: "BadRequestError", msg: msg, param: param}
}

// fieldError is the 400 for a bad request field: "<field>: <msg>", with
// the field as the error's param.
func fieldError(field, msg string) *apiError {
	e := badRequest(field+": "+msg, field)
	return &e
}

// errorWriter renders an error in one API's envelope: writeError for
// OpenAI's, writeAnthropicError for Anthropic's.
type errorWriter func(http.ResponseWriter, apiError)

// reject counts a request refused as vLLM would and answers it with e.
func (s *Server) reject(w http.ResponseWriter, e apiError) {
	s.rejectAs(w, e, writeError)
}

// rejectAs is reject for an API with its own error envelope.
func (s *Server) rejectAs(w http.ResponseWriter, e apiError, werr errorWriter) {
	s.stats.rejected.Add(1)
	werr(w, e)
}

// writeError renders an error in OpenAI's envelope, as vLLM does.
func writeError(w http.ResponseWriter, e apiError) {
	body := errorBody{Error: errorInfo{Message: e.msg, Type: e.typ, Code: e.status}}
	if e.param != "" {
		body.Error.Param = &e.param
	}
	writeJSON(w, e.status, body)
}

// errorType names the exception vLLM-style servers report for a status:
// "Internal Server Error" becomes "InternalServerError", "Too Many
// Requests" becomes "TooManyRequestsError".
func errorType(status int) string {
	t := strings.ReplaceAll(http.StatusText(status), " ", "")
	t = strings.ReplaceAll(t, "-", "")
	if t == "" {
		t = "HTTP" + strconv.Itoa(status)
	}
	if !strings.HasSuffix(t, "Error") {
		t += "Error"
	}
	return t
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own plain structs are encoded
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// Shared header values; net/http never modifies them.
var (
	contentTypeJSON = []string{"application/json"}
	contentTypeSSE  = []string{"text/event-stream; charset=utf-8"}
)

// readBody reads an inference request's body, up to maxBody bytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	var buf []byte
	if r.ContentLength > 0 {
		buf = make([]byte, 0, min(r.ContentLength, 1<<16)+1) // +1 sees EOF without growing
	}
	body, err := readAll(http.MaxBytesReader(w, r.Body, maxBody), buf)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return body, &apiError{status: http.StatusRequestEntityTooLarge, typ: "BadRequestError", msg: "request body too large"}
		}
		e := badRequest("reading request body: "+err.Error(), "")
		return body, &e
	}
	return body, nil
}

// readAll is io.ReadAll into a caller-sized buffer.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	if b == nil {
		return io.ReadAll(r)
	}
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// decodeError turns a JSON decoding error into vLLM's 400.
func decodeError(err error) *apiError {
	e := badRequest("invalid JSON body: "+err.Error(), "")
	return &e
}

// countWords counts runs of non-space bytes: the mock's notion of tokens.
func countWords(s string) int {
	n, in := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case isSpace(s[i]):
			in = false
		case !in:
			n++
			in = true
		}
	}
	return n
}

// isSpace reports whether c separates words: ASCII white space only.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}

// cutWord returns the first word of s and what follows it; word is "" when
// s has no word left.
func cutWord(s string) (word, rest string) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	j := i
	for j < len(s) && !isSpace(s[j]) {
		j++
	}
	return s[i:j], s[j:]
}

// appendWords appends the words countWords counts. It never returns nil, so
// no words encode as [].
func appendWords(dst []string, s string) []string {
	if dst == nil {
		dst = []string{}
	}
	for w, rest := cutWord(s); w != ""; w, rest = cutWord(rest) {
		dst = append(dst, w)
	}
	return dst
}

// messageTokens counts the prompt tokens of a chat request's messages,
// whose content is a string or a list of parts with text.
func messageTokens(raw json.RawMessage) (int, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		e := badRequest("messages: field required", "messages")
		return 0, &e
	}
	var msgs []struct {
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(raw, &msgs); err != nil {
		e := badRequest("messages: "+err.Error(), "messages")
		return 0, &e
	}
	n := 0
	for _, m := range msgs {
		switch firstByte(m.Content) {
		case '"':
			var s string
			if err := json.Unmarshal(m.Content, &s); err != nil {
				return 0, decodeError(err)
			}
			n += countWords(s)
		case '[':
			var parts []struct {
				Text string `json:"text"`
			}
			if err := json.Unmarshal(m.Content, &parts); err != nil {
				e := badRequest("messages: content: "+err.Error(), "messages")
				return 0, &e
			}
			for _, p := range parts {
				n += countWords(p.Text)
			}
		}
	}
	return n, nil
}

// promptTokens counts a completion request's prompt tokens. The prompt is a
// string, a list of strings, a list of token ids, or a list of such lists.
func promptTokens(raw json.RawMessage) (int, *apiError) {
	inputs, err := parseInputs(raw, "prompt")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, in := range inputs {
		n += in.tokens
	}
	return n, nil
}

// input is one prompt or embedding input: its token count and a seed that
// identifies its content.
type input struct {
	tokens int
	seed   uint64
}

// parseInputs reads OpenAI's polymorphic prompt/input field: a string, a
// list of strings, a list of token ids (one input), or a list of lists of
// token ids.
func parseInputs(raw json.RawMessage, field string) ([]input, *apiError) {
	switch firstByte(raw) {
	case 0, 'n':
		return nil, fieldError(field, "field required")
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fieldError(field, err.Error())
		}
		return []input{{tokens: countWords(s), seed: fnv64(s)}}, nil
	case '[':
	default:
		return nil, fieldError(field, "want a string, a list of strings or a list of token ids")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fieldError(field, err.Error())
	}
	if len(items) == 0 {
		return nil, fieldError(field, "must not be empty")
	}
	switch firstByte(items[0]) {
	case '"':
		var ss []string
		if err := json.Unmarshal(raw, &ss); err != nil {
			return nil, fieldError(field, err.Error())
		}
		out := make([]input, len(ss))
		for i, s := range ss {
			out[i] = input{tokens: countWords(s), seed: fnv64(s)}
		}
		return out, nil
	case '[':
		var lists [][]int64
		if err := json.Unmarshal(raw, &lists); err != nil {
			return nil, fieldError(field, err.Error())
		}
		out := make([]input, len(lists))
		for i, ids := range lists {
			out[i] = input{tokens: len(ids), seed: tokenSeed(ids)}
		}
		return out, nil
	default:
		var ids []int64
		if err := json.Unmarshal(raw, &ids); err != nil {
			return nil, fieldError(field, err.Error())
		}
		return []input{{tokens: len(ids), seed: tokenSeed(ids)}}, nil
	}
}

// tokenSeed hashes token ids (FNV-1a over their little-endian bytes), kept
// apart from text seeds by a different start value.
func tokenSeed(ids []int64) uint64 {
	h := uint64(0x84222325cbf29ce4)
	for _, id := range ids {
		for i := 0; i < 8; i++ {
			h ^= uint64(byte(id >> (8 * i)))
			h *= 1099511628211
		}
	}
	return h
}

// firstByte returns the first non-space byte of raw JSON, or 0.
func firstByte(raw []byte) byte {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}
