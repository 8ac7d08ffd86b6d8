package mockllm

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/semaphore"
)

// maxBody bounds the inference request bodies the mock reads.
const maxBody = 32 << 20

// Server is one simulated vLLM server. Make it with New (and serve it with
// any http.Server or httptest.NewServer) or with Start, which also owns the
// listener and so can refuse connections. Its methods are safe for
// concurrent use.
type Server struct {
	cfg       Config // defaults applied; never changed after New
	mux       *http.ServeMux
	slots     *semaphore.Weighted // the GPU's sequence slots, granted in FIFO order
	models    map[string]*modelState
	text      tokenText
	nameJSON  []byte   // cfg.Name as a JSON string
	backend   []string // the X-Mock-Backend header value
	stats     counters
	last      atomic.Pointer[RecordedRequest]
	faults    atomic.Pointer[Faults]
	registry  *prometheus.Registry
	engine    *engine                             // nil: the simple model
	vocab     boundedMap[uint64, string]          // long words /tokenize has seen, by id
	responses boundedMap[string, *storedResponse] // stored responses of the Responses API, by id
	ttft      *prometheus.HistogramVec            // vllm:time_to_first_token_seconds by model_name

	randMu sync.Mutex
	rand   *rand.Rand

	// life ends when the server closes. It is the server's lifetime, not a
	// request's, and bounds what outlives a request: the refuse_for timer and
	// hung handlers.
	life context.Context
	stop context.CancelFunc

	mu        sync.Mutex // guards the fields below and serialises fault changes
	srv       *http.Server
	addr      string       // where Start listens (resolved port)
	url       string       // URL of addr
	ln        net.Listener // nil while refusing
	gen       uint64       // counts fault changes, so a stale refuse_for timer does nothing
	closed    bool
	stopAfter func() bool // undoes Start's context.AfterFunc
}

// New returns a server for cfg with defaults applied. It does not listen:
// serve it with httptest.NewServer(s) or an http.Server, or use Start. It
// panics on a configuration Config.Validate rejects (an unknown engine
// profile), which Start reports as an error instead.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	var ec EngineConfig
	if cfg.Engine != nil {
		var err error
		if ec, err = cfg.Engine.resolve(); err != nil {
			panic("mockllm.New: " + err.Error())
		}
		*cfg.Engine = ec
	}
	s := &Server{
		cfg:      cfg,
		mux:      http.NewServeMux(),
		slots:    semaphore.NewWeighted(int64(cfg.MaxConcurrent)),
		models:   make(map[string]*modelState, len(cfg.Models)),
		text:     newTokenText(cfg.Name),
		nameJSON: jsonString(cfg.Name),
		backend:  []string{cfg.Name},
		registry: prometheus.NewRegistry(),
		rand:     cfg.Rand,
	}
	s.vocab.limit, s.responses.limit = maxVocab, maxStoredResponses
	for _, name := range cfg.Models {
		s.models[name] = &modelState{name: name, nameJSON: jsonString(name)}
	}
	f := cfg.Faults
	s.faults.Store(&f)
	s.life, s.stop = context.WithCancel(context.Background())
	s.ttft = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vllm:time_to_first_token_seconds",
		Help:    "Histogram of time to first token in seconds.",
		Buckets: ttftBuckets,
	}, []string{"model_name"})
	s.registry.MustRegister(collector{s}, s.ttft)
	if cfg.Engine != nil {
		s.text = newEngineTokenText(cfg.Name)
		s.engine = newEngine(s, ec)
	}

	s.mux.HandleFunc("POST /v1/chat/completions", s.chatCompletions)
	s.mux.HandleFunc("POST /v1/completions", s.completions)
	s.mux.HandleFunc("POST /v1/embeddings", s.embeddings)
	s.mux.HandleFunc("POST /v1/messages", s.messages)
	s.mux.HandleFunc("POST /v1/messages/count_tokens", s.countTokens)
	s.mux.HandleFunc("POST /v1/responses", s.createResponse)
	s.mux.HandleFunc("GET /v1/responses/{id}", s.retrieveResponse)
	s.mux.HandleFunc("DELETE /v1/responses/{id}", s.deleteResponse)
	s.mux.HandleFunc("POST /v1/responses/{id}/cancel", s.cancelResponse)
	s.mux.HandleFunc("POST /rerank", s.rerank)
	s.mux.HandleFunc("POST /v1/rerank", s.rerank)
	s.mux.HandleFunc("POST /v2/rerank", s.rerank)
	s.mux.HandleFunc("POST /score", s.score)
	s.mux.HandleFunc("POST /v1/score", s.score)
	s.mux.HandleFunc("POST /v1/audio/transcriptions", s.transcriptions)
	s.mux.HandleFunc("POST /v1/audio/translations", s.translations)
	s.mux.HandleFunc("POST /tokenize", s.tokenize)
	s.mux.HandleFunc("POST /detokenize", s.detokenize)
	s.mux.HandleFunc("GET /v1/models", s.listModels)
	s.mux.HandleFunc("GET /health", s.health)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /mock/faults", s.getFaults)
	s.mux.HandleFunc("PUT /mock/faults", s.putFaults)
	s.mux.HandleFunc("GET /mock/stats", s.getStats)
	s.mux.HandleFunc("/", notFound)
	return s
}

