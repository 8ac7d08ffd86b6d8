package keys

import (
	"errors"
	"slices"
	"time"
)

// Key is a virtual key as stored: everything but its secret. The fields
// are LiteLLM's (LiteLLM_VerificationToken); nil limits mean none.
type Key struct {
	Token     [32]byte // SHA-256 of the secret (LiteLLM's token is its hex)
	KeyName   string   // "sk-...WXYZ"
	Alias     string   // key_alias; "" for none, else unique
	UserID    string
	TeamID    string
	Models    []string // group names, aliases or access groups; empty = every model
	Metadata  map[string]any
	Blocked   bool
	Expires   time.Time // zero: never
	CreatedAt time.Time
	UpdatedAt time.Time

	MaxBudget      *float64
	BudgetDuration string    // "" for none, else a Duration
	BudgetResetAt  time.Time // zero when there is no budget_duration
	Spend          float64

	TPMLimit            *int64
	RPMLimit            *int64
	MaxParallelRequests *int64
	ModelRPMLimit       map[string]int64
	ModelTPMLimit       map[string]int64
}

// Errors of Set.Check, for the caller to turn into LiteLLM's responses.
var (
	ErrUnknown = errors.New("unknown key")
	ErrBlocked = errors.New("key is blocked")
	ErrExpired = errors.New("key has expired")
)

// Allows reports whether the key may call name: a model group, an alias or
// an access group. A key without models may call every model.
func (k *Key) Allows(name string) bool {
	return len(k.Models) == 0 || slices.Contains(k.Models, name)
}

// Set is an immutable snapshot of the keys, looked up by secret on every
// request without a lock, an allocation or I/O.
type Set struct {
	byToken map[[32]byte]*Key
}

// NewSet returns a snapshot of keys.
func NewSet(keys []*Key) *Set {
	s := &Set{byToken: make(map[[32]byte]*Key, len(keys))}
	for _, k := range keys {
		s.byToken[k.Token] = k
	}
	return s
}

// Len returns the number of keys.
func (s *Set) Len() int { return len(s.byToken) }

// Check returns the key whose secret this is, if it may be used at now:
// ErrUnknown for no such key, ErrBlocked or ErrExpired (with the key) for
// one that may not.
func (s *Set) Check(secret string, now time.Time) (*Key, error) {
	k, ok := s.byToken[Token(secret)]
	switch {
	case !ok:
		return nil, ErrUnknown
	case k.Blocked:
		return k, ErrBlocked
	case !k.Expires.IsZero() && !now.Before(k.Expires):
		return k, ErrExpired
	}
	return k, nil
}
