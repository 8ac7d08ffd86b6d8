package deployment

import (
	"net/url"
	"strings"
	"testing"

	"github.com/maasgate/maasgate/internal/config"
)

func scrubDep(apiBase, apiKey string) *Deployment {
	return New(config.Model{Name: "g", ID: "d", Params: config.Params{
		UpstreamModel: "m", APIBase: apiBase, APIKey: apiKey,
	}}, FromConfig)
}

func TestScrub(t *testing.T) {
	t.Parallel()
	const key = "sk-live-0123456789abcdef"
	for _, tc := range []struct {
		name, apiBase, apiKey, msg, want string
		secrets                          []string // must not survive
	}{{
		name:    "key after Bearer",
		apiBase: "http://gpu1:8000/v1",
		apiKey:  key,
		msg:     `upstream saw auth=Bearer sk-live-0123456789abcdef`,
		want:    `upstream saw auth=Bearer [redacted]`,
		secrets: []string{key},
	}, {
		name:    "key alone, twice",
		apiBase: "http://gpu1:8000/v1",
		apiKey:  key,
		msg:     `Incorrect API key provided: sk-live-0123456789abcdef (sk-live-0123456789abcdef).`,
		want:    `Incorrect API key provided: [redacted] ([redacted]).`,
		secrets: []string{key},
	}, {
		name:    "api_base password",
		apiBase: "http://svc:p4ss-w0rd@gpu1:8000/v1",
		msg:     `password p4ss-w0rd rejected for user svc`,
		want:    `password [redacted] rejected for user svc`,
		secrets: []string{"p4ss-w0rd"},
	}, {
		name:    "api_base echoed whole",
		apiBase: "http://svc:p4ss-w0rd@gpu1:8000/v1?key=t0k3n-abcdef&x=1",
		apiKey:  key,
		msg:     `POST http://svc:p4ss-w0rd@gpu1:8000/v1/chat/completions?key=t0k3n-abcdef&x=1 with Bearer sk-live-0123456789abcdef: denied`,
		want:    `POST http://[redacted]@gpu1:8000/v1/chat/completions?[redacted] with Bearer [redacted]: denied`,
		secrets: []string{"p4ss-w0rd", "t0k3n-abcdef", key},
	}, {
		name:    "percent-encoded password, decoded and as written",
		apiBase: "http://svc:p%40ss%2Fw0rd@gpu1:8000/v1",
		msg:     `bad password "p@ss/w0rd" in svc:p%40ss%2Fw0rd`,
		want:    `bad password "[redacted]" in [redacted]`,
		secrets: []string{"p@ss/w0rd", "p%40ss%2Fw0rd"},
	}, {
		name:    "user name without password is the token",
		apiBase: "https://ghp_0123456789abcdef@models.example/v1",
		msg:     `token ghp_0123456789abcdef is revoked`,
		want:    `token [redacted] is revoked`,
		secrets: []string{"ghp_0123456789abcdef"},
	}, {
		name:    "query token",
		apiBase: "http://gpu1:8000/v1?key=t0k3n-abcdef",
		msg:     `API key t0k3n-abcdef has expired`,
		want:    `API key [redacted] has expired`,
		secrets: []string{"t0k3n-abcdef"},
	}, {
		name:    "url-encoded query token, decoded and as written",
		apiBase: "http://gpu1:8000/v1?token=ab%2Bcd%2Fef%3D%3D",
		msg:     `token ab+cd/ef== unknown (sent token=ab%2Bcd%2Fef%3D%3D)`,
		want:    `token [redacted] unknown (sent [redacted])`,
		secrets: []string{"ab+cd/ef==", "ab%2Bcd%2Fef%3D%3D"},
	}, {
		name:    "api-version is not a secret",
		apiBase: "https://aoai.example/openai?api-version=2024-02-01",
		msg:     `Unsupported api-version 2024-02-01 (api-version=2024-02-01)`,
		want:    `Unsupported api-version 2024-02-01 (api-version=2024-02-01)`,
	}, {
		name:    "api-version beside a token",
		apiBase: "https://aoai.example/openai?api-version=2024-02-01&key=t0k3n-abcdef",
		msg:     `api-version 2024-02-01: key t0k3n-abcdef is invalid`,
		want:    `api-version 2024-02-01: key [redacted] is invalid`,
		secrets: []string{"t0k3n-abcdef"},
	}, {
		name:    "short values are ordinary words",
		apiBase: "http://bob:pw@gpu1:8000/v1?format=json&n=1",
		apiKey:  "sk-1",
		msg:     `invalid json for sk-1: pw must be set by bob`,
		want:    `invalid json for sk-1: pw must be set by bob`,
	}, {
		name:    "a value inside a longer one goes whole",
		apiBase: "http://gpu1:8000/v1?sig=0123456789abcdef",
		apiKey:  key,
		msg:     `Bearer sk-live-0123456789abcdef; sig 0123456789abcdef`,
		want:    `Bearer [redacted]; sig [redacted]`,
		secrets: []string{"0123456789abcdef"},
	}, {
		name:    "nothing to scrub",
		apiBase: "http://svc:p4ss-w0rd@gpu1:8000/v1?key=t0k3n-abcdef",
		apiKey:  key,
		msg:     `The model "qwen3-14b" does not exist.`,
		want:    `The model "qwen3-14b" does not exist.`,
	}, {
		name:    "deployment without credentials",
		apiBase: "http://gpu1:8000/v1",
		msg:     `upstream saw auth=Bearer sk-someone-elses-key`,
		want:    `upstream saw auth=Bearer sk-someone-elses-key`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := scrubDep(tc.apiBase, tc.apiKey).Scrub(tc.msg)
			if got != tc.want {
				t.Errorf("Scrub(%q)\n got %q\nwant %q", tc.msg, got, tc.want)
			}
			for _, s := range tc.secrets {
				if strings.Contains(got, s) {
					t.Errorf("Scrub left %q in %q", s, got)
				}
			}
		})
	}
}