// Start listens on addr (such as "127.0.0.1:0") and serves a New(cfg) server
// in the background until ctx ends or Close is called. Only a started server
// can refuse connections (Faults.Refuse), since that closes its listener.
func Start(ctx context.Context, addr string, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := New(cfg)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addr = ln.Addr().String()
	s.url = "http://" + dialable(ln.Addr())
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
	}
	go s.serve(s.srv, ln)
	if err := s.applyRefuseLocked(s.faults.Load().Refuse); err != nil {
		s.cfg.Logger.Warn("mockllm: refuse at start", "backend", s.cfg.Name, "err", err)
	}
	s.stopAfter = context.AfterFunc(ctx, func() { _ = s.Close() })
	return s, nil
}

func (s *Server) serve(srv *http.Server, ln net.Listener) {
	err := srv.Serve(ln)
	if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		s.cfg.Logger.Warn("mockllm: serve", "backend", s.cfg.Name, "err", err)
	}
}

// URL returns the base URL ("http://127.0.0.1:PORT") of a server made by
// Start, and "" for one made by New.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// dialable is addr with an unspecified IP (from ":0") replaced by loopback.
func dialable(addr net.Addr) string {
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
	}
	return addr.String()
}

// Close stops a started server at once, dropping open connections, and ends
// hung requests and timers of any server. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.stop()
	srv, stopAfter := s.srv, s.stopAfter
	s.mu.Unlock()
	if stopAfter != nil {
		stopAfter()
	}
	if srv == nil {
		return nil
	}
	if err := srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close %s: %w", s.cfg.Name, err)
	}
	return nil
}

// ServeHTTP answers one request. Every response carries X-Mock-Backend.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header()["X-Mock-Backend"] = s.backend
	s.mux.ServeHTTP(w, r)
}

// Faults returns the faults in force.
func (s *Server) Faults() Faults { return *s.faults.Load() }

// SetFaults replaces the faults in force; requests already running keep the
// ones they started with. Refuse set here lasts until cleared. Values out of
// range are taken at their nearest sense (an ErrorRate above 1 fails every
// request); Faults.Validate reports them.
func (s *Server) SetFaults(f Faults) {
	if err := s.setFaults(f, 0); err != nil {
		s.cfg.Logger.Warn("mockllm: set faults", "backend", s.cfg.Name, "err", err)
	}
}

// setFaults stores f and opens or closes the listener to match f.Refuse. A
// positive refuseFor clears Refuse again after that long, unless the faults
// have been changed in the meantime.
func (s *Server) setFaults(f Faults, refuseFor time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.Store(&f)
	s.gen++
	err := s.applyRefuseLocked(f.Refuse)
	if f.Refuse && refuseFor > 0 && !s.closed {
		go s.reopenAfter(s.gen, refuseFor)
	}
	return err
}

func (s *Server) reopenAfter(gen uint64, d time.Duration) {
	if err := s.cfg.Sleep(s.life, d); err != nil {
		return // closed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen || s.closed {
		return
	}
	f := *s.faults.Load()
	f.Refuse = false
	s.faults.Store(&f)
	s.gen++
	if err := s.applyRefuseLocked(false); err != nil {
		s.cfg.Logger.Warn("mockllm: end refuse", "backend", s.cfg.Name, "err", err)
	}
}

// applyRefuseLocked closes or reopens the listener of a started server.
func (s *Server) applyRefuseLocked(refuse bool) error {
	if s.srv == nil || s.closed {
		return nil
	}
	switch {
	case refuse && s.ln != nil:
		err := s.ln.Close()
		s.ln = nil
		s.srv.SetKeepAlivesEnabled(false) // also closes idle connections
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("close listener %s: %w", s.addr, err)
		}
	case !refuse && s.ln == nil:
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("reopen %s: %w", s.addr, err)
		}
		s.ln = ln
		s.srv.SetKeepAlivesEnabled(true)
		go s.serve(s.srv, ln)
	}
	return nil
}

