package anthropic

import (
	"net/http"
	"strconv"

	"github.com/maasgate/maasgate/internal/openai"
	"github.com/tidwall/gjson"
)

// Error types of Anthropic's error envelope, as its API reference lists them.
const (
	TypeInvalidRequest  = "invalid_request_error"
	TypeAuthentication  = "authentication_error"
	TypeBilling         = "billing_error"
	TypePermission      = "permission_error"
	TypeNotFound        = "not_found_error"
	TypeRequestTooLarge = "request_too_large"
	TypeRateLimit       = "rate_limit_error"
	TypeTimeout         = "timeout_error"
	TypeAPI             = "api_error"
	TypeOverloaded      = "overloaded_error"
)

// StatusOverloaded is the status Anthropic answers when it is overloaded.
const StatusOverloaded = 529

// Error is an error in Anthropic's envelope:
// {"type":"error","error":{"type":...,"message":...}}, with the HTTP status
// it is sent with.
type Error struct {
	Status  int
	Type    string
	Message string

	// Header holds extra response headers, such as Retry-After.
	Header http.Header
}

// NewError returns an *Error whose type follows from the status
// (TypeForStatus).
func NewError(status int, msg string) *Error {
	return &Error{Status: status, Type: TypeForStatus(status), Message: msg}
}

// invalid returns a 400 invalid_request_error naming the field at path, the
// way Anthropic's validation errors start ("messages.2.content.0.type: ...").
func invalid(path, msg string) *Error {
	if path != "" {
		msg = path + ": " + msg
	}
	return &Error{Status: http.StatusBadRequest, Type: TypeInvalidRequest, Message: msg}
}

// Error returns the message so *Error satisfies the error interface.
func (e *Error) Error() string { return e.Message }

// TypeForStatus returns Anthropic's error type for an HTTP status: the
// mapping its API reference documents (400, 401, 402, 403, 404, 413, 429,
// 500, 504, 529), 503 as overloaded_error (what the gateway means by it: no
// deployment can take the request now), other 4xx as invalid_request_error
// (as Anthropic says it does) and other 5xx as api_error.
func TypeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return TypeInvalidRequest
	case http.StatusUnauthorized:
		return TypeAuthentication
	case http.StatusPaymentRequired:
		return TypeBilling
	case http.StatusForbidden:
		return TypePermission
	case http.StatusNotFound:
		return TypeNotFound
	case http.StatusRequestEntityTooLarge:
		return TypeRequestTooLarge
	case http.StatusTooManyRequests:
		return TypeRateLimit
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return TypeTimeout
	case http.StatusServiceUnavailable, StatusOverloaded:
		return TypeOverloaded
	}
	if status >= 400 && status < 500 {
		return TypeInvalidRequest
	}
	return TypeAPI
}

// AppendJSON appends the envelope to dst. requestID, when not empty, is
// added as Anthropic adds its own ("request_id").
func (e *Error) AppendJSON(dst []byte, requestID string) []byte {
	dst = append(dst, `{"type":"error","error":{"type":`...)
	dst = appendString(dst, e.Type)
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, e.Message)
	dst = append(dst, '}')
	if requestID != "" {
		dst = append(dst, `,"request_id":`...)
		dst = appendString(dst, requestID)
	}
	return append(dst, '}')
}

// AppendEvent appends e as the in-band "error" event of a stream, which is
// how Anthropic reports a failure after the response has started.
func (e *Error) AppendEvent(dst []byte) []byte {
	dst = append(dst, "event: error\ndata: "...)
	dst = e.AppendJSON(dst, "")
	return append(dst, '\n', '\n')
}

// WriteError writes e as a complete JSON response with its status and
// headers.
func WriteError(w http.ResponseWriter, e *Error, requestID string) {
	b := e.AppendJSON(make([]byte, 0, 128+len(e.Message)), requestID)
	h := w.Header()
	for k, vs := range e.Header {
		h[k] = vs
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}

// FromOpenAI converts one of the gateway's own errors (the OpenAI envelope
// it writes for chat) to Anthropic's envelope: same status, message and
// headers, the type taken from the status.
func FromOpenAI(e *openai.Error) *Error {
	return &Error{Status: e.Status, Type: TypeForStatus(e.Status), Message: e.Message, Header: e.Header}
}

// FromOpenAIBody translates an upstream error body to Anthropic's
// envelope. It reads OpenAI's envelope {"error":{"message","type","code"}},
// vLLM's flat {"message","type","code"} and FastAPI's {"detail"}. The type
// follows from status; when status is not an error status (an error sent
// inside a 200 stream), the body's numeric code is used, else 500.
func FromOpenAIBody(status int, body []byte) *Error {
	msg, _ := openai.ParseUpstreamError(body)
	if status < 400 {
		status = http.StatusInternalServerError
		code := gjson.GetBytes(body, "error.code")
		if !code.Exists() {
			code = gjson.GetBytes(body, "code")
		}
		if c := int(code.Int()); c >= 400 && c < 600 {
			status = c
		}
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return NewError(status, msg)
}
