package mockllm_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"mime/multipart"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// form builds a multipart/form-data body: fields as name, value pairs and,
// if file is not nil, a file part.
func form(t *testing.T, file []byte, fields ...string) (body []byte, contentType string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		if err := w.WriteField(fields[i], fields[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if file != nil {
		fw, err := w.CreateFormFile("file", "speech.wav")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write(file); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w.FormDataContentType()
}

func (b *testBackend) upload(t *testing.T, path string, body []byte, contentType string) reply {
	t.Helper()
	return b.call(t, "POST", path, string(body), "Content-Type", contentType)
}

func fingerprint(b []byte) string {
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%x", sum[:8])
}

func TestAudio(t *testing.T) {
	t.Parallel()
	a := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"whisper"}}))
	other := newBackend(t, instant(mockllm.Config{Name: "gpu-b", Models: []string{"whisper"}}))
	audio := bytes.Repeat([]byte("RIFF"), 16000) // 64,000 bytes: two seconds
	text := func(verb, backend string) string {
		return fmt.Sprintf("%s by %s of 64000 bytes of audio, fingerprint %s.", verb, backend, fingerprint(audio))
	}
	tests := []struct {
		name   string
		b      *testBackend
		path   string
		fields []string
		want   map[string]any
	}{
		{"transcription", a, "/v1/audio/transcriptions", []string{"model", "whisper", "language", "en", "temperature", "0.2"},
			map[string]any{"text": text("Transcript", "gpu-a"), "usage": map[string]any{"type": "duration", "seconds": 2.0}}},
		{"same audio on another backend", other, "/v1/audio/transcriptions", []string{"model", "whisper"},
			map[string]any{"text": text("Transcript", "gpu-b"), "usage": map[string]any{"type": "duration", "seconds": 2.0}}},
		{"no model: the first served", a, "/v1/audio/transcriptions", []string{"response_format", "text"},
			map[string]any{"text": text("Transcript", "gpu-a"), "usage": map[string]any{"type": "duration", "seconds": 2.0}}},
		{"translation", a, "/v1/audio/translations", []string{"model", "whisper", "prompt", "a b c"},
			map[string]any{"text": text("Translation", "gpu-a")}},
		{"verbose_json", a, "/v1/audio/transcriptions", []string{"model", "whisper", "response_format", "verbose_json", "language", "de"},
			map[string]any{"duration": "2", "language": "de", "text": text("Transcript", "gpu-a"), "words": nil,
				"segments": []any{map[string]any{"id": 0.0, "avg_logprob": 0.0, "compression_ratio": 1.0, "end": 2.0, "no_speech_prob": 0.0,
					"seek": 0.0, "start": 0.0, "temperature": 0.0, "text": text("Transcript", "gpu-a"), "tokens": []any{}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body, ct := form(t, audio, tt.fields...)
			got := tt.b.upload(t, tt.path, body, ct)
			if got.Status != 200 || got.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, Content-Type %q: %s", got.Status, got.Header.Get("Content-Type"), got.Body)
			}
			if diff := cmp.Diff(tt.want, decode(t, got.Body)); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("stream", func(t *testing.T) {
		t.Parallel()
		body, ct := form(t, audio, "model", "whisper", "stream", "true", "stream_include_usage", "true")
		got := a.upload(t, "/v1/audio/transcriptions", body, ct)
		evs := sseEvents(t, got.Body)
		want := text("Transcript", "gpu-a")
		n := len(strings.Fields(want))
		if len(evs) != n+2 || evs[len(evs)-1] != "[DONE]" {
			t.Fatalf("%d events, want %d chunks, usage and [DONE]: %q", len(evs), n, evs)
		}
		var sb strings.Builder
		for i, ev := range evs[:n] {
			c := decode(t, ev)
			choice := c["choices"].([]any)[0].(map[string]any)
			sb.WriteString(choice["delta"].(map[string]any)["content"].(string))
			wantReason := any(nil)
			if i == n-1 {
				wantReason = "stop"
			}
			if c["object"] != "transcription.chunk" || c["model"] != "whisper" || !strings.HasPrefix(c["id"].(string), "trsc-") || choice["finish_reason"] != wantReason {
				t.Errorf("chunk %d: %v", i, c)
			}
		}
		if sb.String() != want {
			t.Errorf("streamed %q, want %q", sb.String(), want)
		}
		u := decode(t, evs[n])
		wantUsage := map[string]any{"prompt_tokens": 2.0, "completion_tokens": float64(n), "total_tokens": float64(2 + n)}
		if diff := cmp.Diff(wantUsage, u["usage"]); diff != "" || len(u["choices"].([]any)) != 0 {
			t.Errorf("usage chunk %v (-want +got):\n%s", u, diff)
		}
	})
}

func TestAudioErrors(t *testing.T) {
	t.Parallel()
	b := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"whisper"}}))
	audio := []byte("RIFF....WAVEfmt ")
	good, goodCT := form(t, audio, "model", "whisper")
	noFile, noFileCT := form(t, nil, "model", "whisper")
	tests := []struct {
		name        string
		body        []byte
		contentType string
		wantStatus  int
		wantType    string
		wantMsg     string
	}{
		{"JSON instead of a form", []byte(`{"model":"whisper","file":"x"}`), "application/json", 400, "BadRequestError", "multipart/form-data"},
		{"no boundary", good, "multipart/form-data", 400, "BadRequestError", "boundary"},
		{"truncated form", good[:len(good)-20], goodCT, 400, "BadRequestError", "malformed multipart"},
		{"garbage", []byte("not a form at all"), goodCT, 400, "BadRequestError", "malformed multipart"},
		{"no file", noFile, noFileCT, 400, "BadRequestError", "file: Field required"},
		{"file as a plain field", must(form(t, nil, "model", "whisper", "file", "abc")), "", 400, "BadRequestError", "file-like"},
		{"unknown model", must(form(t, audio, "model", "gpt-4o-transcribe")), "", 404, "NotFoundError", "does not exist"},
		{"srt", must(form(t, audio, "response_format", "srt")), "", 400, "BadRequestError", "response_format"},
		{"verbose_json stream", must(form(t, audio, "response_format", "verbose_json", "stream", "true")), "", 400, "BadRequestError", "streaming"},
		{"usage without stream", must(form(t, audio, "stream_include_usage", "true")), "", 400, "BadRequestError", "stream=True"},
		{"bad temperature", must(form(t, audio, "temperature", "hot")), "", 400, "BadRequestError", "temperature"},
		{"bad stream", must(form(t, audio, "stream", "maybe")), "", 400, "BadRequestError", "stream"},
		{"empty file", must(form(t, []byte{}, "model", "whisper")), "", 400, "BadRequestError", "empty"},
	}
	t.Run("each", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				ct := tt.contentType
				if ct == "" { // the form's own boundary
					ct = "multipart/form-data; boundary=" + boundaryOf(t, tt.body)
				}
				got := b.upload(t, "/v1/audio/transcriptions", tt.body, ct)
				e, _ := decode(t, got.Body)["error"].(map[string]any)
				msg, _ := e["message"].(string)
				if got.Status != tt.wantStatus || e["type"] != tt.wantType || !strings.Contains(msg, tt.wantMsg) {
					t.Errorf("status %d, body %s; want %d %s with %q", got.Status, got.Body, tt.wantStatus, tt.wantType, tt.wantMsg)
				}
			})
		}
	})
	st := b.Stats()
	if st.Audio != int64(len(tests)) || st.Rejected != int64(len(tests)) {
		t.Errorf("stats: %d audio requests, %d rejected; want %d each", st.Audio, st.Rejected, len(tests))
	}
}