// authorized reports whether r carries the configured API key.
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.APIKey == "" {
		return true
	}
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) < len(prefix) || h[:len(prefix)] != prefix {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(h[len(prefix):]), []byte(s.cfg.APIKey)) == 1
}

// unauthorized writes vLLM's answer to a missing or wrong key, which is not
// the usual envelope but {"error":"Unauthorized"}.
func unauthorized(w http.ResponseWriter) {
	writeRaw(w, http.StatusUnauthorized, []byte(`{"error":"Unauthorized"}`))
}

// admit reads, counts and records an inference request and checks its key.
// It returns false after answering the request itself.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, endpoint *atomic.Int64) ([]byte, bool) {
	return s.admitAs(w, r, endpoint, writeError)
}

// admitAs is admit for an API with its own error envelope.
func (s *Server) admitAs(w http.ResponseWriter, r *http.Request, endpoint *atomic.Int64, werr errorWriter) ([]byte, bool) {
	s.stats.requests.Add(1)
	endpoint.Add(1)
	body, err := readBody(w, r)
	s.record(r, body)
	if err != nil {
		s.rejectAs(w, *err, werr)
		return nil, false
	}
	if !s.authorized(r) {
		s.stats.rejected.Add(1)
		unauthorized(w)
		return nil, false
	}
	return body, true
}

// inject applies the request-level faults: a hang or an injected error. It
// returns false after the request has been dealt with.
func (s *Server) inject(w http.ResponseWriter, r *http.Request, f *Faults) bool {
	return s.injectAs(w, r, f, writeError)
}

// injectAs is inject for an API with its own error envelope.
func (s *Server) injectAs(w http.ResponseWriter, r *http.Request, f *Faults, werr errorWriter) bool {
	if f.Hang {
		select {
		case <-r.Context().Done():
			s.stats.cancelled.Add(1)
			return false
		case <-s.life.Done():
			s.stats.cancelled.Add(1)
			panic(http.ErrAbortHandler) // drop the connection rather than answer
		}
	}
	if f.ErrorRate <= 0 || (f.ErrorRate < 1 && !s.draw(f.ErrorRate)) {
		return true
	}
	s.stats.failed.Add(1)
	status := f.status()
	if f.RetryAfter > 0 && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
		w.Header().Set("Retry-After", retryAfter(f.RetryAfter))
	}
	werr(w, apiError{
		status: status,
		typ:    errorType(status),
		msg:    fmt.Sprintf("mock backend %s: injected fault (%d %s)", s.cfg.Name, status, http.StatusText(status)),
	})
	return false
}

// draw reports true with probability p.
func (s *Server) draw(p float64) bool {
	s.randMu.Lock()
	v := s.rand.Float64()
	s.randMu.Unlock()
	return v < p
}

// model resolves a request's model name; "" means the first served model,
// as vLLM does.
func (s *Server) model(name string) (*modelState, *apiError) {
	if name == "" {
		return s.models[s.cfg.Models[0]], nil
	}
	if m, ok := s.models[name]; ok {
		return m, nil
	}
	return nil, &apiError{
		status: http.StatusNotFound,
		typ:    "NotFoundError",
		msg:    "The model `" + name + "` does not exist.",
		param:  "model",
	}
}

// health answers GET /health: 200 with an empty body, or 503 when Unhealthy.
func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	if s.faults.Load().Unhealthy {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

type modelCard struct {
	ID          string  `json:"id"`
	Object      string  `json:"object"`
	Created     int64   `json:"created"`
	OwnedBy     string  `json:"owned_by"`
	Root        string  `json:"root"`
	Parent      *string `json:"parent"`
	MaxModelLen int     `json:"max_model_len"`
}

type modelList struct {
	Object string      `json:"object"`
	Data   []modelCard `json:"data"`
}

// listModels answers GET /v1/models with the served names, as vLLM does.
func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		unauthorized(w)
		return
	}
	created := s.cfg.Now().Unix()
	list := modelList{Object: "list", Data: make([]modelCard, 0, len(s.cfg.Models))}
	for _, name := range s.cfg.Models {
		list.Data = append(list.Data, modelCard{
			ID: name, Object: "model", Created: created, OwnedBy: "vllm",
			Root: name, MaxModelLen: s.cfg.MaxModelLen,
		})
	}
	writeJSON(w, http.StatusOK, list)
}

// notFound answers unknown paths as vLLM's FastAPI does.
func notFound(w http.ResponseWriter, _ *http.Request) {
	writeRaw(w, http.StatusNotFound, []byte(`{"detail":"Not Found"}`))
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s) // a string always encodes
	return b
}
