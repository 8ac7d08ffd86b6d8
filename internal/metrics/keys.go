package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maasgate/maasgate/internal/keys"
)

// DefaultMaxKeys is how many virtual keys get labels of their own unless
// Options.MaxKeys says otherwise.
const DefaultMaxKeys = 1000

// other labels the keys (and teams) past the cap.
const other = "other"

// keyLabels are the values of LiteLLM's key and team labels for the calls
// of one key: hashed_api_key, api_key_alias, team, team_alias. They are
// made once per key and reused, so a call labels its series without
// building strings; a call's series are cached by the pointer.
type keyLabels struct {
	token                        [32]byte // the key's; zero for shared labels
	hash, alias, team, teamAlias string
}

// noKey labels the master key's calls, as LiteLLM labels requests without
// a virtual key.
var noKey = &keyLabels{hash: none, alias: none, team: none, teamAlias: none}

// otherKey labels the keys past the cap whose team is past it too.
var otherKey = &keyLabels{hash: other, alias: other, team: other, teamAlias: other}

// current reports whether l still describes key k of team t.
func (l *keyLabels) current(k *keys.Key, t *keys.Team) bool {
	team, teamAlias := teamLabels(t)
	return l.alias == orNone(k.Alias) && l.team == team && l.teamAlias == teamAlias
}

func teamLabels(t *keys.Team) (id, alias string) {
	if t == nil {
		return none, none
	}
	return orNone(t.ID), orNone(t.Alias)
}

// keyLabelsOf returns the labels of the calls of key k of team t (nil k
// for the master key). The first maxKeys keys seen get their own; later
// ones share "other" for the key's labels and keep their team's, for the
// first maxKeys teams, past which the team labels are "other" too. A hit
// is one sync.Map lookup and three string comparisons: no allocation.
func (m *Metrics) keyLabelsOf(k *keys.Key, t *keys.Team) *keyLabels {
	if k == nil {
		return noKey
	}
	if l, ok := m.keyLabels.Load(k.Token); ok && l.(*keyLabels).current(k, t) {
		return l.(*keyLabels)
	}
	team, teamAlias := teamLabels(t)
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.keyLabels.Load(k.Token); ok {
		old := l.(*keyLabels)
		if old.current(k, t) {
			return old
		}
		// Renamed, or its team was: new series; the old ones go at the
		// next scrape.
		m.retired = append(m.retired, old)
	} else if m.keyCount >= m.maxKeys {
		return m.overflowLabels(team, teamAlias)
	} else {
		m.keyCount++
	}
	l := &keyLabels{token: k.Token, hash: keys.TokenHex(k.Token), alias: orNone(k.Alias), team: team, teamAlias: teamAlias}
	m.keyLabels.Store(k.Token, l)
	return l
}

// teamKey identifies the labels of a team.
type teamKey struct{ id, alias string }

// overflowLabels are the labels of a key past the cap, of a team with
// these labels. m.mu is held.
func (m *Metrics) overflowLabels(team, teamAlias string) *keyLabels {
	tk := teamKey{team, teamAlias}
	if l, ok := m.overflow[tk]; ok {
		return l
	}
	if len(m.overflow) >= m.maxKeys {
		return otherKey
	}
	l := &keyLabels{hash: other, alias: other, team: team, teamAlias: teamAlias}
	m.overflow[tk] = l
	return l
}

// keyedVecs are the metrics labelled with the key: the per-key series
// LiteLLM has (requests, failures, tokens, cached tokens, spend).
func (m *Metrics) keyedVecs() []*prometheus.MetricVec {
	return []*prometheus.MetricVec{m.proxyTotal.MetricVec, m.proxyFailed.MetricVec,
		m.inputTokens.MetricVec, m.outputTokens.MetricVec, m.totalTokens.MetricVec, m.spend.MetricVec,
		m.requests.MetricVec, m.apiFailed.MetricVec, m.cachedIn.MetricVec}
}

// pruneKeys deletes the series of keys that no longer exist and of labels
// a key no longer has (a new alias), frees their places under the cap, and
// drops the cached series that use them. m.mu is held.
func (m *Metrics) pruneKeys() {
	var gone []*keyLabels
	if set := m.keys(); set != nil {
		m.keyLabels.Range(func(_, v any) bool {
			l := v.(*keyLabels)
			if _, _, err := set.CheckToken(l.token, m.now()); errors.Is(err, keys.ErrUnknown) {
				gone = append(gone, l)
				m.keyLabels.Delete(l.token)
				m.keyCount--
			}
			return true
		})
	}
	gone = append(gone, m.retired...)
	m.retired = nil
	if len(gone) == 0 {
		return
	}
	dead := make(map[*keyLabels]bool, len(gone))
	for _, l := range gone {
		dead[l] = true
		match := prometheus.Labels{"hashed_api_key": l.hash, "api_key_alias": l.alias, "team": l.team, "team_alias": l.teamAlias}
		for _, v := range m.keyedVecs() {
			v.DeletePartialMatch(match)
		}
	}
	m.calls.Range(func(k, _ any) bool {
		if dead[k.(callKey).key] {
			m.calls.Delete(k)
		}
		return true
	})
	m.failures.Range(func(k, _ any) bool {
		if dead[k.(failKey).key] {
			m.failures.Delete(k)
		}
		return true
	})
	// Attempts cache their failed-attempt children by key: dropped whole,
	// as deleting keys is rare.
	m.attempts.Clear()
}
