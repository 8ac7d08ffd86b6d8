package keys

import (
	"errors"
	"maps"
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
	return allAccess(k.Models) || slices.Contains(k.Models, name)
}

// Set is an immutable snapshot of the keys and teams, looked up by secret
// on every request without a lock, an allocation or I/O.
type Set struct {
	byToken  map[[32]byte]*Key
	teams    map[string]*Team
	teamKeys map[string][]*Key
}

// NewSet returns a snapshot of keys and teams.
func NewSet(keys []*Key, teams ...*Team) *Set {
	s := &Set{byToken: make(map[[32]byte]*Key, len(keys)), teams: make(map[string]*Team, len(teams)), teamKeys: map[string][]*Key{}}
	for _, k := range keys {
		s.byToken[k.Token] = k
		if k.TeamID != "" {
			s.teamKeys[k.TeamID] = append(s.teamKeys[k.TeamID], k)
		}
	}
	for _, t := range teams {
		s.teams[t.ID] = t
	}
	return s
}

// Team returns the team with the id, or nil.
func (s *Set) Team(id string) *Team { return s.teams[id] }

// TeamKeys returns the keys of a team.
func (s *Set) TeamKeys(id string) []*Key { return s.teamKeys[id] }

// Keys returns every key, in no order.
func (s *Set) Keys() []*Key {
	out := make([]*Key, 0, len(s.byToken))
	for _, k := range s.byToken {
		out = append(out, k)
	}
	return out
}

// Teams returns every team, in no order.
func (s *Set) Teams() []*Team {
	out := make([]*Team, 0, len(s.teams))
	for _, t := range s.teams {
		out = append(out, t)
	}
	return out
}

// With returns a new snapshot: s with ks added or replaced (by token),
// the keys of drop removed, and teams added or replaced (by id) and the
// teams of dropTeams removed with their keys. An admin write applies its
// own result this way, without reading the store back. It copies the maps
// whole (maps.Clone, a bulk copy) and rebuilds only the team key lists the
// change touches.
func (s *Set) With(ks []*Key, drop [][32]byte, teams []*Team, dropTeams []string) *Set {
	n := &Set{byToken: maps.Clone(s.byToken), teams: maps.Clone(s.teams), teamKeys: maps.Clone(s.teamKeys)}
	touched := map[string]bool{}
	remove := func(t [32]byte) {
		if k, ok := n.byToken[t]; ok {
			delete(n.byToken, t)
			if k.TeamID != "" {
				touched[k.TeamID] = true
			}
		}
	}
	for _, t := range drop {
		remove(t)
	}
	for _, k := range ks {
		remove(k.Token)
		n.byToken[k.Token] = k
		if k.TeamID != "" {
			touched[k.TeamID] = true
		}
	}
	for _, t := range teams {
		n.teams[t.ID] = t
	}
	for _, id := range dropTeams {
		delete(n.teams, id)
		for _, k := range s.teamKeys[id] {
			remove(k.Token)
		}
	}
	added := make(map[[32]byte]bool, len(ks))
	for _, k := range ks {
		added[k.Token] = true
	}
	for id := range touched {
		var list []*Key
		for _, k := range s.teamKeys[id] {
			if _, ok := n.byToken[k.Token]; ok && !added[k.Token] {
				list = append(list, k)
			}
		}
		for _, k := range ks {
			if k.TeamID == id && n.byToken[k.Token] == k {
				list = append(list, k)
			}
		}
		if len(list) == 0 {
			delete(n.teamKeys, id)
		} else {
			n.teamKeys[id] = list
		}
	}
	return n
}

// Len returns the number of keys.
func (s *Set) Len() int { return len(s.byToken) }

// Check returns the key whose secret this is and its team (nil for none),
// if it may be used at now: ErrUnknown for no such key; ErrBlocked,
// ErrExpired or ErrTeamBlocked (with the key and team) for one that may
// not.
func (s *Set) Check(secret string, now time.Time) (*Key, *Team, error) {
	return s.CheckToken(Token(secret), now)
}

// CheckToken is Check for a secret already hashed.
func (s *Set) CheckToken(token [32]byte, now time.Time) (*Key, *Team, error) {
	k, ok := s.byToken[token]
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
	if !allAccess(k.Models) && !slices.Contains(k.Models, AllTeamModels) && !anyIn(k.Models, names) {
		return false, false
	}
	if t != nil && !allAccess(t.Models) && !anyIn(t.Models, names) {
		return false, true
	}
	return true, false
}

// Entries of models that allow every model, as in LiteLLM (besides an
// empty list).
const (
	AllModels      = "*"
	AllProxyModels = "all-proxy-models"
)

// allAccess reports whether a models list allows every model.
func allAccess(models []string) bool {
	return len(models) == 0 || slices.Contains(models, AllModels) || slices.Contains(models, AllProxyModels)
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
