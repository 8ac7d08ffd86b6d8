// Package openai holds the small pieces of the OpenAI wire format that the
// gateway writes itself: the error envelope and server-sent-event framing.
// It is a leaf package (standard library only) so every other package can use
// it without import cycles.
package openai

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// Error types used in the envelope's "type" field. They follow OpenAI's names,
// which LiteLLM also uses, so SDK clients map them to their typed errors.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "auth_error"
	TypePermission     = "permission_error"
	TypeNotFound       = "not_found_error"
	TypeRateLimit      = "rate_limit_error"
	TypeTimeout        = "timeout_error"
	TypeAPIError       = "api_error"
	TypeServerError    = "server_error"
)

// Error is an error that knows how it looks on the wire: an HTTP status and
// the OpenAI error envelope {"error":{"message","type","param","code"}} with
// code set to the status as a string, as LiteLLM sends it.
type Error struct {
	Status  int
	Type    string
	Message string
	Param   string // empty means null

	// Header holds extra response headers, such as Retry-After.
	Header http.Header
}

// NewError returns an *Error with the given status, type and message.
func NewError(status int, typ, msg string) *Error {
	return &Error{Status: status, Type: typ, Message: msg}
}

// Error returns the message so *Error satisfies the error interface.
func (e *Error) Error() string { return e.Message }

type envelope struct {
	Error envelopeBody `json:"error"`
}

type envelopeBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// MarshalJSON encodes the envelope.
func (e *Error) MarshalJSON() ([]byte, error) {
	body := envelopeBody{Message: e.Message, Type: e.Type, Code: strconv.Itoa(e.Status)}
	if e.Param != "" {
		p := e.Param
		body.Param = &p
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // messages are shown to people: keep "<key>" readable
	if err := enc.Encode(envelope{Error: body}); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// WriteError writes e as a complete JSON response. It is the one place the
// gateway renders errors for clients.
func WriteError(w http.ResponseWriter, e *Error) {
	b, err := e.MarshalJSON()
	if err != nil { // cannot happen: only strings are encoded
		http.Error(w, e.Message, e.Status)
		return
	}
	h := w.Header()
	for k, vs := range e.Header {
		h[k] = vs
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(e.Status)
	_, _ = w.Write(append(b, '\n'))
}

// ParseUpstreamError extracts the message and type from an upstream error
// body. It understands OpenAI's envelope, vLLM's flat {"message","type"}
// shape and FastAPI's {"detail": ...}; anything else yields the raw body,
// trimmed to a readable length.
func ParseUpstreamError(body []byte) (msg, typ string) {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Detail  json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &v) == nil {
		if len(v.Error) > 0 {
			var inner struct {
				Message string `json:"message"`
				Type    string `json:"type"`
			}
			if json.Unmarshal(v.Error, &inner) == nil && inner.Message != "" {
				return inner.Message, inner.Type
			}
			var s string
			if json.Unmarshal(v.Error, &s) == nil && s != "" {
				return s, ""
			}
		}
		if v.Message != "" {
			return v.Message, v.Type
		}
		if len(v.Detail) > 0 {
			var s string
			if json.Unmarshal(v.Detail, &s) == nil {
				return s, ""
			}
			return string(v.Detail), ""
		}
	}
	const max = 1000
	if len(body) > max {
		body = body[:max]
	}
	return string(body), ""
}

// TypeForStatus returns the envelope type for an HTTP status.
func TypeForStatus(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return TypeAuthentication
	case status == http.StatusNotFound:
		return TypeNotFound
	case status == http.StatusTooManyRequests:
		return TypeRateLimit
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return TypeTimeout
	case status >= 500:
		return TypeAPIError
	default:
		return TypeInvalidRequest
	}
}

// maxClipped is how much of a client-supplied string an error message
// quotes: enough to recognise it, never the megabytes a client may send.
const maxClipped = 200

// Clip returns s for quoting in an error message: whole when short, else
// its first bytes (cut on a UTF-8 boundary) and how long it was.
func Clip(s string) string {
	if len(s) <= maxClipped {
		return s
	}
	n := maxClipped
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "... (" + strconv.Itoa(len(s)) + " bytes)"
}
