package auth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/keys"
)

// TestVirtualKeys: which requests a virtual key gets through, and LiteLLM's
// errors for the ones it does not.
func TestVirtualKeys(t *testing.T) {
	t.Parallel()
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	good, blocked, expired := "sk-good-000000000000", "sk-blocked-000000000", "sk-expired-000000000"
	a := New("sk-master-0000000000", fixedKeys{keys.NewSet([]*keys.Key{
		{Token: keys.Token(good)},
		{Token: keys.Token(blocked), Blocked: true},
		{Token: keys.Token(expired), Expires: keys.TimeOf(now.Add(-time.Second))},
	})})
	a.Now = func() time.Time { return now }
	h := a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, e := a.KeyOf(r); e != nil {
			t.Errorf("KeyOf in the handler: %v", e)
		}
	}))
	tests := []struct {
		name, method, path string
		header, value      string
		wantStatus         int
		wantType, wantMsg  string
	}{
		{"master key, admin route", "POST", "/model/new", "Authorization", "Bearer sk-master-0000000000", 200, "", ""},
		{"virtual key, inference", "POST", "/v1/chat/completions", "Authorization", "Bearer " + good, 200, "", ""},
		{"virtual key in x-api-key", "GET", "/v1/models", "X-Api-Key", good, 200, "", ""},
		{"virtual key, its info", "GET", "/key/info", "Api-Key", good, 200, "", ""},
		{"virtual key, admin route", "POST", "/model/new", "Authorization", "Bearer " + good, 401, "auth_error", "Only proxy admin can be used"},
		{"virtual key, key admin", "POST", "/key/generate", "Authorization", "Bearer " + good, 401, "auth_error", "Route=/key/generate"},
		{"not a key", "POST", "/v1/chat/completions", "Authorization", "Bearer hunter2-password", 401, "auth_error", "LiteLLM Virtual Key expected. Received=hunt****word"},
		{"unknown key", "POST", "/v1/chat/completions", "Authorization", "Bearer sk-unknown-0000000000", 401, "token_not_found_in_db", "Received API Key = sk-...0000"},
		{"blocked key", "POST", "/v1/chat/completions", "Authorization", "Bearer " + blocked, 401, "auth_error", "Key is blocked"},
		{"expired key", "POST", "/v1/chat/completions", "Authorization", "Bearer " + expired, 401, "expired_key", "Expired Key. Key Expiry time 2026-12-31 23:59:59+00:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, nil)
			req.Header.Set(tt.header, tt.value)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantStatus == 200 {
				return
			}
			var out struct {
				Error struct{ Type, Message string }
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &out)
			if out.Error.Type != tt.wantType || !strings.Contains(out.Error.Message, tt.wantMsg) {
				t.Errorf("error %s, want type %s saying %q", rec.Body, tt.wantType, tt.wantMsg)
			}
			for _, secret := range []string{good, blocked, expired, "sk-unknown-0000000000", "hunter2-password"} {
				if strings.Contains(rec.Body.String(), secret) {
					t.Errorf("the error quotes the secret %q", secret)
				}
			}
		})
	}
}

// TestKeyHeaders: LiteLLM reads x-litellm-api-key before Authorization, and
// takes the credential of a Basic Authorization as the key.
func TestKeyHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		headers map[string]string
		want    string
	}{
		{map[string]string{"Authorization": "Bearer upstream-token", "X-Litellm-Api-Key": "sk-gateway"}, "sk-gateway"},
		{map[string]string{"Authorization": "Basic sk-basic"}, "sk-basic"},
		{map[string]string{"Authorization": "bearer sk-lower"}, "sk-lower"},
		{map[string]string{"Api-Key": "sk-azure"}, "sk-azure"},
		{map[string]string{"X-Api-Key": "sk-anthropic"}, "sk-anthropic"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/v1/models", nil)
		for k, v := range tt.headers {
			r.Header.Set(k, v)
		}
		if got := Key(r); got != tt.want {
			t.Errorf("Key(%v) = %q, want %q", tt.headers, got, tt.want)
		}
	}
}

// fixedKeys is a KeySource that never changes.
type fixedKeys struct{ set *keys.Set }

func (f fixedKeys) Keys() *keys.Set { return f.set }
