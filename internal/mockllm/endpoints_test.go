package mockllm_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// newEndpoint is one request to each endpoint added for issue 16.
type newEndpoint struct {
	name, path, body, contentType string
}

func newEndpoints(t *testing.T) []newEndpoint {
	audio, ct := form(t, []byte("RIFF"), "model", "m")
	return []newEndpoint{
		{"messages", "/v1/messages", `{"model":"m","max_tokens":3,"messages":[{"role":"user","content":"hi"}]}`, ""},
		{"messages stream", "/v1/messages", `{"model":"m","max_tokens":3,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, ""},
		{"count_tokens", "/v1/messages/count_tokens", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, ""},
		{"responses", "/v1/responses", `{"model":"m","input":"hi","max_output_tokens":3}`, ""},
		{"responses stream", "/v1/responses", `{"model":"m","input":"hi","stream":true}`, ""},
		{"rerank", "/v1/rerank", `{"model":"m","query":"q","documents":["d"]}`, ""},
		{"score", "/score", `{"model":"m","text_1":"q","text_2":"d"}`, ""},
		{"transcription", "/v1/audio/transcriptions", string(audio), ct},
		{"translation", "/v1/audio/translations", string(audio), ct},
		{"tokenize", "/tokenize", `{"model":"m","prompt":"hi"}`, ""},
		{"detokenize", "/detokenize", `{"model":"m","tokens":[1]}`, ""},
	}
}

func (e newEndpoint) header() []string {
	if e.contentType == "" {
		return nil
	}
	return []string{"Content-Type", e.contentType}
}

func TestNewEndpointsStats(t *testing.T) {
	t.Parallel()
	b := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"m"}}))
	eps := newEndpoints(t)
	for _, e := range eps {
		if got := b.call(t, "POST", e.path, e.body, e.header()...); got.Status != 200 {
			t.Errorf("%s: status %d: %s", e.name, got.Status, got.Body)
		}
	}
	want := mockllm.Stats{
		Requests: int64(len(eps)), Completed: int64(len(eps)),
		Messages: 2, Responses: 2, Rerank: 2, Audio: 2, Tokenize: 3,
		// prompt: messages 1+1, responses 1+1, rerank 2, score 2, audio 1+1;
		// output: messages 3+3, responses 3+16, audio the 10 words of each
		// text ("Transcript by gpu-a of 4 bytes of audio, fingerprint ….")
		PromptTokens: 10, GenerationTokens: 3 + 3 + 3 + 16 + 2*10,
	}
	if diff := cmp.Diff(want, withoutLast(b.Stats())); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

func TestNewEndpointsOnEngine(t *testing.T) {
	t.Parallel()
	b := newBackend(t, mockllm.Config{Name: "gpu-a", Models: []string{"m"}, Engine: &mockllm.EngineConfig{}, SpeedUp: 1000})
	eps := newEndpoints(t)
	for _, e := range eps {
		if got := b.call(t, "POST", e.path, e.body, e.header()...); got.Status != 200 {
			t.Errorf("%s: status %d: %s", e.name, got.Status, got.Body)
		}
	}
	if st := b.Stats(); st.Completed != int64(len(eps)) || st.Running != 0 || st.Waiting != 0 {
		t.Errorf("Stats %+v", st)
	}
}

func TestNewEndpointsInjectedErrors(t *testing.T) {
	t.Parallel()
	b := newBackend(t, instant(mockllm.Config{Name: "gpu-x", Models: []string{"m"},
		Faults: mockllm.Faults{ErrorRate: 1, ErrorStatus: 503, RetryAfter: mockllm.Duration(1e9)}}))
	eps := newEndpoints(t)
	for _, e := range eps {
		got := b.call(t, "POST", e.path, e.body, e.header()...)
		if got.Status != 503 || got.Header.Get("Retry-After") != "1" {
			t.Errorf("%s: status %d, Retry-After %q", e.name, got.Status, got.Header.Get("Retry-After"))
		}
		m := decode(t, got.Body)
		e2, _ := m["error"].(map[string]any)
		msg, _ := e2["message"].(string)
		if e2["type"] != "ServiceUnavailableError" || !strings.Contains(msg, "gpu-x") {
			t.Errorf("%s: error %v", e.name, m)
		}
		if anthropic := strings.HasPrefix(e.path, "/v1/messages"); anthropic != (m["type"] == "error") {
			t.Errorf("%s: envelope %v", e.name, m)
		}
	}
	if st := b.Stats(); st.Requests != int64(len(eps)) || st.Failed != int64(len(eps)) {
		t.Errorf("Stats %+v", st)
	}
}

// TestNewEndpointsHang checks that a hang holds each endpoint until the
// client goes away, in a synctest bubble so no timer is needed.
func TestNewEndpointsHang(t *testing.T) {
	t.Parallel()
	eps := newEndpoints(t)
	synctest.Test(t, func(t *testing.T) {
		s := mockllm.New(instant(mockllm.Config{Models: []string{"m"}, Faults: mockllm.Faults{Hang: true}}))
		defer s.Close()
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		recs := make([]*httptest.ResponseRecorder, len(eps))
		for i, e := range eps {
			req := httptest.NewRequestWithContext(ctx, "POST", e.path, strings.NewReader(e.body))
			if e.contentType != "" {
				req.Header.Set("Content-Type", e.contentType)
			}
			recs[i] = httptest.NewRecorder()
			wg.Go(func() { s.ServeHTTP(recs[i], req) })
		}
		synctest.Wait()
		for i, rec := range recs {
			if rec.Flushed || rec.Body.Len() > 0 {
				t.Errorf("%s answered while hung: %d %s", eps[i].name, rec.Code, rec.Body)
			}
		}
		cancel()
		wg.Wait()
		if st := s.Stats(); st.Cancelled != int64(len(eps)) {
			t.Errorf("Stats %+v, want %d cancelled", st, len(eps))
		}
	})
}

// TestNewStreamsDrop checks that DropAfterChunks cuts each new API's stream
// after that many tokens, whatever the events around them.
func TestNewStreamsDrop(t *testing.T) {
	t.Parallel()
	b := newBackend(t, instant(mockllm.Config{Models: []string{"m"}, Faults: mockllm.Faults{DropAfterChunks: 2}}))
	audio, ct := form(t, []byte("RIFF"), "model", "m", "stream", "true")
	tests := []struct {
		name, path, body, contentType, delta string
	}{
		{"messages", "/v1/messages", `{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, "application/json", `"content_block_delta"`},
		{"responses", "/v1/responses", `{"model":"m","input":"hi","stream":true}`, "application/json", `"response.output_text.delta"`},
		{"transcription", "/v1/audio/transcriptions", string(audio), ct, `"transcription.chunk"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequestWithContext(t.Context(), "POST", b.url+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.contentType)
			resp, err := b.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			events, err := readEvents(resp.Body)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("stream ended with %v, want an unexpected EOF", err)
			}
			n := 0
			for _, ev := range events {
				if strings.Contains(ev, tt.delta) {
					n++
				}
			}
			if n != 2 {
				t.Errorf("%d token events before the cut, want 2: %q", n, events)
			}
		})
	}
}
