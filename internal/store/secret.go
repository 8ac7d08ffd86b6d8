package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// ErrDecrypt is returned when a stored secret cannot be decrypted: the
// encryption key (LITELLM_SALT_KEY, else the master key) is not the one the
// value was stored with, or the value is corrupted.
var ErrDecrypt = errors.New("cannot decrypt a stored secret: the encryption key (LITELLM_SALT_KEY, else the master key) differs from the one it was stored with, or the value is corrupted")

// secretKeys are the litellm_params and router_settings keys whose values
// are encrypted at rest. The admin API hides the same litellm_params.
var secretKeys = []string{
	"api_key",
	"aws_access_key_id",
	"aws_secret_access_key",
	"aws_session_token",
	"azure_ad_token",
	"azure_password",
	"azure_username",
	"client_secret",
	"extra_headers", // often carries an Authorization header
	"headers",
	"vertex_credentials",
	"redis_password",
	"redis_url", // may carry a password
}

// SecretKeys lists the keys (of litellm_params and of router_settings)
// whose values the store encrypts at rest; callers use it to keep the same
// values out of responses and logs.
func SecretKeys() []string { return slices.Clone(secretKeys) }

func isSecret(key string) bool { return slices.Contains(secretKeys, key) }

// urlKeys are the litellm_params keys whose value is a URL that may carry
// credentials: a password or token as user info ("https://user:pass@host")
// or in the query ("?api-key=..."). Such a value is encrypted at rest,
// whole, like a secret; a URL without them stays plaintext, so the
// database still shows where a model points, and replicas of a version
// that does not decrypt api_base still read it. The admin API shows these
// values without their credentials rather than hiding them.
var urlKeys = []string{"api_base"}

// encryptedAtRest reports whether the value v of key is stored encrypted.
func encryptedAtRest(key string, v any) bool {
	switch {
	case v == nil:
		return false
	case isSecret(key):
		return true
	case slices.Contains(urlKeys, key):
		return hasCredentials(v)
	}
	return false
}

// hasCredentials reports whether a URL value may carry credentials: it
// has user info, a query or a fragment, or is not a string URL at all
// (then nothing can be said of it).
func hasCredentials(v any) bool {
	s, ok := v.(string)
	if !ok {
		return true
	}
	u, err := url.Parse(s)
	return err != nil || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != ""
}

// devSecret replaces an empty secret. It is public, so it protects nothing;
// Open logs a warning when it is used.
const devSecret = "maasgate insecure development key"

// sealedPrefix marks an encrypted value: "enc:v1:" then the standard base64
// of nonce || AES-256-GCM ciphertext || tag.
const sealedPrefix = "enc:v1:"

// hkdfInfo binds the derived key to its one use, so the same secret can
// derive other keys later without them being related.
const hkdfInfo = "maasgate store enc:v1"

// sealer encrypts secret values with AES-256-GCM under a key derived from
// the operator's secret with HKDF-SHA256. Each value gets a random 96-bit
// nonce; the key name is the additional authenticated data, so a value
// cannot be moved to another key unnoticed.
type sealer struct{ aead cipher.AEAD }

func newSealer(secret string) (*sealer, error) {
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, hkdfInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive the encryption key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// sealValue encrypts the JSON encoding of v (so strings, numbers and
// objects all round-trip).
func (s *sealer) sealValue(key string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("%s: encode: %w", key, err)
	}
	ct := s.aead.Seal(nil, nil, plain, []byte(key))
	return sealedPrefix + base64.StdEncoding.EncodeToString(ct), nil
}

// openValue reverses sealValue. A value without the prefix is returned as
// it is: a row written by hand (or by a tool) with a plaintext secret still
// loads.
func (s *sealer) openValue(key string, v any) (any, error) {
	str, ok := v.(string)
	if !ok || !strings.HasPrefix(str, sealedPrefix) {
		return v, nil
	}
	ct, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(str, sealedPrefix))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, ErrDecrypt)
	}
	plain, err := s.aead.Open(nil, nil, ct, []byte(key))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, ErrDecrypt)
	}
	out, err := decodeJSON[any](plain)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, ErrDecrypt)
	}
	return out, nil
}

// sealMap returns a copy of m with every secret value, and every URL
// value that carries credentials, encrypted.
func (s *sealer) sealMap(m map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if encryptedAtRest(k, v) {
			sealed, err := s.sealValue(k, v)
			if err != nil {
				return nil, err
			}
			v = sealed
		}
		out[k] = v
	}
	return out, nil
}

// openMap decrypts, in place, every encrypted value of m. A plaintext
// api_base (with or without credentials: rows written before they were
// encrypted) is returned as it is.
func (s *sealer) openMap(m map[string]any) error {
	for k, v := range m {
		if !isSecret(k) && !slices.Contains(urlKeys, k) {
			continue
		}
		plain, err := s.openValue(k, v)
		if err != nil {
			return err
		}
		m[k] = plain
	}
	return nil
}

// decodeJSON decodes one JSON value, numbers as json.Number.
func decodeJSON[T any](data []byte) (T, error) {
	var v T
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	err := dec.Decode(&v)
	return v, err
}

// encodeObject is the JSON text of m, "{}" for a nil map.
func encodeObject(m map[string]any) ([]byte, error) {
	if m == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(m)
}
