package keys

import (
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"time"
)

// Key is a virtual key as stored: everything but its secret. The fields
// are LiteLLM's (LiteLLM_VerificationToken); nil limits mean none. Its
// timestamps, metadata and per-model limits are in compact forms (see
// Time, MetadataOf and ModelLimits) so that 100,000 keys fit in 50 MB.
//
// A Key in a Set is shared by every request and may share its strings and
// slices with other keys: it is never modified, only replaced by a copy.
type Key struct {
	Token     [32]byte // SHA-256 of the secret (LiteLLM's token is its hex)
	KeyName   string   // "sk-...WXYZ"
	Alias     string   // key_alias; "" for none, else unique
	UserID    string
	TeamID    string
	Models    []string // group names, aliases or access groups; empty = every model
	Metadata  string   // a JSON object as MetadataOf renders it; "" for none
	Blocked   bool
	Expires   Time // zero: never
	CreatedAt Time
	UpdatedAt Time

	MaxBudget      *float64
	BudgetDuration string // "" for none, else a Duration
	BudgetResetAt  Time   // zero when there is no budget_duration
	Spend          float64

	TPMLimit            *int64
	RPMLimit            *int64
	MaxParallelRequests *int64
	ModelLimits         ModelLimits // model_rpm_limit and model_tpm_limit
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
//
// Keys are indexed by the first 8 bytes of their token: a SHA-256 is
// uniform, so those bytes are as good a hash as the whole, and a map of
// uint64 keys takes some 25 bytes a key where one of [32]byte keys takes
// 65 (100,000 keys must fit in 50 MB). The rare key whose first 8 bytes
// another key already has goes to clashes, by its whole token.
type Set struct {
	byToken  map[uint64]*Key
	clashes  map[[32]byte]*Key // nil while empty
	teams    map[string]*Team
	teamKeys map[string][]*Key
}

// prefix is a token's index in Set.byToken.
func prefix(t [32]byte) uint64 { return binary.LittleEndian.Uint64(t[:8]) }

// key returns the key with token t, or nil.
func (s *Set) key(t [32]byte) *Key {
	if k := s.byToken[prefix(t)]; k != nil && k.Token == t {
		return k
	}
	if s.clashes != nil {
		return s.clashes[t]
	}
	return nil
}

// add adds or replaces k (by token). It must only be called on a Set being
// built.
func (s *Set) add(k *Key) {
	p := prefix(k.Token)
	if o := s.byToken[p]; o == nil || o.Token == k.Token {
		s.byToken[p] = k
		return
	}
	if s.clashes == nil {
		s.clashes = map[[32]byte]*Key{}
	}
	s.clashes[k.Token] = k
}

// remove removes the key with token t and returns it (nil for none). It
// must only be called on a Set being built.
func (s *Set) remove(t [32]byte) *Key {
	p := prefix(t)
	k := s.byToken[p]
	if k == nil || k.Token != t {
		if k = s.clashes[t]; k != nil {
			delete(s.clashes, t)
		}
		return k
	}
	delete(s.byToken, p)
	for ct, c := range s.clashes {
		if prefix(ct) == p {
			s.byToken[p] = c
			delete(s.clashes, ct)
			break
		}
	}
	return k
}

// NewSet returns a snapshot of keys and teams.
func NewSet(keys []*Key, teams ...*Team) *Set {
	s := &Set{byToken: make(map[uint64]*Key, len(keys)), teams: make(map[string]*Team, len(teams)), teamKeys: map[string][]*Key{}}
	for _, k := range keys {
		s.add(k)
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
	out := make([]*Key, 0, s.Len())
	for _, k := range s.byToken {
		out = append(out, k)
	}
	for _, k := range s.clashes {
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
	n := &Set{byToken: maps.Clone(s.byToken), clashes: maps.Clone(s.clashes), teams: maps.Clone(s.teams), teamKeys: maps.Clone(s.teamKeys)}
	touched := map[string]bool{}
	remove := func(t [32]byte) {
		if k := n.remove(t); k != nil && k.TeamID != "" {
			touched[k.TeamID] = true
		}
	}
	for _, t := range drop {
		remove(t)
	}
	for _, k := range ks {
		remove(k.Token)
		n.add(k)
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
			if n.key(k.Token) != nil && !added[k.Token] {
				list = append(list, k)
			}
		}
		for _, k := range ks {
			if k.TeamID == id && n.key(k.Token) == k {
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
func (s *Set) Len() int { return len(s.byToken) + len(s.clashes) }

// Check returns the key whose secret this is and its team (nil for none),
// if it may be used at now: ErrUnknown for no such key; ErrBlocked,
// ErrExpired or ErrTeamBlocked (with the key and team) for one that may
// not.
func (s *Set) Check(secret string, now time.Time) (*Key, *Team, error) {
	return s.CheckToken(Token(secret), now)
}

// CheckToken is Check for a secret already hashed.
func (s *Set) CheckToken(token [32]byte, now time.Time) (*Key, *Team, error) {
	k := s.key(token)
	if k == nil {
		return nil, nil, ErrUnknown
	}
	t := s.teams[k.TeamID]
	switch {
	case k.Blocked:
		return k, t, ErrBlocked
	case !k.Expires.IsZero() && !now.Before(k.Expires.Time()):
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
