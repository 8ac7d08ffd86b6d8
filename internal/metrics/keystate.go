package metrics

import (
	"encoding/hex"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/limits"
)

// Spender gives the live spend of keys and teams (usage.Ledger does).
type Spender interface {
	KeySpend(k *keys.Key) float64
	TeamSpend(t *keys.Team) float64
}

// Limiter lists the rate limit counters of the keys and teams in use
// (limits.Limiter does).
type Limiter interface {
	Active() []*limits.Counter
}

// LiteLLM's gauges of virtual keys' and teams' budgets and rate limits,
// read at scrape time from the key set, the spend ledger and the rate
// limiter: nothing is recorded on the request path. Keys are those with
// labels of their own (that made a request, within Options.MaxKeys), so
// the gauges are bounded as the counters are; teams, which only the
// admin creates, are all there.
var (
	keyBudgetLabels  = []string{"hashed_api_key", "api_key_alias"}
	teamBudgetLabels = []string{"team", "team_alias"}

	descKeyRemainingBudget = prometheus.NewDesc("litellm_remaining_api_key_budget_metric",
		"USD the virtual key may still spend: max_budget minus its live spend (keys with a max_budget).", keyBudgetLabels, nil)
	descKeyMaxBudget = prometheus.NewDesc("litellm_api_key_max_budget_metric",
		"The virtual key's max_budget in USD (keys with one).", keyBudgetLabels, nil)
	descKeyBudgetHours = prometheus.NewDesc("litellm_api_key_budget_remaining_hours_metric",
		"Hours until the virtual key's budget resets (keys with a budget_duration).", keyBudgetLabels, nil)
	descTeamRemainingBudget = prometheus.NewDesc("litellm_remaining_team_budget_metric",
		"USD the team may still spend: max_budget minus its live spend (teams with a max_budget).", teamBudgetLabels, nil)
	descTeamMaxBudget = prometheus.NewDesc("litellm_team_max_budget_metric",
		"The team's max_budget in USD (teams with one).", teamBudgetLabels, nil)
	descTeamBudgetHours = prometheus.NewDesc("litellm_team_budget_remaining_hours_metric",
		"Hours until the team's budget resets (teams with a budget_duration).", teamBudgetLabels, nil)

	descKeyLimitAllowed = prometheus.NewDesc("litellm_api_key_rate_limit_allowed_metric",
		"The virtual key's limit by rate_limit_type: requests (rpm_limit), tokens (tpm_limit), max_parallel_requests; keys in use with the limit.",
		append(keyBudgetLabels[:2:2], "rate_limit_type"), nil)
	descKeyLimitUsed = prometheus.NewDesc("litellm_api_key_rate_limit_used_metric",
		"What the virtual key used of that limit on this replica: requests or tokens this minute, requests in flight.",
		append(keyBudgetLabels[:2:2], "rate_limit_type"), nil)
	descTeamLimitAllowed = prometheus.NewDesc("litellm_team_rate_limit_allowed_metric",
		"The team's limit by rate_limit_type: requests (rpm_limit), tokens (tpm_limit), max_parallel_requests; teams in use with the limit.",
		append(teamBudgetLabels[:2:2], "rate_limit_type"), nil)
	descTeamLimitUsed = prometheus.NewDesc("litellm_team_rate_limit_used_metric",
		"What the team used of that limit on this replica: requests or tokens this minute, requests in flight.",
		append(teamBudgetLabels[:2:2], "rate_limit_type"), nil)

	descTeams       = prometheus.NewDesc("litellm_teams_count", "Teams.", nil, nil)
	descTeamMembers = prometheus.NewDesc("litellm_team_members_metric", "Members of the team (members_with_roles).", teamBudgetLabels, nil)

	keyModelLabels                = []string{"hashed_api_key", "api_key_alias", "model", "model_id"}
	descKeyModelRemainingRequests = prometheus.NewDesc("litellm_remaining_api_key_requests_for_model",
		"Requests the virtual key may still send to the model this minute under its model_rpm_limit, on this replica.", keyModelLabels, nil)
	descKeyModelRemainingTokens = prometheus.NewDesc("litellm_remaining_api_key_tokens_for_model",
		"Tokens the virtual key may still use on the model this minute under its model_tpm_limit, on this replica.", keyModelLabels, nil)
)

// keyCollector exports the key and team gauges at scrape time.
type keyCollector struct{ m *Metrics }

func (c *keyCollector) Describe(ch chan<- *prometheus.Desc) {
	describe(ch, descKeyRemainingBudget, descKeyMaxBudget, descKeyBudgetHours,
		descTeamRemainingBudget, descTeamMaxBudget, descTeamBudgetHours,
		descKeyLimitAllowed, descKeyLimitUsed, descTeamLimitAllowed, descTeamLimitUsed,
		descKeyModelRemainingRequests, descKeyModelRemainingTokens, descTeams, descTeamMembers)
}

