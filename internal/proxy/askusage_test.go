package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/maasgate/maasgate/internal/config"
)

// TestStreamUsageAskedAndKept: a client streaming without asking for
// usage gets the stream it asked for, while the gateway asks the upstream
// for the usage chunk, takes the exact token counts from it and keeps it
// from the client; a client that asked for usage gets it.
func TestStreamUsageAskedAndKept(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var options []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		opts := gjson.GetBytes(body, "stream_options")
		mu.Lock()
		options = append(options, opts.Raw)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for _, tok := range []string{"a", "b"} {
			io.WriteString(w, `data: {"choices":[{"index":0,"delta":{"content":"`+tok+`"}}]}`+"\n\n")
			f.Flush()
		}
		if opts.Get("include_usage").Bool() {
			// Cut in the middle, as a read may end anywhere.
			io.WriteString(w, `data: {"choices":[],"usage":{"prompt_tokens":7,`)
			f.Flush()
			time.Sleep(10 * time.Millisecond) // let the gateway read the first half alone
			io.WriteString(w, `"completion_tokens":35,"total_tokens":42}}`+"\n\n")
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(up.Close)
	srv, rt := newGateway(t, config.DefaultRouterSettings(), dep("g", "only", up.URL+"/v1"))
	stream := func(extra string) string {
		resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"g","stream":true,`+extra+`"messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	got := stream(`"stream_options":{"continuous_usage_stats":false},`)
	want := `data: {"choices":[{"index":0,"delta":{"content":"a"}}]}` + "\n\n" +
		`data: {"choices":[{"index":0,"delta":{"content":"b"}}]}` + "\n\n" + "data: [DONE]\n\n"
	if got != want {
		t.Errorf("client got\n%q\nwant the stream without the usage chunk\n%q", got, want)
	}
	d, _ := rt.Deployment("only")
	if _, tokens := d.MinuteUsage(time.Now().UnixNano()); tokens != 42 {
		t.Errorf("the deployment counted %d tokens, want the usage chunk's 42", tokens)
	}
	if got := stream(`"stream_options":{"include_usage":true},`); !strings.Contains(got, `"total_tokens":42`) {
		t.Errorf("a client that asked for usage did not get it:\n%s", got)
	}
	stream("")
	mu.Lock()
	defer mu.Unlock()
	wantOptions := []string{`{"continuous_usage_stats":false,"include_usage":true}`, `{"include_usage":true}`, `{"include_usage":true}`}
	if strings.Join(options, " ") != strings.Join(wantOptions, " ") {
		t.Errorf("upstream got stream_options %q, want %q", options, wantOptions)
	}
}

// TestUsageStripEdges: the usage chunk is recognised with or without the
// space after "data:", and a line too long to be one is passed on whole,
// as it comes, not held until it ends.
func TestUsageStripEdges(t *testing.T) {
	t.Parallel()
	s := newUsageStrip()
	got := string(s.filter([]byte("data:{\"choices\":[],\"usage\":{\"total_tokens\":3}}\n\ndata: [DONE]\n\n")))
	if got != "data: [DONE]\n\n" {
		t.Errorf("got %q, want the usage chunk without its space dropped", got)
	}
	long := "data: {\"choices\":[{\"delta\":{\"content\":\"" + strings.Repeat("x", maxHeldLine) + "\"}}]}"
	var out []byte
	for i := 0; i < len(long); i += 1000 {
		out = append(out, s.filter([]byte(long[i:min(i+1000, len(long))]))...)
	}
	if len(out) < maxHeldLine-1000 {
		t.Errorf("%d bytes of a %d-byte line passed on before its end, want it passed on as it comes", len(out), len(long))
	}
	out = append(out, s.filter([]byte("\n\n"))...)
	if string(out) != long+"\n\n" {
		t.Errorf("the long line was changed: %d bytes out of %d", len(out), len(long)+2)
	}
}
