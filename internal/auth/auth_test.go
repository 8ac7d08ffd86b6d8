package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestKey(t *testing.T) {
	tests := []struct {
		name   string
		header map[string]string
		want   string
	}{
		{"none", nil, ""},
		{"bearer", map[string]string{"Authorization": "Bearer sk-1"}, "sk-1"},
		{"bearer any case, spaces", map[string]string{"Authorization": "  BEARER   sk-1 "}, "sk-1"},
		{"raw authorization", map[string]string{"Authorization": "sk-1"}, "sk-1"},
		{"x-litellm-api-key", map[string]string{"X-Litellm-Api-Key": "sk-2"}, "sk-2"},
		{"x-litellm-api-key bearer", map[string]string{"X-Litellm-Api-Key": "Bearer sk-2"}, "sk-2"},
		{"api-key", map[string]string{"Api-Key": "sk-3"}, "sk-3"},
		{"authorization wins", map[string]string{"Authorization": "Bearer sk-1", "Api-Key": "sk-3"}, "sk-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			if got := Key(r); got != tt.want {
				t.Errorf("Key = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWrap(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	tests := []struct {
		name, master, key string
		want              int
	}{
		{"disabled", "", "", 204},
		{"missing", "sk-master", "", 401},
		{"wrong", "sk-master", "sk-other", 401},
		{"longer", "sk-master", "sk-master2", 401},
		{"right", "sk-master", "sk-master", 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.key != "" {
				r.Header.Set("Authorization", "Bearer "+tt.key)
			}
			w := httptest.NewRecorder()
			New(tt.master, nil).Wrap(ok).ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Errorf("status %d, want %d", w.Code, tt.want)
			}
			if tt.want == 401 && w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("401 is not JSON")
			}
		})
	}
}

// TestAdminRefusesHostsOfOtherNames: without a master key, admin requests
// are answered only under loopback names and the allowed ones, whatever
// port; a name the operator does not use (what a page sends under DNS
// rebinding) gets a 403 that says how to allow it. With a master key the
// Host does not matter.
func TestAdminRefusesHostsOfOtherNames(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	tests := []struct {
		host   string
		master string
		want   int
	}{
		{"127.0.0.1:4000", "", 204},
		{"127.0.0.1", "", 204},
		{"127.8.9.10:80", "", 204},
		{"localhost:4000", "", 204},
		{"LOCALHOST.", "", 204},
		{"[::1]:4000", "", 204},
		{"[::1]", "", 204},
		{"[::ffff:127.0.0.1]:4000", "", 204},
		{"gateway.internal:4000", "", 204},
		{"Gateway.Internal.", "", 204},
		{"10.0.0.5:4000", "", 204},
		{"attacker.example:4000", "", 403},
		{"attacker.example", "", 403},
		{"localhost.attacker.example", "", 403},
		{"127.0.0.1.attacker.example", "", 403},
		{"gateway.internal.attacker.example", "", 403},
		{"10.0.0.6", "", 403},
		{"[::2]:4000", "", 403},
		{"", "", 403},
		{"attacker.example", "sk-master", 204},
	}
	for _, tt := range tests {
		t.Run(tt.host+" "+tt.master, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", "/model/new", nil)
			r.Host = tt.host
			w := httptest.NewRecorder()
			New(tt.master, nil, "gateway.internal", "10.0.0.5").Admin(ok).ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if tt.want == 403 {
				body := w.Body.String()
				for _, want := range []string{`"type":"permission_error"`, "--allowed-hosts", "master_key"} {
					if !strings.Contains(body, want) {
						t.Errorf("403 body lacks %q: %s", want, body)
					}
				}
			}
		})
	}
	t.Run("a huge Host is quoted clipped", func(t *testing.T) {
		t.Parallel()
		r := httptest.NewRequest("GET", "/ui/", nil)
		r.Host = strings.Repeat("a", 1<<20)
		w := httptest.NewRecorder()
		New("", nil).Admin(ok).ServeHTTP(w, r)
		if w.Code != 403 || w.Body.Len() > 2000 {
			t.Errorf("status %d, body of %d bytes", w.Code, w.Body.Len())
		}
	})
}

func TestCheckAllowedHost(t *testing.T) {
	t.Parallel()
	for name, wantErr := range map[string]string{
		"gateway.internal":        "",
		"10.0.0.5":                "",
		"fd00::5":                 "",
		"[fd00::5]":               "",
		"":                        "empty",
		"gateway.internal:4000":   "without a port",
		"http://gateway.internal": "not a URL",
		"gateway.internal/ui":     "not a URL",
		"*.internal":              "no wildcards",
		"user@gateway.internal":   "not a URL",
		"gateway internal":        "no wildcards or spaces",
	} {
		err := CheckAllowedHost(name)
		if (err == nil) != (wantErr == "") || err != nil && !strings.Contains(err.Error(), wantErr) {
			t.Errorf("CheckAllowedHost(%q) = %v, want an error containing %q", name, err, wantErr)
		}
	}
}

// TestMessagesAuthErrorsInAnthropicsEnvelope: a Messages request without
// a valid key gets its 401 in Anthropic's envelope.
func TestMessagesAuthErrorsInAnthropicsEnvelope(t *testing.T) {
	t.Parallel()
	a := New("sk-master", nil)
	h := a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, path := range []string{"/v1/messages", "/v1/chat/completions"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, nil))
		anthropicShape := strings.Contains(rec.Body.String(), `"type":"error"`) && strings.Contains(rec.Body.String(), `"authentication_error"`)
		if rec.Code != 401 || anthropicShape != (path == "/v1/messages") {
			t.Errorf("%s: %d %s", path, rec.Code, rec.Body.String())
		}
	}
}
