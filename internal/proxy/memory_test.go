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
	d, _ := rt.Deployment("e1")
	if _, n := d.MinuteUsage(rt.Now().UnixNano()); n != 7 {
		t.Errorf("%d tokens counted, want the usage's 7", n)
	}
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
	url := gatewayWith(t, func(o *Options) { o.MaxBodyBytes, o.MaxBodyBytesInFlight = 1<<20, 1<<20 }, dep("g", "g1", up.URL+"/v1"))
	addr := strings.TrimPrefix(url, "http://")

	// A client announces 800 KB and sends it slowly: it holds 800 KB of
	// the 1 MiB budget from its first byte.
	big := `{"model":"g","input":"` + strings.Repeat("a", 800<<10) + `"}`
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(big), big[:100])

	// Another 300 KB request does not fit: 503 with Retry-After, at once.
	second := `{"model":"g","input":"` + strings.Repeat("b", 300<<10) + `"}`
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err = http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(second))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 503 || time.Now().After(deadline) {
			break // until the slow client's headers have been read
		}
	}
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("second request: %d Retry-After %q, want 503 with Retry-After 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// The slow client finishes: served, and its bytes are given back.
	if _, err := io.WriteString(slow, big[100:]); err != nil {
		t.Fatal(err)
	}
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	first, err := io.ReadAll(io.LimitReader(slow, 12))
	if err != nil || string(first) != "HTTP/1.1 200" {
		t.Fatalf("the slow client got %q, %v", first, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err = http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(second))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 || time.Now().After(deadline) {
			break // until the first request has ended and released its hold
		}
	}
	if resp.StatusCode != 200 {
		t.Errorf("after the first request ended: %d", resp.StatusCode)
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
