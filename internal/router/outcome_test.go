package router

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		status int
		err    error
		msg    string
		want   Class
	}{
		{200, nil, "", Success},
		{400, nil, "bad field", ClientError},
		{403, nil, "", ClientError},
		{413, nil, "", ClientError},
		{422, nil, "", ClientError},
		{400, nil, "This model's maximum context length is 32768 tokens. However, you requested 40000 tokens", ContextWindow},
		{400, nil, "Error code: context_length_exceeded", ContextWindow},
		{400, nil, "Your request was rejected as a result of our content_policy_violation", ContentPolicy},
		{429, nil, "", RateLimited},
		{401, nil, "", AuthError},
		{404, nil, "The model `x` does not exist.", NotFound},
		{408, nil, "", Timeout},
		{500, nil, "", ServerError},
		{503, nil, "", ServerError},
		{0, errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), "", ConnectionError},
		{0, errors.New("read: connection reset by peer"), "", ConnectionError},
		{0, fmt.Errorf("stream_timeout: %w", ErrTimeout), "", Timeout},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %v %s", tt.status, tt.err, tt.msg), func(t *testing.T) {
			if got := Classify(tt.status, tt.err, tt.msg); got != tt.want {
				t.Errorf("Classify = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"none", http.Header{}, 0},
		{"seconds", http.Header{"Retry-After": {"7"}}, 7 * time.Second},
		{"fractional", http.Header{"Retry-After": {"0.5"}}, 500 * time.Millisecond},
		{"ms wins", http.Header{"Retry-After": {"7"}, "Retry-After-Ms": {"1500"}}, 1500 * time.Millisecond},
		{"http date", http.Header{"Retry-After": {now.Add(30 * time.Second).Format(http.TimeFormat)}}, 30 * time.Second},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0},
		{"negative", http.Header{"Retry-After": {"-3"}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseRetryAfter(tt.header, now); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// clockRouter returns a router over models with settings whose clock the
// test moves.
func clockRouter(t *testing.T, settings config.RouterSettings, models ...config.Model) (*Router, *time.Time) {
	t.Helper()
	r := newTestRouter(t, settings.RoutingStrategy, models...)
	r.Replace(r.Deployments(), settings)
	now := time.Unix(1_800_000_000, 0) // on a minute boundary
	r.Now = func() time.Time { return now }
	return r, &now
}

func defaults() config.RouterSettings {
	s := config.DefaultRouterSettings()
	return s
}

func TestCooldownRules(t *testing.T) {
	fail := func(c Class) Outcome { return Outcome{Class: c, Status: 500} }
	ok := Outcome{Class: Success, Status: 200, Latency: time.Millisecond, CompletionTokens: 1}
	type step struct {
		o          Outcome
		wantCooled bool
	}
	zero := time.Duration(0)
	tests := []struct {
		name     string
		settings func(*config.RouterSettings)
		single   bool // the group has only this deployment
		cooldown *time.Duration
		steps    []step
		wantFor  time.Duration // cooldown length after the last step
	}{
		{name: "more than allowed_fails (3) in a minute", steps: []step{
			{fail(ServerError), false}, {fail(ServerError), false}, {fail(ServerError), false}, {fail(ServerError), true},
		}, wantFor: 5 * time.Second},
		{name: "client errors never count", steps: []step{
			{Outcome{Class: ClientError, Status: 400}, false}, {Outcome{Class: ClientError, Status: 422}, false},
			{Outcome{Class: ContextWindow, Status: 400}, false}, {Outcome{Class: ClientError, Status: 413}, false},
			{Outcome{Class: ClientError, Status: 400}, false},
		}},
		{name: "more than half of at least 5", settings: func(s *config.RouterSettings) { s.AllowedFails = 100 }, steps: []step{
			{ok, false}, {ok, false}, {fail(ServerError), false}, {fail(ServerError), false}, {fail(ServerError), true},
		}, wantFor: 5 * time.Second},
		{name: "half is not more than half", settings: func(s *config.RouterSettings) { s.AllowedFails = 100 }, steps: []step{
			{ok, false}, {ok, false}, {ok, false}, {fail(ServerError), false}, {fail(ServerError), false}, {fail(ServerError), false},
		}},
		{name: "401 at once", steps: []step{{Outcome{Class: AuthError, Status: 401}, true}}, wantFor: 5 * time.Second},
		{name: "404 at once", steps: []step{{Outcome{Class: NotFound, Status: 404}, true}}, wantFor: 5 * time.Second},
		{name: "connection refused at once", steps: []step{{Outcome{Class: ConnectionError}, true}}, wantFor: 5 * time.Second},
		{name: "Retry-After wins", steps: []step{{Outcome{Class: ConnectionError, RetryAfter: 7 * time.Second}, true}}, wantFor: 7 * time.Second},
		{name: "429 Retry-After on the 4th", steps: []step{
			{fail(RateLimited), false}, {fail(RateLimited), false}, {fail(RateLimited), false},
			{Outcome{Class: RateLimited, Status: 429, RetryAfter: 7 * time.Second}, true},
		}, wantFor: 7 * time.Second},
		{name: "only deployment is not cooled for 429", single: true, steps: []step{
			{fail(RateLimited), false}, {fail(RateLimited), false}, {fail(RateLimited), false}, {fail(RateLimited), false}, {fail(RateLimited), false},
		}},
		{name: "only deployment is not cooled for 500s, timeouts or broken connections", single: true, steps: []step{
			{fail(ServerError), false}, {fail(ServerError), false}, {fail(ServerError), false}, {fail(ServerError), false},
			{fail(Timeout), false}, {Outcome{Class: ConnectionError}, false},
		}},
		{name: "only deployment is cooled for 401", single: true, steps: []step{
			{fail(ServerError), false}, {Outcome{Class: AuthError, Status: 401}, true},
		}, wantFor: 5 * time.Second},
		{name: "only deployment follows allowed_fails_policy", single: true, settings: func(s *config.RouterSettings) {
			s.AllowedFailsPolicy = map[string]int{"InternalServerErrorAllowedFails": 1}
		}, steps: []step{{fail(ServerError), false}, {fail(ServerError), true}}, wantFor: 5 * time.Second},
		{name: "disable_cooldowns", settings: func(s *config.RouterSettings) { s.DisableCooldowns = true }, steps: []step{
			{Outcome{Class: ConnectionError}, false}, {Outcome{Class: AuthError}, false},
		}},
		{name: "deployment cooldown_time 0 never cools", cooldown: &zero, steps: []step{{Outcome{Class: ConnectionError}, false}}},
		{name: "router cooldown_time", settings: func(s *config.RouterSettings) { s.CooldownTime = 30 * time.Second },
			steps: []step{{Outcome{Class: ConnectionError}, true}}, wantFor: 30 * time.Second},
		{name: "allowed_fails_policy per class", settings: func(s *config.RouterSettings) {
			s.AllowedFailsPolicy = map[string]int{"RateLimitErrorAllowedFails": 1, "InternalServerErrorAllowedFails": 10}
		}, steps: []step{
			{fail(ServerError), false}, {fail(ServerError), false}, {fail(RateLimited), true},
		}, wantFor: 5 * time.Second},
		{name: "503 uses ServiceUnavailableErrorAllowedFails", settings: func(s *config.RouterSettings) {
			s.AllowedFailsPolicy = map[string]int{"ServiceUnavailableErrorAllowedFails": 0}
		}, steps: []step{{Outcome{Class: ServerError, Status: 503}, true}}, wantFor: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := defaults()
			if tt.settings != nil {
				tt.settings(&s)
			}
			models := []config.Model{model("g", "a", func(p *config.Params) { p.CooldownTime = tt.cooldown }), model("g", "b")}
			if tt.single {
				models = models[:1]
			}
			r, now := clockRouter(t, s, models...)
			d, _ := r.Deployment("a")
			for i, st := range tt.steps {
				if got := r.Record(d, st.o); got != st.wantCooled {
					t.Fatalf("step %d (%s): cooled = %v, want %v", i+1, st.o.Class, got, st.wantCooled)
				}
			}
			until := d.CooldownUntil(*now)
			if tt.wantFor == 0 {
				if !until.IsZero() {
					t.Fatalf("cooling down until %v, want not cooling down", until)
				}
				return
			}
			if got := until.Sub(*now); got != tt.wantFor {
				t.Fatalf("cooling down for %v, want %v", got, tt.wantFor)
			}
			// Out of rotation while cooling down; back by expiry, with a clean slate.
			tg, _ := r.Resolve("a")
			if _, err := r.Pick(tg, nil); err == nil {
				t.Fatal("picked a cooling-down deployment")
			}
			*now = now.Add(tt.wantFor)
			got, err := r.Pick(tg, nil)
			if err != nil || got != d {
				t.Fatalf("after the cooldown: %v, %v", got, err)
			}
			got.Release()
			if r.Record(d, fail(ServerError)) {
				t.Error("one failure after recovery cooled it down again: the failure window was not reset")
			}
		})
	}
}

func TestFailureWindowIsPerMinute(t *testing.T) {
	r, now := clockRouter(t, defaults(), model("g", "a"), model("g", "b"))
	d, _ := r.Deployment("a")
	for range 3 {
		r.Record(d, Outcome{Class: ServerError, Status: 500})
	}
	*now = now.Add(time.Minute) // a new minute: the three failures no longer count
	if r.Record(d, Outcome{Class: ServerError, Status: 500}) {
		t.Error("failures from the previous minute caused a cooldown")
	}
}

func TestRetries(t *testing.T) {
	three, one, million := 3, 1, 1_000_000
	s := defaults()
	s.RetryPolicy = map[string]int{"RateLimitErrorRetries": 5}
	r, _ := clockRouter(t, s, model("g", "plain"), model("g", "own", func(p *config.Params) { p.NumRetries = &one }))
	plain, _ := r.Deployment("plain")
	own, _ := r.Deployment("own")
	tests := []struct {
		name      string
		d         *deployment.Deployment
		c         Class
		requested *int
		want      int
	}{
		{"router default", plain, ServerError, nil, 2},
		{"retry_policy for the class", plain, RateLimited, nil, 5},
		{"deployment override", own, ServerError, nil, 1},
		{"retry_policy wins over deployment", own, RateLimited, nil, 5},
		{"request wins", own, RateLimited, &three, 3},
		{"request capped by max_request_num_retries", plain, ServerError, &million, config.DefaultMaxRequestNumRetries},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retries(&r.table.Load().settings, tt.d, tt.c, tt.requested); got != tt.want {
				t.Errorf("Retries = %d, want %d", got, tt.want)
			}
		})
	}
	for _, c := range []Class{ClientError, ContextWindow, NotFound, ContentPolicy, Success} {
		if c.Retryable() {
			t.Errorf("%s is retryable", c)
		}
	}
}

