package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// bytes returns the body with model as the model value, read through
// Read in small steps (WriteTo is what the transport uses; both must agree).
func (b upstreamBody) bytes(model string) []byte {
	var open atomic.Int32
	var viaWriteTo bytes.Buffer
	_, _ = b.reader(model, &open).WriteTo(&viaWriteTo)
	viaRead, _ := io.ReadAll(io.LimitReader(b.reader(model, &open), 1<<40))
	if !bytes.Equal(viaRead, viaWriteTo.Bytes()) || int64(len(viaRead)) != b.len(len(model)) {
		panic(fmt.Sprintf("Read %q, WriteTo %q, len %d", viaRead, viaWriteTo.Bytes(), b.len(len(model))))
	}
	return viaRead
}

func TestParseRewritesBody(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantBody   string // with upstream model "up/m"
		wantModel  string
		wantStream bool
		check      func(t *testing.T, q *request)
	}{
		{
			name:      "model replaced, rest kept",
			body:      `{"model":"qwen3-14b","messages":[{"role":"user","content":"hi"}],"max_tokens":1,"temperature":0.5}`,
			wantBody:  `{"model":"up/m","messages":[{"role":"user","content":"hi"}],"max_tokens":1,"temperature":0.5}`,
			wantModel: "qwen3-14b",
		},
		{
			name:       "gateway fields removed wherever they are",
			body:       `{"fallbacks":["x"], "model" : "g", "num_retries":3,"stream":true,"timeout":1.5,"disable_fallbacks":true,"metadata":{"a":1},"n":2}`,
			wantBody:   `{"model":"up/m","stream":true,"n":2,"stream_options":{"include_usage":true}}`,
			wantModel:  "g",
			wantStream: true,
			check: func(t *testing.T, q *request) {
				if q.timeout != 1500*time.Millisecond || q.numRetries == nil || *q.numRetries != 3 || !q.disableFallbacks {
					t.Errorf("gateway fields: timeout %v retries %v disable %v", q.timeout, q.numRetries, q.disableFallbacks)
				}
				if q.fallbacks.Raw != `["x"]` || q.metadata.Raw != `{"a":1}` {
					t.Errorf("fallbacks %q metadata %q", q.fallbacks.Raw, q.metadata.Raw)
				}
			},
		},
		{
			name:      "model last, unicode and escapes kept",
			body:      "{\"input\":\"h\\u00e9llo \\\"q\\\"\",\n  \"model\":\"emb\"}",
			wantBody:  `{"input":"h\u00e9llo \"q\"","model":"up/m"}`,
			wantModel: "emb",
		},
		{
			name:      "stream false",
			body:      `{"model":"g","stream":false}`,
			wantBody:  `{"model":"up/m","stream":false}`,
			wantModel: "g",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := request{raw: bytes.NewBufferString(tt.body)}
			if e := q.parse(); e != nil {
				t.Fatalf("parse: %v", e)
			}
			got := q.body.bytes(`"up/m"`)
			if string(got) != tt.wantBody {
				t.Errorf("body\n got %s\nwant %s", got, tt.wantBody)
			}
			if !json.Valid(got) {
				t.Errorf("rewritten body is not valid JSON: %s", got)
			}
			if q.model != tt.wantModel || q.stream != tt.wantStream {
				t.Errorf("model %q stream %v, want %q %v", q.model, q.stream, tt.wantModel, tt.wantStream)
			}
			if tt.check != nil {
				tt.check(t, &q)
			}
		})
	}
}

