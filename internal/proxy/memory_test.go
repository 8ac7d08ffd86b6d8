package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/testutil"
)

// bigResponse is a non-streaming response larger than the gateway holds,
// with its usage at the end as OpenAI-compatible servers send it.
func bigResponse(size int) []byte {
	return []byte(`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[` +
		strings.Repeat("0.123456789,", size/12) + `0]}],"usage":{"prompt_tokens":7,"completion_tokens":0,"total_tokens":7}}`)
}

func TestLargeResponseIsRelayedWhole(t *testing.T) {
	t.Parallel()
	want := bigResponse(3 * maxBufferedResponse)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(want)))
		w.Write(want)
	}))
	t.Cleanup(up.Close)
	srv, rt := newGateway(t, config.DefaultRouterSettings(), dep("emb", "e1", up.URL+"/v1"))

	resp := post(t, srv.URL+"/v1/embeddings", `{"model":"emb","input":"x"}`)
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d, %v", resp.StatusCode, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want the upstream's %d byte for byte", len(got), len(want))
	}
	if resp.Header.Get("x-litellm-model-id") != "e1" || resp.ContentLength != int64(len(want)) {
		t.Errorf("headers %v, content length %d", resp.Header, resp.ContentLength)
	}
	// With a Content-Length the client has every byte before the handler
	// returns and counts the usage: wait for it.
	d, _ := rt.Deployment("e1")
	testutil.Eventually(t, "the usage's 7 tokens are counted", func() bool {
		_, n := d.MinuteUsage(rt.Now().UnixNano())
		return n == 7
	})
}

func TestLargeResponseCutOffIsNotASuccess(t *testing.T) {
	t.Parallel()
	body := bigResponse(3 * maxBufferedResponse)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body[:2*maxBufferedResponse]) // no Content-Length: chunked
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // the server dies mid-response
		}
	}))
	t.Cleanup(up.Close)
	srv, _ := newGateway(t, config.DefaultRouterSettings(), dep("emb", "e1", up.URL+"/v1"))

	resp := post(t, srv.URL+"/v1/embeddings", `{"model":"emb","input":"x"}`)
	got, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("the client read %d of %d bytes as a complete response (status %d)", len(got), len(body), resp.StatusCode)
	}
}

func TestBodyBytesInFlightAreBounded(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices":[]}`)
	}))
	t.Cleanup(up.Close)
	url := gatewayWith(t, func(o *Options) { o.MaxBodyBytes, o.MaxBodyBytesInFlight = 32<<20, 1536<<10 }, dep("g", "g1", up.URL+"/v1"))
	addr := strings.TrimPrefix(url, "http://")
	post := func(body string) *http.Response {
		resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	dial := func(announced int, send string) net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", announced, send)
		return conn
	}
	second := `{"model":"g","input":"` + strings.Repeat("b", 300<<10) + `"}`

	// Clients that announce 32 MB and send nothing hold 64 KiB each, not
	// 32 MB: eight of them leave room in the 1.5 MiB budget for others.
	for range 8 {
		dial(32<<20, "")
	}
	if resp := post(second); resp.StatusCode != 200 {
		t.Fatalf("with clients announcing bodies they do not send: %d", resp.StatusCode)
	}

	// A client that has sent the start of an 800 KB body holds all of it:
	// 512 KiB + 800 KiB + 300 KiB is past the budget.
	big := `{"model":"g","input":"` + strings.Repeat("a", 800<<10) + `"}`
	slow := dial(len(big), big[:100<<10])
	var resp *http.Response
	testutil.Eventually(t, "the slow client's 800 KB to be held", func() bool {
		resp = post(second)
		return resp.StatusCode == 503
	})
	if resp.Header.Get("Retry-After") != "1" {
		t.Errorf("503 with Retry-After %q, want 1", resp.Header.Get("Retry-After"))
	}
	// The slow client finishes: served, and its bytes are given back.
	if _, err := io.WriteString(slow, big[100<<10:]); err != nil {
		t.Fatal(err)
	}
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	if first, err := io.ReadAll(io.LimitReader(slow, 12)); err != nil || string(first) != "HTTP/1.1 200" {
		t.Fatalf("the slow client got %q, %v", first, err)
	}
	testutil.Eventually(t, "its hold to be released", func() bool { return post(second).StatusCode == 200 })
}

// TestMessagesBodyBytesInFlightAreBounded: a Messages request keeps its
// body and its translation to chat, and holds the budget for both: a body
// that fits the budget once but not twice is refused, as Anthropic's 503.
func TestMessagesBodyBytesInFlightAreBounded(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	}))
	t.Cleanup(up.Close)
	url := gatewayWith(t, func(o *Options) { o.MaxBodyBytes, o.MaxBodyBytesInFlight = 32<<20, 1<<20 }, dep("g", "g1", up.URL+"/v1"))
	send := func(size int) (int, string) {
		body := `{"model":"g","max_tokens":5,"messages":[{"role":"user","content":"` + strings.Repeat("a", size) + `"}]}`
		resp, err := http.Post(url+"/v1/messages", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if status, b := send(300 << 10); status != 200 {
		t.Errorf("300 KB, twice within the 1 MiB budget: %d %s", status, b)
	}
	if status, b := send(700 << 10); status != 503 || !strings.Contains(b, `"overloaded_error"`) {
		t.Errorf("700 KB, twice past the 1 MiB budget: %d %s", status, b)
	}
	if status, b := send(300 << 10); status != 200 {
		t.Errorf("300 KB after the refusal, whose hold was given back: %d %s", status, b)
	}
}

func TestUsageTail(t *testing.T) {
	t.Parallel()
	var tail usageTail
	body := bigResponse(100 << 10)
	for len(body) > 0 { // in reads of odd sizes
		n := min(len(body), 3001)
		tail.add(body[:n])
		body = body[n:]
	}
	if p, c, tot := tail.usage(); p != 7 || c != 0 || tot != 7 {
		t.Errorf("usage %d %d %d, want 7 0 7", p, c, tot)
	}
	if len(tail.b) > maxUsageTail {
		t.Errorf("tail holds %d bytes", len(tail.b))
	}
}