func TestBackoff(t *testing.T) {
	r, _ := clockRouter(t, defaults(), model("g", "a"))
	for _, tt := range []struct {
		attempt    int
		retryAfter time.Duration
		others     bool
		lo, hi     time.Duration
	}{
		{1, 0, false, 375 * time.Millisecond, 625 * time.Millisecond},
		{2, 0, false, 750 * time.Millisecond, 1250 * time.Millisecond},
		{5, 0, false, 6 * time.Second, 10 * time.Second},
		{9, 0, false, 6 * time.Second, 10 * time.Second}, // capped at 8 s ± jitter
		{1, 7 * time.Second, false, 7 * time.Second, 7 * time.Second},
		{1, 5 * time.Minute, false, 60 * time.Second, 60 * time.Second}, // Retry-After capped at 60 s
		// Another deployment can take the retry: a short random wait,
		// growing with each retry up to 1 s; its Retry-After is its own.
		{1, 0, true, 0, 20 * time.Millisecond},
		{3, 7 * time.Second, true, 0, 80 * time.Millisecond},
		{20, 0, true, 0, time.Second},
	} {
		var sum time.Duration
		for range 100 {
			got := r.backoff(&r.table.Load().settings, tt.attempt, tt.retryAfter, tt.others)
			if got < tt.lo || got > tt.hi {
				t.Fatalf("Backoff(%d, %v, %v) = %v, want in [%v, %v]", tt.attempt, tt.retryAfter, tt.others, got, tt.lo, tt.hi)
			}
			sum += got
		}
		if tt.lo != tt.hi && sum/100 <= tt.lo {
			t.Errorf("Backoff(%d, %v, %v) never above %v: no jitter", tt.attempt, tt.retryAfter, tt.others, tt.lo)
		}
	}
}