func TestParseRejectsBadBodies(t *testing.T) {
	tests := []struct {
		name, body, wantMsg string
	}{
		{"empty", ``, "Request body is empty"},
		{"malformed", `{"model":"g",`, "not valid JSON"},
		{"not an object", `["model"]`, "must be a JSON object, got an array"},
		{"missing model", `{"messages":[]}`, `missing "model"`},
		{"empty model", `{"model":""}`, `missing "model"`},
		{"model not a string", `{"model":7}`, `"model" must be a string, got a number`},
		{"bad timeout", `{"model":"g","timeout":"soon"}`, `"timeout" must be a positive number`},
		{"bad num_retries", `{"model":"g","num_retries":-1}`, `"num_retries" must be a non-negative integer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := request{raw: bytes.NewBufferString(tt.body)}
			e := q.parse()
			if e == nil {
				t.Fatal("parse accepted a bad body")
			}
			if e.Status != http.StatusBadRequest || !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("got %d %q, want 400 containing %q", e.Status, e.Message, tt.wantMsg)
			}
		})
	}
}

// validJSONCases are bodies on which validJSON must agree with
// encoding/json, on both sides of maxRecursiveBrackets.
var validJSONCases = []string{
	`{"model":"g","messages":[{"role":"user","content":"h\u00e9llo \"q\" \/ \n"}],"n":-0.5e+10,"s":true,"x":null}`,
	` {"a" : [ 1 , 2 ] } `, `{"a":1}{"b":2}`, `{"a":1,}`, `[1,]`, `{"a":01}`, `-0`, `1.`, `.5`, `1e`, `tru`,
	`"\u00zz"`, `"\a"`, "\"\x01\"", "\"\xff\"", "\ufeff{}", "{\"a\":\v1}", ``, ` `, `{"a":"b\"}`,
	strings.Repeat("[", maxRecursiveBrackets) + strings.Repeat("]", maxRecursiveBrackets),
	strings.Repeat("[", maxRecursiveBrackets+1) + strings.Repeat("]", maxRecursiveBrackets+1),
	strings.Repeat("[", maxRecursiveBrackets) + strings.Repeat("]", maxRecursiveBrackets-1),
	`{"tools":[` + strings.Repeat(`{"type":"function","function":{"parameters":{}}},`, maxRecursiveBrackets) + `{}]}`,
	`{"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`,
}

func TestValidJSON(t *testing.T) {
	for _, body := range validJSONCases {
		if got, want := validJSON([]byte(body)), json.Valid([]byte(body)); got != want {
			t.Errorf("validJSON(%.60q) = %v, encoding/json says %v", body, got, want)
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, body := range validJSONCases {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if got, want := validJSON(body), json.Valid(body); got != want {
			t.Errorf("validJSON(%q) = %v, encoding/json says %v", body, got, want)
		}
	})
}

func TestCopyUpstreamHeaders(t *testing.T) {
	t.Parallel()
	up := http.Header{
		"Content-Type":   {"application/json"},
		"Content-Length": {"12"},
		"X-Request-Id":   {"r1"},
		"Server":         {"uvicorn"},
		"Connection":     {"close"},
	}
	for _, tt := range []struct {
		name string
		hide bool
		want http.Header
	}{
		{"passed on under llm_provider-", false, http.Header{"Content-Type": {"application/json"},
			"Llm_provider-x-request-id": {"r1"}, "Llm_provider-server": {"uvicorn"}}},
		{"upstream details hidden", true, http.Header{"Content-Type": {"application/json"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dst := http.Header{}
			(&Proxy{}).copyUpstreamHeaders(dst, up, tt.hide)
			if diff := cmp.Diff(tt.want, dst); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}
}

// BenchmarkRewrite measures reading a chat body's routing fields and
// producing the upstream body, for a typical and a 10 KB prompt.
func BenchmarkRewrite(b *testing.B) {
	for _, size := range []int{200, 10 << 10} {
		body := []byte(`{"model":"qwen3-14b","messages":[{"role":"user","content":"` +
			strings.Repeat("a", size) + `"}],"max_tokens":16,"stream":true,"metadata":{"user":"u1"}}`)
		b.Run(fmt.Sprintf("%dB", len(body)), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				q := request{raw: getBuffer()}
				q.raw.Write(body)
				if e := q.parse(); e != nil {
					b.Fatal(e)
				}
				var open atomic.Int32
				_, _ = q.body.reader(`"Qwen/Qwen3-14B"`, &open).WriteTo(io.Discard)
				q.release()
			}
		})
	}
}
