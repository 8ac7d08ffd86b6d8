package mockllm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
)

// vLLM's speech-to-text endpoints (vllm/entrypoints/openai/speech_to_text):
// POST /v1/audio/transcriptions and /v1/audio/translations, a
// multipart/form-data body with the audio in "file" and the options as
// fields (model, language, prompt, response_format, temperature, stream,
// stream_include_usage). As in vLLM, model may be left out (the first
// served model answers), response_format is json (the default), text or
// verbose_json (srt and vtt are refused), and every format is answered with
// JSON. A file over Config.MaxAudioFileSize (25 MiB by default, as vLLM's
// VLLM_MAX_AUDIO_CLIP_FILESIZE_MB) is a 400 as in vLLM; a body over the
// mock's 32 MiB request limit is a 413.
//
// The mock does not decode audio: the text names the backend, the file's
// size and the first 8 bytes of its SHA-256 ("Transcript by gpu-a of 64000
// bytes of audio, fingerprint 8c2e…."), so equal files give equal texts on
// every backend; the duration is the size as 16 kHz 16-bit mono PCM
// (32,000 bytes a second, at least one second). The request's prompt
// tokens are one per second of audio plus the words of its prompt field;
// its output tokens are the words of the text, as a chat reply's.

// audioBytesPerSecond is the mock's audio rate: 16 kHz 16-bit mono.
const audioBytesPerSecond = 32000

// audioTask tells transcription and translation apart.
type audioTask struct {
	verb   string // the text's first word
	id     string // id prefix of stream chunks
	object string // object of stream chunks
	usage  bool   // the JSON answer carries usage (transcriptions only)
}

// audioRequest is a parsed speech-to-text form.
type audioRequest struct {
	m            *modelState
	size         int64
	hash         uint64
	language     string
	prompt       string
	format       string
	temperature  float64
	stream       bool
	includeUsage bool
}

func (s *Server) transcriptions(w http.ResponseWriter, r *http.Request) {
	s.speechToText(w, r, audioTask{verb: "Transcript", id: "trsc-", object: "transcription.chunk", usage: true})
}

func (s *Server) translations(w http.ResponseWriter, r *http.Request) {
	s.speechToText(w, r, audioTask{verb: "Translation", id: "trsl-", object: "translation.chunk"})
}

func (s *Server) speechToText(w http.ResponseWriter, r *http.Request, task audioTask) {
	body, ok := s.admit(w, r, &s.stats.audio)
	if !ok {
		return
	}
	a, e := s.parseAudio(r.Header.Get("Content-Type"), body)
	if e != nil {
		s.reject(w, *e)
		return
	}
	seconds := max(1, (a.size+audioBytesPerSecond-1)/audioBytesPerSecond)
	text := fmt.Sprintf("%s by %s of %d bytes of audio, fingerprint %016x.", task.verb, s.cfg.Name, a.size, a.hash)
	words := appendWords(nil, text)
	g := generation{m: a.m, n: len(words), reason: "stop", stream: a.stream, usage: a.includeUsage}
	g.prompt = int(seconds) + countWords(a.prompt)
	if s.engine != nil {
		for i := range seconds {
			g.ids = append(g.ids, a.hash^uint64(i)*0x9e3779b97f4a7c15)
		}
		g.ids = appendWordIDs(g.ids, a.prompt)
		g.prompt = len(g.ids)
	}
	if e := s.checkFit(&g, g.n, "file"); e != nil {
		s.reject(w, *e)
		return
	}
	f := s.faults.Load()
	if !s.inject(w, r, f) {
		return
	}
	if g.stream {
		s.stream(w, r, &g, f, &audioEncoder{s: s, g: &g, task: task, words: words})
		return
	}
	if !s.run(r, &g, f) {
		return
	}
	var v any
	switch {
	case a.format == "verbose_json":
		v = verboseTranscript(a, text, float64(a.size)/audioBytesPerSecond)
	case task.usage:
		v = map[string]any{"text": text, "usage": map[string]any{"type": "duration", "seconds": seconds}}
	default:
		v = map[string]string{"text": text}
	}
	writeJSON(w, http.StatusOK, v)
	s.end(&g, g.n, &s.stats.completed)
}