// must drops the content type of form's result; the caller derives it.
func must(body []byte, _ string) []byte { return body }

// boundaryOf reads the boundary from a multipart body's first line.
func boundaryOf(t *testing.T, body []byte) string {
	t.Helper()
	line, _, _ := bytes.Cut(body, []byte("\r\n"))
	b, ok := bytes.CutPrefix(line, []byte("--"))
	if !ok {
		t.Fatalf("no boundary in %q", line)
	}
	return string(b)
}

// TestAudioSizeLimits serves the bodies without a socket, and with a small
// file limit, since large bodies are slow under the race detector.
func TestAudioSizeLimits(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	s := mockllm.New(instant(mockllm.Config{Name: "gpu-a", Models: []string{"whisper"}, MaxAudioFileSize: limit}))
	defer s.Close()
	if mockllm.DefaultMaxAudioFileSize != 25<<20 {
		t.Errorf("default limit %d, want vLLM's 25 MiB", mockllm.DefaultMaxAudioFileSize)
	}
	serve := func(body io.Reader, ct string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequestWithContext(t.Context(), "POST", "/v1/audio/transcriptions", body)
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	tests := []struct {
		name       string
		size       int
		wantStatus int
		wantMsg    string
	}{
		{"the limit is accepted", limit, 200, "Transcript"},
		{"a byte more is vLLM's 400", limit + 1, 400, "Maximum file size exceeded (parameter=audio_filesize_mb, value=0.06)"},
	}
	for _, tt := range tests {
		body, ct := form(t, make([]byte, tt.size), "model", "whisper")
		if rec := serve(bytes.NewReader(body), ct); rec.Code != tt.wantStatus || !strings.Contains(rec.Body.String(), tt.wantMsg) {
			t.Errorf("%s: status %d, body %.300s; want %d with %q", tt.name, rec.Code, rec.Body.String(), tt.wantStatus, tt.wantMsg)
		}
	}
	if st := s.Stats(); st.Completed != 1 || st.Rejected != 1 {
		t.Errorf("stats %+v", st)
	}
}