func TestFallbacks(t *testing.T) {
	s := defaults()
	s.Fallbacks = []config.Fallback{{From: "big", To: []string{"mid", "small", "big", "mid"}}, {From: "*", To: []string{"any"}}}
	s.ContextWindowFallbacks = []config.Fallback{{From: "small", To: []string{"big"}}}
	s.ContentPolicyFallbacks = []config.Fallback{{From: "big", To: []string{"safe"}}}
	s.DefaultFallbacks = []string{"default"}
	s.MaxFallbacks = 5
	r, _ := clockRouter(t, s, model("big", "a"))
	tests := []struct {
		name      string
		from      string
		c         Class
		requested []string
		want      []string
	}{
		{"group entry, deduplicated, never itself", "big", ServerError, nil, []string{"mid", "small"}},
		{"request's own list first", "big", ServerError, []string{"x", "y"}, []string{"x", "y"}},
		{"request's empty list means none", "big", ServerError, []string{}, []string{}},
		{"context window", "small", ContextWindow, nil, []string{"big"}},
		{"context window without an entry uses the group's", "big", ContextWindow, nil, []string{"mid", "small"}},
		{"content policy", "big", ContentPolicy, nil, []string{"safe"}},
		{"wildcard entry", "other", ServerError, nil, []string{"any"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, fallbacks(&r.table.Load().settings, tt.from, tt.c, tt.requested)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	s.Fallbacks = nil
	s.MaxFallbacks = 2
	s.DefaultFallbacks = []string{"d1", "d2", "d3"}
	r.Replace(r.Deployments(), s)
	if diff := cmp.Diff([]string{"d1", "d2"}, fallbacks(&r.table.Load().settings, "big", ServerError, nil)); diff != "" {
		t.Errorf("default_fallbacks capped by max_fallbacks (-want +got):\n%s", diff)
	}
}

func TestRPMLimitSkipsDeployment(t *testing.T) {
	r, now := clockRouter(t, defaults(), model("g", "a", rpm(2), weight(1)), model("g", "b", rpm(1_000), weight(1)))
	got := pickN(t, r, "g", 40)
	if got["a"] != 2 {
		t.Errorf("a with rpm 2 served %d requests in one minute", got["a"])
	}
	*now = now.Add(time.Minute)
	if got := pickN(t, r, "g", 200); got["a"] != 2 {
		t.Errorf("a served %d in the next minute, want its rpm of 2", got["a"])
	}
}

func TestTPMLimitSkipsDeployment(t *testing.T) {
	r, _ := clockRouter(t, defaults(), model("g", "a", tpm(100), weight(1)), model("g", "b", tpm(100_000), weight(1)))
	a, _ := r.Deployment("a")
	r.Record(a, Outcome{Class: Success, TotalTokens: 100})
	if got := pickN(t, r, "g", 50); got["a"] != 0 {
		t.Errorf("a over its tpm served %d requests", got["a"])
	}
}

func TestDefaultMaxParallelRequests(t *testing.T) {
	s := defaults()
	s.DefaultMaxParallelRequests = 1
	r, _ := clockRouter(t, s, model("g", "a"), model("g", "b", maxParallel(3)))
	tg, _ := r.Resolve("g")
	n := 0
	for {
		if _, err := r.Pick(tg, nil); err != nil {
			break
		}
		n++
	}
	if n != 4 {
		t.Errorf("%d picks held at once, want 1 (default cap) + 3 (own cap)", n)
	}
}

// TestOnlyDeploymentCooledWhenEverythingFails: a group's only deployment
// is cooled down once 1,000 requests in a minute all failed (LiteLLM's
// SINGLE_DEPLOYMENT_TRAFFIC_FAILURE_THRESHOLD), not before, and not when
// some succeeded.
func TestOnlyDeploymentCooledWhenEverythingFails(t *testing.T) {
	t.Parallel()
	fail := func(c Class) Outcome { return Outcome{Class: c, Status: 500} }
	r, _ := clockRouter(t, defaults(), model("g", "a"))
	d, _ := r.Deployment("a")
	for i := range singleDeploymentFailures - 1 {
		if r.Record(d, fail(ServerError)) {
			t.Fatalf("cooled after %d failures", i+1)
		}
	}
	if !r.Record(d, fail(ServerError)) {
		t.Errorf("not cooled after %d failures and no success in the minute", singleDeploymentFailures)
	}

	r, _ = clockRouter(t, defaults(), model("g", "a"))
	d, _ = r.Deployment("a")
	r.Record(d, Outcome{Class: Success})
	for range singleDeploymentFailures + 10 {
		if r.Record(d, fail(ServerError)) {
			t.Fatal("cooled although a request succeeded this minute")
		}
	}
}
