package openai

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestWriteError(t *testing.T) {
	e := NewError(429, TypeRateLimit, "slow <down>")
	e.Header = http.Header{"Retry-After": {"3"}}
	w := httptest.NewRecorder()
	WriteError(w, e)
	want := `{"error":{"message":"slow <down>","type":"rate_limit_error","param":null,"code":"429"}}` + "\n"
	if w.Code != 429 || w.Body.String() != want || w.Header().Get("Retry-After") != "3" {
		t.Errorf("got %d %q %v", w.Code, w.Body.String(), w.Header())
	}
	e = NewError(400, TypeInvalidRequest, "bad")
	e.Param = "model"
	b, _ := e.MarshalJSON()
	if string(b) != `{"error":{"message":"bad","type":"invalid_request_error","param":"model","code":"400"}}` {
		t.Errorf("param: %s", b)
	}
}

func TestWriteErrorEvent(t *testing.T) {
	e := NewError(502, TypeAPIError, "gone")
	event := `data: {"error":{"message":"gone","type":"api_error","param":null,"code":"502"}}` + "\n\n"
	tests := []struct {
		name, last, wantPrefix string
	}{
		{"after a complete event", "}\n\n", ""},
		{"after a partial line", `{"par`, "\n\n"},
		{"after one newline", "}\n", "\n"},
		{"nothing written", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteErrorEvent(&buf, []byte(tt.last), e); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != tt.wantPrefix+event {
				t.Errorf("got %q, want %q", got, tt.wantPrefix+event)
			}
		})
	}
}

func TestParseUpstreamError(t *testing.T) {
	tests := []struct{ body, msg, typ string }{
		{`{"error":{"message":"m1","type":"t1"}}`, "m1", "t1"},
		{`{"error":"m2"}`, "m2", ""},
		{`{"object":"error","message":"m3","type":"NotFoundError"}`, "m3", "NotFoundError"},
		{`{"detail":"m4"}`, "m4", ""},
		{`{"detail":[{"loc":["body"]}]}`, `[{"loc":["body"]}]`, ""},
		{`Internal Server Error`, "Internal Server Error", ""},
	}
	for _, tt := range tests {
		msg, typ := ParseUpstreamError([]byte(tt.body))
		if msg != tt.msg || typ != tt.typ {
			t.Errorf("ParseUpstreamError(%s) = %q, %q; want %q, %q", tt.body, msg, typ, tt.msg, tt.typ)
		}
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	if got := Clip("qwen3-14b"); got != "qwen3-14b" {
		t.Errorf("short string changed: %q", got)
	}
	long := strings.Repeat("é", 1<<20) // 2 MiB of two-byte runes
	got := Clip(long)
	if len(got) > 260 || !strings.HasSuffix(got, "... (2097152 bytes)") || !utf8.ValidString(got) {
		t.Errorf("Clip of a 2 MiB string = %d bytes %q", len(got), got[len(got)-40:])
	}
}
