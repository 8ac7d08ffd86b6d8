package mockllm

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Faults are the misbehaviours the mock can be told to show. The zero value
// is a healthy server. Faults apply to inference requests (those Stats
// counts: chat, completions, embeddings, messages and count_tokens, POST
// /v1/responses, rerank and score, audio, tokenize and detokenize; not the
// retrieval or deletion of a stored response) except Refuse, which affects
// the whole server, and Unhealthy, which affects only /health.
// DropAfterChunks cuts every kind of stream after that many tokens, whatever
// events surround them. A request keeps the faults in force when it
// arrived until it ends.
type Faults struct {
	// ErrorRate is the share (0..1) of inference requests answered with
	// ErrorStatus at once, before any GPU slot is taken.
	ErrorRate float64 `json:"error_rate"`
	// ErrorStatus is the status of injected errors; 0 means 500.
	ErrorStatus int `json:"error_status"`
	// RetryAfter, when positive, is sent as Retry-After (whole seconds,
	// rounded up) with injected 429 and 503 errors.
	RetryAfter Duration `json:"retry_after"`
	// Hang accepts inference requests and never answers; the handler returns
	// when the client gives up or the server closes.
	Hang bool `json:"hang"`
	// DropAfterChunks, when positive, aborts the connection of a streaming
	// response after that many token chunks, so the client sees an
	// unexpected EOF. Streams of that many tokens or fewer end normally.
	DropAfterChunks int `json:"drop_after_chunks"`
	// Refuse closes the listener, so new connections are refused, and closes
	// idle ones; clearing it listens again on the same address. It needs a
	// server made by Start; under plain ServeHTTP it does nothing.
	Refuse bool `json:"refuse"`
	// ExtraLatency is added before the first token, while the request holds
	// its GPU slot, as a stalled GPU would.
	ExtraLatency Duration `json:"extra_latency"`
	// SlowFactor multiplies TTFT and TPOT; 0 and 1 both mean normal speed.
	SlowFactor float64 `json:"slow_factor"`
	// Unhealthy makes /health answer 503, as vLLM's does when its engine has
	// died. Inference requests are not affected.
	Unhealthy bool `json:"unhealthy"`
}

// Validate reports every value out of range, joined in one error.
func (f Faults) Validate() error {
	var errs []error
	if !(f.ErrorRate >= 0 && f.ErrorRate <= 1) { // also catches NaN
		errs = append(errs, fmt.Errorf("error_rate %v: want 0..1", f.ErrorRate))
	}
	if f.ErrorStatus != 0 && (f.ErrorStatus < 400 || f.ErrorStatus > 599) {
		errs = append(errs, fmt.Errorf("error_status %d: want 400..599 or 0", f.ErrorStatus))
	}
	if f.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("retry_after %v: must not be negative", f.RetryAfter))
	}
	if f.DropAfterChunks < 0 {
		errs = append(errs, fmt.Errorf("drop_after_chunks %d: must not be negative", f.DropAfterChunks))
	}
	if f.ExtraLatency < 0 {
		errs = append(errs, fmt.Errorf("extra_latency %v: must not be negative", f.ExtraLatency))
	}
	if !(f.SlowFactor >= 0) || math.IsInf(f.SlowFactor, 0) {
		errs = append(errs, fmt.Errorf("slow_factor %v: want a finite number >= 0", f.SlowFactor))
	}
	return errors.Join(errs...)
}

// status returns the status of injected errors.
func (f *Faults) status() int {
	if f.ErrorStatus == 0 {
		return http.StatusInternalServerError
	}
	return f.ErrorStatus
}

// scale applies SlowFactor to a configured delay; non-positive delays are none.
func (f *Faults) scale(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	if f.SlowFactor > 0 && f.SlowFactor != 1 {
		return time.Duration(float64(d) * f.SlowFactor)
	}
	return d
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("1.5s") and also reads a plain number of seconds (1.5 or "1.5").
// It is a flag.Value too, with the same syntax.
type Duration time.Duration

// String formats d as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// Set parses a duration string or a number of seconds.
func (d *Duration) Set(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a duration string or a number of seconds; null leaves
// d unchanged.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		return d.Set(s)
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration %s: want a string like \"1.5s\" or a number of seconds", b)
	}
	v, err := seconds(secs)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func parseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		return seconds(secs)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want a Go duration like \"1.5s\" or a number of seconds", s)
	}
	return Duration(v), nil
}

func seconds(secs float64) (Duration, error) {
	ns := secs * float64(time.Second)
	if math.IsNaN(ns) || math.Abs(ns) >= math.MaxInt64 {
		return 0, fmt.Errorf("duration %v seconds: out of range", secs)
	}
	return Duration(ns), nil
}

// retryAfter formats d as the whole seconds of a Retry-After header.
func retryAfter(d Duration) string {
	return strconv.FormatInt(int64(math.Ceil(time.Duration(d).Seconds())), 10)
}

// faultsUpdate is the body of PUT /mock/faults.
type faultsUpdate struct {
	Faults
	// RefuseFor, when positive, refuses connections for that long (Refuse is
	// implied) and then reopens the listener by itself.
	RefuseFor Duration `json:"refuse_for"`
}

// getFaults answers GET /mock/faults.
func (s *Server) getFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Faults())
}

// putFaults answers PUT /mock/faults: the body replaces the faults in force.
func (s *Server) putFaults(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	var u faultsUpdate
	if err := dec.Decode(&u); err != nil {
		writeError(w, badRequest("invalid faults: "+err.Error(), ""))
		return
	}
	err := u.Faults.Validate()
	if u.RefuseFor < 0 {
		err = errors.Join(err, fmt.Errorf("refuse_for %v: must not be negative", u.RefuseFor))
	}
	if err != nil {
		writeError(w, badRequest("invalid faults: "+strings.ReplaceAll(err.Error(), "\n", "; "), ""))
		return
	}
	if u.RefuseFor > 0 {
		u.Refuse = true
	}
	if err := s.setFaults(u.Faults, time.Duration(u.RefuseFor)); err != nil {
		writeError(w, apiError{status: http.StatusInternalServerError, typ: "InternalServerError", msg: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, s.Faults())
}

// getStats answers GET /mock/stats.
func (s *Server) getStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}
