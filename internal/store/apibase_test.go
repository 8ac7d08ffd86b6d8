package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// rawModelRow is every column of a stored model row as the database holds it.
func rawModelRow(t *testing.T, s *Store, id string) string {
	t.Helper()
	var name, params, info, created, updated string
	err := s.db.QueryRowContext(t.Context(), s.rebind(
		"SELECT model_name, litellm_params, model_info, CAST(created_at AS TEXT), CAST(updated_at AS TEXT) FROM models WHERE id = ?"), id).
		Scan(&name, &params, &info, &created, &updated)
	if err != nil {
		t.Fatalf("read the raw row: %v", err)
	}
	return strings.Join([]string{id, name, params, info, created, updated}, " | ")
}

// rawAPIBase is the api_base of a stored model as the database holds it.
func rawAPIBase(t *testing.T, s *Store, id string) string {
	t.Helper()
	var fields map[string]any
	if err := json.Unmarshal([]byte(rawParams(t, s, id)), &fields); err != nil {
		t.Fatalf("the raw params are not JSON: %v", err)
	}
	v, _ := fields["api_base"].(string)
	return v
}

func TestAPIBaseCredentialsEncryptedAtRest(t *testing.T) {
	t.Parallel()
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct {
				name, apiBase string
				secrets       []string // must not appear in the stored row
			}{
				{"password and query token", "http://user:s3cret@127.0.0.1:1/v1?token=t0k3n", []string{"s3cret", "t0k3n"}},
				{"password", "https://svc:p%40ss-w0rd@models.example/v1", []string{"w0rd"}},
				{"token as user name", "https://ghp-t0k3n@models.example/v1", []string{"t0k3n"}},
				{"query key", "https://aoai.example/openai?api-key=k3y-value&api-version=2024-02-01", []string{"k3y-value"}},
				{"no credentials", "http://gpu-1:8000/v1", nil},
			} {
				t.Run(tc.name, func(t *testing.T) {
					ctx := t.Context()
					s := open(t, tg.url, testSecret)
					id := strings.ReplaceAll(tc.name, " ", "-")
					m := sampleModel(id)
					m.Params["api_base"] = tc.apiBase
					created, err := s.CreateModel(ctx, m)
					if err != nil {
						t.Fatalf("CreateModel: %v", err)
					}
					if created.Params["api_base"] != tc.apiBase {
						t.Errorf("CreateModel returned api_base %v, want %q", created.Params["api_base"], tc.apiBase)
					}

					row := rawModelRow(t, s, id)
					for _, secret := range tc.secrets {
						if strings.Contains(row, secret) {
							t.Errorf("the stored row contains %q: %s", secret, row)
						}
					}
					raw := rawAPIBase(t, s, id)
					if encrypted := strings.HasPrefix(raw, "enc:v1:"); encrypted != (tc.secrets != nil) {
						t.Errorf("stored api_base = %q; want it encrypted only when it carries credentials", raw)
					}

					// A restart reads it back whole: routing needs the credentials.
					s.Close()
					s = open(t, tg.url, testSecret)
					got, err := s.Model(ctx, id)
					if err != nil {
						t.Fatalf("Model after reopening: %v", err)
					}
					all, err := s.Models(ctx)
					if err != nil {
						t.Fatalf("Models after reopening: %v", err)
					}
					listed := "(not listed)"
					for _, m := range all {
						if m.ID == id {
							listed, _ = m.Params["api_base"].(string)
						}
					}
					if got.Params["api_base"] != tc.apiBase || listed != tc.apiBase {
						t.Errorf("read api_base %v (Model), %v (Models); want %q", got.Params["api_base"], listed, tc.apiBase)
					}

					// An update writes it encrypted again, under a fresh nonce.
					got.Params["rpm"] = json.Number("61")
					if _, err := s.UpdateModel(ctx, got); err != nil {
						t.Fatalf("UpdateModel: %v", err)
					}
					row = rawModelRow(t, s, id)
					for _, secret := range tc.secrets {
						if strings.Contains(row, secret) {
							t.Errorf("the row rewritten by UpdateModel contains %q: %s", secret, row)
						}
					}
					if again := rawAPIBase(t, s, id); tc.secrets != nil && again == raw {
						t.Errorf("UpdateModel stored the same ciphertext %q; want a fresh nonce", again)
					}
				})
			}
		})
	}
}

// TestPlainAPIBaseRowStillReads: a row written before api_base was
// encrypted, with its credentials in plaintext, still loads whole, and the
// next write of that model encrypts them.
func TestPlainAPIBaseRowStillReads(t *testing.T) {
	t.Parallel()
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := open(t, tg.url, testSecret)
			const apiBase = "http://user:s3cret@127.0.0.1:1/v1?token=t0k3n"
			key, err := s.seal.sealValue("api_key", "sk-old-row")
			if err != nil {
				t.Fatal(err)
			}
			params := fmt.Sprintf(`{"model":"openai/qwen3-14b","api_base":%q,"api_key":%q}`, apiBase, key)
			at := s.timeArg(now())
			if _, err := s.db.ExecContext(ctx, s.rebind("INSERT INTO models ("+modelColumns+") VALUES (?, ?, ?, ?, ?, ?)"),
				"old", "qwen3-14b", params, "{}", at, at); err != nil {
				t.Fatalf("insert the old row: %v", err)
			}

			got, err := s.Model(ctx, "old")
			if err != nil {
				t.Fatalf("Model of the old row: %v", err)
			}
			if got.Params["api_base"] != apiBase || got.Params["api_key"] != "sk-old-row" {
				t.Errorf("old row read as api_base %v, api_key %v; want %q and the decrypted key", got.Params["api_base"], got.Params["api_key"], apiBase)
			}
			if _, err := s.UpdateModel(ctx, got); err != nil {
				t.Fatalf("UpdateModel of the old row: %v", err)
			}
			row := rawModelRow(t, s, "old")
			if strings.Contains(row, "s3cret") || strings.Contains(row, "t0k3n") {
				t.Errorf("the old row still holds its credentials after an update: %s", row)
			}
			if got, err := s.Model(ctx, "old"); err != nil || got.Params["api_base"] != apiBase {
				t.Errorf("old row after the update: api_base %v, err %v; want %q", got.Params["api_base"], err, apiBase)
			}
		})
	}
}

// TestAPIBaseWrongSecret: an encrypted api_base read with another key
// fails like any stored secret, naming the model and the param but not
// the value.
func TestAPIBaseWrongSecret(t *testing.T) {
	t.Parallel()
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := open(t, tg.url, testSecret)
			m := sampleModel("model-b")
			delete(m.Params, "api_key")
			m.Params["api_base"] = "http://user:s3cret@127.0.0.1:1/v1?token=t0k3n"
			if _, err := s.CreateModel(ctx, m); err != nil {
				t.Fatal(err)
			}
			s.Close()

			s = open(t, tg.url, "another-secret")
			_, err := s.Model(ctx, "model-b")
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Model with the wrong secret: err = %v, want ErrDecrypt", err)
			}
			if msg := err.Error(); !strings.Contains(msg, "model-b") || !strings.Contains(msg, "api_base") ||
				strings.Contains(msg, "s3cret") || strings.Contains(msg, "t0k3n") {
				t.Errorf("error %q: want the model id and the param named, no credential", msg)
			}
		})
	}
}