func (c *keyCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	now := m.now()
	gauge := gauges(ch)
	if set := m.keys(); set != nil {
		m.keyLabels.Range(func(_, v any) bool {
			l := v.(*keyLabels)
			if k, _, _ := set.CheckToken(l.token, now); k != nil && k.MaxBudget != nil {
				spend := k.Spend
				if m.spender != nil {
					spend = m.spender.KeySpend(k)
				}
				gauge(descKeyMaxBudget, *k.MaxBudget, l.hash, l.alias)
				gauge(descKeyRemainingBudget, *k.MaxBudget-spend, l.hash, l.alias)
				if at := k.BudgetResetAt.Time(); !k.BudgetResetAt.IsZero() {
					gauge(descKeyBudgetHours, hoursUntil(at, now), l.hash, l.alias)
				}
			}
			return true
		})
		teams := set.Teams()
		gauge(descTeams, float64(len(teams)))
		for _, t := range teams {
			id, alias := teamLabels(t)
			gauge(descTeamMembers, float64(len(t.Members)), id, alias)
			if t.MaxBudget == nil {
				continue
			}
			spend := t.Spend
			if m.spender != nil {
				spend = m.spender.TeamSpend(t)
			}
			gauge(descTeamMaxBudget, *t.MaxBudget, id, alias)
			gauge(descTeamRemainingBudget, *t.MaxBudget-spend, id, alias)
			if !t.BudgetResetAt.IsZero() {
				gauge(descTeamBudgetHours, hoursUntil(t.BudgetResetAt, now), id, alias)
			}
		}
	}
	if m.limiter != nil {
		c.limits(gauge, now)
	}
}

// limits exports the rate limit gauges of the counters in use.
func (c *keyCollector) limits(gauge gaugeFunc, now time.Time) {
	m := c.m
	set := m.keys()
	for _, ctr := range m.limiter.Active() {
		u := ctr.Local(now.UnixNano())
		switch ctr.Kind() {
		case limits.Key:
			l := m.labelsOfHash(ctr.ID())
			if l == nil {
				continue
			}
			eachLimit(u, func(typ string, limit, used int64) {
				gauge(descKeyLimitAllowed, float64(limit), l.hash, l.alias, typ)
				gauge(descKeyLimitUsed, float64(used), l.hash, l.alias, typ)
			})
		case limits.Team:
			var t *keys.Team
			if set != nil {
				t = set.Team(ctr.ID())
			}
			if t == nil {
				continue
			}
			id, alias := teamLabels(t)
			eachLimit(u, func(typ string, limit, used int64) {
				gauge(descTeamLimitAllowed, float64(limit), id, alias, typ)
				gauge(descTeamLimitUsed, float64(used), id, alias, typ)
			})
		case limits.KeyModel:
			hash, model, ok := strings.Cut(ctr.ID(), ":")
			l := m.labelsOfHash(hash)
			if !ok || l == nil {
				continue
			}
			if u.Spec.RPM >= 0 {
				gauge(descKeyModelRemainingRequests, float64(max(0, u.Spec.RPM-u.Requests)), l.hash, l.alias, model, none)
			}
			if u.Spec.TPM >= 0 {
				gauge(descKeyModelRemainingTokens, float64(max(0, u.Spec.TPM-u.Tokens)), l.hash, l.alias, model, none)
			}
		}
	}
}

// eachLimit calls f for each limit u's counter has, with what it used.
func eachLimit(u limits.Usage, f func(typ string, limit, used int64)) {
	for _, l := range [...]struct {
		typ         limits.Type
		limit, used int64
	}{
		{limits.Requests, u.Spec.RPM, u.Requests},
		{limits.Tokens, u.Spec.TPM, u.Tokens},
		{limits.Parallel, u.Spec.Parallel, u.InFlight},
	} {
		if l.limit >= 0 {
			f(l.typ.String(), l.limit, l.used)
		}
	}
}

// labelsOfHash returns the labels of the key whose token is hash (hex),
// or nil when the key has none of its own (past Options.MaxKeys, or it
// has not finished a request yet).
func (m *Metrics) labelsOfHash(hash string) *keyLabels {
	var token [32]byte
	if hex.DecodedLen(len(hash)) != len(token) {
		return nil
	}
	if _, err := hex.Decode(token[:], []byte(hash)); err != nil {
		return nil
	}
	if l, ok := m.keyLabels.Load(token); ok {
		return l.(*keyLabels)
	}
	return nil
}

// hoursUntil returns the hours from now to at, at least 0.
func hoursUntil(at, now time.Time) float64 {
	return max(0, at.Sub(now).Hours())
}
