// Package keys holds virtual keys: API keys, in LiteLLM's format, that let a
// tenant call some models within limits, without the master key. A key is
// known by the SHA-256 of its secret (LiteLLM's "token"), so the secret is
// shown once, at creation, and stored nowhere; keys made by LiteLLM keep
// working once their rows are imported.
//
// The request path asks one question of a key: Set.Check, served from an
// immutable snapshot in memory (no database or Redis round trip, no lock).
// Changes build a new Set and swap it in whole.
package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Prefix starts every key, as in LiteLLM.
const Prefix = "sk-"

// Generate returns a new secret: "sk-" and 22 URL-safe characters from 16
// random bytes, as LiteLLM's secrets.token_urlsafe(16).
func Generate() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics instead)
	return Prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// Token returns how a secret is stored and looked up: its SHA-256, whose
// hex is LiteLLM's "token". It does not allocate.
func Token(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// TokenHex returns a token as LiteLLM stores and shows it.
func TokenHex(t [32]byte) string { return hex.EncodeToString(t[:]) }

var errBadToken = errors.New("a token is 64 hexadecimal characters (the SHA-256 of the key)")

// ParseToken reads a token in LiteLLM's hex form.
func ParseToken(s string) ([32]byte, error) {
	var t [32]byte
	if len(s) != hex.EncodedLen(len(t)) {
		return t, errBadToken
	}
	if _, err := hex.Decode(t[:], []byte(s)); err != nil {
		return t, errBadToken
	}
	return t, nil
}

// Name returns the secret as it may be shown after creation: "sk-...WXYZ",
// its last four characters (LiteLLM's key_name).
func Name(secret string) string {
	if len(secret) <= 4 {
		return Prefix + "..."
	}
	return Prefix + "..." + secret[len(secret)-4:]
}

// Bounds on a custom key, which a caller chooses: long enough to be
// unguessable, short enough for a header.
const (
	MinCustomLen = 16
	MaxCustomLen = 256
)

// CheckCustom reports what is wrong with a secret a caller chose for a key,
// or nil: it must start with "sk-", be 16 to 256 characters and hold only
// printable ASCII without spaces (it travels in an HTTP header). The
// message never quotes the secret.
func CheckCustom(secret string) error {
	switch {
	case !strings.HasPrefix(secret, Prefix):
		return fmt.Errorf("must start with %q", Prefix)
	case len(secret) < MinCustomLen:
		return fmt.Errorf("must be at least %d characters long, got %d", MinCustomLen, len(secret))
	case len(secret) > MaxCustomLen:
		return fmt.Errorf("must be at most %d characters long, got %d", MaxCustomLen, len(secret))
	}
	for i := range len(secret) {
		if c := secret[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("must hold only printable ASCII characters without spaces (character %d is not)", i+1)
		}
	}
	return nil
}