// parseAudio reads a speech-to-text form, checking it in vLLM's order:
// the form, the model, the response format, the file's size.
func (s *Server) parseAudio(contentType string, body []byte) (*audioRequest, *apiError) {
	bad := func(param, format string, args ...any) *apiError {
		e := badRequest(fmt.Sprintf(format, args...), param)
		return &e
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, bad("", "request body: want multipart/form-data with a boundary, got Content-Type %q", contentType)
	}
	a := &audioRequest{format: "json"}
	fields := map[string]string{}
	haveFile := false
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for parts := 0; ; parts++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) && parts == 0 {
			return nil, bad("", "malformed multipart body: no part with boundary %q", params["boundary"])
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, bad("", "malformed multipart body: %v", err)
		}
		name := part.FormName()
		if name == "file" {
			if part.FileName() == "" {
				return nil, bad("file", "Expected 'file' to be a file-like object, not 'str'.")
			}
			h := sha256.New()
			n, err := io.Copy(h, part)
			if err != nil {
				return nil, bad("file", "malformed multipart body: %v", err)
			}
			a.size, a.hash, haveFile = n, binary.BigEndian.Uint64(h.Sum(nil)), true
			continue
		}
		v, err := io.ReadAll(io.LimitReader(part, 1<<16+1))
		if err != nil {
			return nil, bad(name, "malformed multipart body: %v", err)
		}
		if len(v) > 1<<16 {
			return nil, bad(name, "%s: longer than 64 KiB", name)
		}
		fields[name] = string(v)
	}
	if !haveFile {
		return nil, bad("file", "file: Field required")
	}
	a.language, a.prompt = fields["language"], fields["prompt"]
	if v, ok := fields["response_format"]; ok {
		a.format = v
	}
	if v, ok := fields["temperature"]; ok {
		if a.temperature, err = strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil {
			return nil, bad("temperature", "temperature: %q is not a number", v)
		}
	}
	for _, b := range [...]struct {
		name string
		dst  *bool
	}{{"stream", &a.stream}, {"stream_include_usage", &a.includeUsage}} { // in order, so two bad ones give one answer
		if v, ok := fields[b.name]; ok {
			if *b.dst, err = strconv.ParseBool(strings.TrimSpace(v)); err != nil {
				return nil, bad(b.name, "%s: %q is not a boolean", b.name, v)
			}
		}
	}
	if a.includeUsage && !a.stream {
		return nil, bad("stream_include_usage", "Stream options can only be defined when `stream=True`.")
	}
	m, e := s.model(fields["model"])
	if e != nil {
		return nil, e
	}
	a.m = m
	switch a.format {
	case "json", "text", "verbose_json":
	default:
		return nil, bad("response_format", "Currently only support response_format: `text`, `json` or `verbose_json`")
	}
	if a.format == "verbose_json" && a.stream {
		return nil, bad("response_format", "verbose_json format doesn't support streaming case")
	}
	if a.size > s.cfg.MaxAudioFileSize {
		return nil, bad("audio_filesize_mb", "Maximum file size exceeded (parameter=audio_filesize_mb, value=%.2f)", float64(a.size)/(1<<20))
	}
	if a.size == 0 {
		return nil, bad("file", "Invalid or unsupported audio file: it is empty")
	}
	return a, nil
}

type transcriptSegment struct {
	ID               int     `json:"id"`
	AvgLogprob       float64 `json:"avg_logprob"`
	CompressionRatio float64 `json:"compression_ratio"`
	End              float64 `json:"end"`
	NoSpeechProb     float64 `json:"no_speech_prob"`
	Seek             int     `json:"seek"`
	Start            float64 `json:"start"`
	Temperature      float64 `json:"temperature"`
	Text             string  `json:"text"`
	Tokens           []int   `json:"tokens"`
}

// verboseTranscript is response_format verbose_json: the text as one
// segment spanning the audio.
func verboseTranscript(a *audioRequest, text string, seconds float64) map[string]any {
	lang := a.language
	if lang == "" {
		lang = "en"
	}
	return map[string]any{
		"duration": strconv.FormatFloat(seconds, 'f', -1, 64),
		"language": lang,
		"text":     text,
		"segments": []transcriptSegment{{
			CompressionRatio: 1, End: seconds, Temperature: a.temperature, Text: text, Tokens: []int{},
		}},
		"words": nil,
	}
}

// audioEncoder renders vLLM's speech-to-text stream: chat-like chunks of
// object transcription.chunk (or translation.chunk) whose delta carries a
// word, the last with finish_reason "stop", then a usage chunk when
// stream_include_usage is set, then [DONE].
type audioEncoder struct {
	s     *Server
	g     *generation
	task  audioTask
	words []string
	head  []byte
}

func (e *audioEncoder) open(b []byte) []byte {
	h := make([]byte, 0, 160)
	h = append(h, `data: {"id":"`...)
	h = append(h, newID(e.task.id)...)
	h = append(h, `","object":"`...)
	h = append(h, e.task.object...)
	h = append(h, `","created":`...)
	h = strconv.AppendInt(h, e.s.cfg.Now().Unix(), 10)
	h = append(h, `,"model":`...)
	h = append(h, e.g.m.nameJSON...)
	e.head = h
	return b
}

func (e *audioEncoder) token(b []byte, i int, last bool) []byte {
	w := e.words[i]
	if i > 0 {
		w = " " + w
	}
	b = append(b, e.head...)
	b = append(b, `,"choices":[{"delta":{"content":`...)
	b = append(b, jsonString(w)...)
	b = append(b, `},"finish_reason":`...)
	if last {
		b = append(b, `"stop"`...)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, ",\"stop_reason\":null}]}\n\n"...)
	if !last {
		return b
	}
	if e.g.usage {
		u, _ := json.Marshal(usage{PromptTokens: e.g.prompt, CompletionTokens: e.g.n, TotalTokens: e.g.prompt + e.g.n})
		b = append(b, e.head...)
		b = append(b, `,"choices":[],"usage":`...)
		b = append(b, u...)
		b = append(b, "}\n\n"...)
	}
	return append(b, sseDone...)
}
