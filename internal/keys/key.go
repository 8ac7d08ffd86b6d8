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

// Set is an immutable snapshot of the keys and teams, looked up by secret
// on every request without a lock, an allocation or I/O.
type Set struct {
	byToken map[[32]byte]*Key
	teams   map[string]*Team
}

// NewSet returns a snapshot of keys and teams.
func NewSet(keys []*Key, teams ...*Team) *Set {
	s := &Set{byToken: make(map[[32]byte]*Key, len(keys)), teams: make(map[string]*Team, len(teams))}
	for _, k := range keys {
		s.byToken[k.Token] = k
	}
	for _, t := range teams {
		s.teams[t.ID] = t
	}
	return s
}

// Team returns the team with the id, or nil.
func (s *Set) Team(id string) *Team { return s.teams[id] }

// Len returns the number of keys.
func (s *Set) Len() int { return len(s.byToken) }

// Check returns the key whose secret this is and its team (nil for none),
// if it may be used at now: ErrUnknown for no such key; ErrBlocked,
// ErrExpired or ErrTeamBlocked (with the key and team) for one that may
// not.
func (s *Set) Check(secret string, now time.Time) (*Key, *Team, error) {
	k, ok := s.byToken[Token(secret)]
	if !ok {
		return nil, nil, ErrUnknown
	}
	t := s.teams[k.TeamID]
	switch {
	case k.Blocked:
		return k, t, ErrBlocked
	case !k.Expires.IsZero() && !now.Before(k.Expires):
		return k, t, ErrExpired
	case k.TeamID != "" && t == nil:
		// Its team's models and limits would not apply: refused rather
		// than let through as a key of no team.
		return k, nil, ErrTeamMissing
	case t != nil && t.Blocked:
		return k, t, ErrTeamBlocked
	}
	return k, t, nil
}

// MayCall reports whether key k, of team t (nil for none), may call a model
// known by any of names (the name asked for, its group, its access
// groups), and if not, whether the team refused it. The key and the team
// must both allow it, as in LiteLLM; a key listing AllTeamModels leaves it
// to its team.
func MayCall(k *Key, t *Team, names ...string) (ok, byTeam bool) {
	if len(k.Models) > 0 && !slices.Contains(k.Models, AllTeamModels) && !anyIn(k.Models, names) {
		return false, false
	}
	if t != nil && len(t.Models) > 0 && !anyIn(t.Models, names) {
		return false, true
	}
	return true, false
}

// anyIn reports whether one of names is in list.
func anyIn(list, names []string) bool {
	for _, n := range names {
		if slices.Contains(list, n) {
			return true
		}
	}
	return false
}
