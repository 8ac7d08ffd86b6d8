package deployment

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/config"
)

func newDep(maxParallel int) *Deployment {
	return New(config.Model{Name: "g", ID: "d", Params: config.Params{
		UpstreamModel: "Qwen/Qwen3-14B", APIBase: "http://user:pw@gpu1:8000/v1/?token=x",
		APIKey: "sk-1", MaxParallelRequests: maxParallel,
	}}, FromConfig)
}

func TestDeploymentWire(t *testing.T) {
	d := New(config.Model{Name: "g", ID: "d", Params: config.Params{UpstreamModel: `a"b`, APIBase: "http://gpu1:8000/v1/", APIKey: "sk-1"}}, FromConfig)
	for e, want := range map[Endpoint]string{
		Chat: "http://gpu1:8000/v1/chat/completions", Completion: "http://gpu1:8000/v1/completions", Embedding: "http://gpu1:8000/v1/embeddings",
	} {
		if got := d.URL(e); got != want {
			t.Errorf("URL(%s) = %q, want %q", e, got, want)
		}
	}
	if d.AuthHeader() != "Bearer sk-1" || d.ModelJSON() != `"a\"b"` {
		t.Errorf("auth %q model %s", d.AuthHeader(), d.ModelJSON())
	}
	if got := newDep(0).URL(Chat); got != "http://user:pw@gpu1:8000/v1/chat/completions?token=x" {
		t.Errorf("URL with a query in api_base = %q", got)
	}
	if got := newDep(0).PublicAPIBase(); got != "http://gpu1:8000/v1/" {
		t.Errorf("PublicAPIBase = %q: credentials or query leaked", got)
	}
}

func TestInFlightIsExactUnderConcurrency(t *testing.T) {
	d := newDep(5)
	var wg sync.WaitGroup
	var mu sync.Mutex
	maxSeen := int64(0)
	for range 50 {
		wg.Go(func() {
			for range 200 {
				if d.TryAcquire(0) {
					mu.Lock()
					maxSeen = max(maxSeen, d.InFlight())
					mu.Unlock()
					d.Release()
				}
			}
		})
	}
	wg.Wait()
	if d.InFlight() != 0 || maxSeen > 5 {
		t.Errorf("in-flight %d after all released, max seen %d (cap 5)", d.InFlight(), maxSeen)
	}
	d.Release() // an extra release never goes negative
	if d.InFlight() != 0 {
		t.Errorf("in-flight %d after an extra Release", d.InFlight())
	}
}

func TestCooldown(t *testing.T) {
	d := newDep(0)
	now := time.Unix(100, 0)
	if !d.CoolDown(now, now.Add(10*time.Second)) {
		t.Error("first CoolDown did not report the start of a cooldown")
	}
	if d.CoolDown(now, now.Add(2*time.Second)) { // never shortens
		t.Error("a shorter CoolDown reported a new cooldown")
	}
	if d.CoolDown(now.Add(time.Second), now.Add(20*time.Second)) {
		t.Error("extending a running cooldown reported a new one")
	}
	if !d.CoolDown(now.Add(21*time.Second), now.Add(30*time.Second)) {
		t.Error("a cooldown after the last one ended was not reported as new")
	}
	d = newDep(0)
	d.CoolDown(now, now.Add(10*time.Second))
	if got := d.CooldownUntil(now); !got.Equal(now.Add(10 * time.Second)) {
		t.Errorf("CooldownUntil = %v", got)
	}
	if d.Available(now.Add(9*time.Second).UnixNano(), 0) || !d.Available(now.Add(10*time.Second).UnixNano(), 0) {
		t.Error("availability does not follow the cooldown timestamp")
	}
	if !d.CooldownUntil(now.Add(11 * time.Second)).IsZero() {
		t.Error("expired cooldown still reported")
	}
}

// TestScrubTransportError: a dial error that quotes the whole URL.
func TestScrubTransportError(t *testing.T) {
	d := New(config.Model{Name: "g", ID: "a", Params: config.Params{
		UpstreamModel: "m", APIKey: "sk-upstream-secret",
		APIBase: "http://user:hunter22@gpu:8000/v1?key=query-secret&x=1",
	}}, FromConfig)
	msg := "dial http://user:hunter22@gpu:8000/v1?key=query-secret&x=1 with Bearer sk-upstream-secret: refused (query-secret)"
	got := d.Scrub(msg)
	for _, secret := range []string{"sk-upstream-secret", "hunter22", "query-secret"} {
		if strings.Contains(got, secret) {
			t.Errorf("Scrub left %q in %q", secret, got)
		}
	}
	if want := "dial http://[redacted]@gpu:8000/v1?[redacted] with Bearer [redacted]: refused ([redacted])"; got != want {
		t.Errorf("Scrub = %q, want %q", got, want)
	}
}

// TestEndpointURLs: every endpoint's upstream URL, with vLLM's root-level
// tokenize and detokenize, a stored response's URL, and a query kept.
func TestEndpointURLs(t *testing.T) {
	t.Parallel()
	d := New(config.Model{Name: "g", ID: "a", Params: config.Params{APIBase: "http://gpu:8000/v1/?key=k"}}, FromConfig)
	for ep, want := range map[Endpoint]string{
		Chat:          "http://gpu:8000/v1/chat/completions?key=k",
		Rerank:        "http://gpu:8000/v1/rerank?key=k",
		Transcription: "http://gpu:8000/v1/audio/transcriptions?key=k",
		Tokenize:      "http://gpu:8000/tokenize?key=k",
		Detokenize:    "http://gpu:8000/detokenize?key=k",
		Responses:     "http://gpu:8000/v1/responses?key=k",
		Messages:      "http://gpu:8000/v1/messages?key=k",
	} {
		if got := d.URL(ep); got != want {
			t.Errorf("%s: %s, want %s", ep, got, want)
		}
	}
	if got := d.ResponseURL("../x/y"); got != "http://gpu:8000/v1/responses/..%2Fx%2Fy?key=k" {
		t.Errorf("ResponseURL: %s", got)
	}
}