// TestScrubNothingFoundAllocatesNothing: Scrub runs on every relayed
// error, so a message without credentials costs no allocation and comes
// back as it was. Not parallel: AllocsPerRun refuses parallel tests.
func TestScrubNothingFoundAllocatesNothing(t *testing.T) {
	msg := `The model "qwen3-14b" does not exist or you do not have access to it.`
	for _, tc := range []struct{ name, apiBase, apiKey string }{
		{"no credentials", "http://gpu1:8000/v1", ""},
		{"api_key", "http://gpu1:8000/v1", "sk-live-0123456789abcdef"},
		{"every kind", "http://svc:p4ss-w0rd@gpu1:8000/v1?key=t0k3n-abcdef&api-version=2024-02-01", "sk-live-0123456789abcdef"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := scrubDep(tc.apiBase, tc.apiKey)
			var got string
			allocs := testing.AllocsPerRun(100, func() { got = d.Scrub(msg) })
			if got != msg {
				t.Errorf("Scrub changed a message without credentials: %q", got)
			}
			if allocs != 0 {
				t.Errorf("Scrub of a message without credentials: %v allocations, want 0", allocs)
			}
		})
	}
}

// TestUserinfoQueryAgreesWithURLParse: Scrub reads api_base without
// url.Parse; the parts it finds must be the ones url.Parse finds.
func TestUserinfoQueryAgreesWithURLParse(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"http://gpu1:8000/v1",
		"http://svc:p4ss@gpu1:8000/v1?key=t0k3n&x=1",
		"http://svc:p%40ss%2Fw0rd@gpu1:8000/v1",
		"https://token@models.example",
		"https://models.example?key=a@b/c",
		"https://u:p@models.example/v1/x@y?q=1#frag@ment",
		"http://[::1]:8000/v1?token=x",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", raw, err)
		}
		wantUser := ""
		if u.User != nil {
			wantUser = u.User.String()
		}
		user, query := userinfoQuery(raw)
		if user != wantUser || query != u.RawQuery {
			t.Errorf("userinfoQuery(%q) = %q, %q; url.Parse finds %q, %q", raw, user, query, wantUser, u.RawQuery)
		}
	}
}
