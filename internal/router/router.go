// Package router decides which deployment serves a request. It is pure logic:
// no HTTP server, no SQL, no Redis. Its state is an immutable table (groups,
// ids, aliases, strategy) swapped atomically when deployments or settings
// change, so a pick reads one pointer, takes no lock and never blocks.
// Per-deployment live state (in-flight, cooldown) lives on the
// deployment.Deployment values the table points to; a rebuild keeps the same
// values for unchanged deployments, so their state survives.
package router

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
)

// Strategy names, as in LiteLLM's router_settings.routing_strategy, plus
// round-robin.
const (
	SimpleShuffle = "simple-shuffle"
	RoundRobin    = "round-robin"
	LeastBusy     = "least-busy"
	LatencyBased  = "latency-based-routing"
	UsageBased    = "usage-based-routing"
	UsageBasedV2  = "usage-based-routing-v2"
	CostBased     = "cost-based-routing"
)

// timeOf converts unix nanoseconds to a time.
func timeOf(ns int64) time.Time { return time.Unix(0, ns) }

// ErrNoDeployments is returned by Pick when every deployment of the group is
// cooling down or at its in-flight cap.
var ErrNoDeployments = errors.New("no deployments available")

// Router holds the current routing table.
type Router struct {
	table atomic.Pointer[table]
	log   *slog.Logger

	// Now and Uint64N are the router's clock and randomness; tests replace
	// them to make picks deterministic. Uint64N must be safe for concurrent
	// use and return a value in [0, n).
	Now     func() time.Time
	Uint64N func(n uint64) uint64

	// OnCooldown, when set (before serving), is told of every cooldown
	// this router starts, to share it with other replicas. It must not
	// block: it runs on the request path.
	OnCooldown func(d *deployment.Deployment, until time.Time)
	// Refill, when set, fetches more of the shared rpm grants of ds at once
	// (a Redis round trip bounded by ctx) and reports whether it got any.
	Refill func(ctx context.Context, ds []*deployment.Deployment) bool
}

// New returns a router serving models with settings. Deployments from the
// config file are marked as such.
func New(models []config.Model, settings config.RouterSettings, log *slog.Logger) *Router {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Router{log: log, Now: time.Now, Uint64N: rand.Uint64N}
	ds := make([]*deployment.Deployment, len(models))
	for i, m := range models {
		ds[i] = deployment.New(m, deployment.FromConfig)
	}
	r.table.Store(r.build(ds, settings))
	return r
}

// Settings returns the router settings in force.
func (r *Router) Settings() config.RouterSettings { return r.table.Load().settings }

// Timeouts returns router_settings timeout and stream_timeout, for the
// request path, which needs only these and not a copy of all the settings.
func (r *Router) Timeouts() (timeout, streamTimeout time.Duration) {
	s := &r.table.Load().settings
	return s.Timeout, s.StreamTimeout
}

// Deployments returns every deployment, grouped by model group name in
// sorted order, each group in tier then definition order.
func (r *Router) Deployments() []*deployment.Deployment {
	t := r.table.Load()
	out := make([]*deployment.Deployment, 0, len(t.byID))
	for _, name := range t.groupNames {
		out = append(out, t.groups[name].all...)
	}
	return out
}

// Deployment returns the deployment with the given id.
func (r *Router) Deployment(id string) (*deployment.Deployment, bool) {
	d, ok := r.table.Load().byID[id]
	return d, ok
}

// ModelNames returns the names clients may send as "model": every group and
// every alias not marked hidden, sorted.
func (r *Router) ModelNames() []string { return r.table.Load().publicNames }

// Replace swaps in a new set of deployments and settings. A deployment whose
// id and definition are unchanged keeps its *Deployment value, and with it
// its in-flight count and cooldown; requests in flight on a removed or
// changed deployment finish on the value they hold.
func (r *Router) Replace(ds []*deployment.Deployment, settings config.RouterSettings) {
	old := r.table.Load()
	merged := make([]*deployment.Deployment, len(ds))
	for i, d := range ds {
		if prev, ok := old.byID[d.ID]; ok {
			if sameDefinition(prev, d) {
				d = prev
			} else {
				d.Inherit(prev) // an edit keeps the minute's usage and the rpm grant
			}
		}
		merged[i] = d
	}
	r.table.Store(r.build(merged, settings))
}

// Unchanged reports whether ds and settings are what the router serves
// already (the same deployments, in order, with the same definitions), so
// a caller reloading them can leave the table, and the strategies' state,
// alone.
func (r *Router) Unchanged(ds []*deployment.Deployment, settings config.RouterSettings) bool {
	cur := r.Deployments()
	old := r.table.Load()
	if len(cur) != len(ds) || !reflect.DeepEqual(old.settings, settings) {
		return false
	}
	for _, d := range ds {
		prev, ok := old.byID[d.ID]
		if !ok || !sameDefinition(prev, d) {
			return false
		}
	}
	return true
}

func sameDefinition(a, b *deployment.Deployment) bool {
	return a.Group == b.Group && a.Source == b.Source && reflect.DeepEqual(a.Model, b.Model)
}

// table is an immutable snapshot of the routing state.
type table struct {
	settings    config.RouterSettings
	defaultCap  int64
	args        *strategyArgs
	groups      map[string]*Group
	groupNames  []string
	byID        map[string]*deployment.Deployment
	aliases     map[string]string
	publicNames []string
	// wildcards are the groups whose name has a "*" (LiteLLM's wildcard
	// routing: "*", "openai/*"), the most specific first.
	wildcards []*Group
}

func (r *Router) build(ds []*deployment.Deployment, settings config.RouterSettings) *table {
	t := &table{
		settings: settings,
		groups:   make(map[string]*Group),
		byID:     make(map[string]*deployment.Deployment, len(ds)),
		aliases:  make(map[string]string, len(settings.ModelGroupAlias)),
	}
	t.defaultCap = int64(settings.DefaultMaxParallelRequests)
	t.args = newStrategyArgs(settings.RoutingStrategyArgs)
	byGroup := make(map[string][]*deployment.Deployment)
	for _, d := range ds {
		if _, dup := t.byID[d.ID]; dup {
			r.log.Warn("duplicate deployment id; keeping the first", "model_id", d.ID)
			continue
		}
		t.byID[d.ID] = d
		byGroup[d.Group] = append(byGroup[d.Group], d)
	}
	for name, members := range byGroup {
		t.groups[name] = newGroup(name, members)
		t.groups[name].strategy = strategyOf(&settings, name)
		t.groupNames = append(t.groupNames, name)
	}
	slices.Sort(t.groupNames)
	for _, name := range t.groupNames {
		if strings.Contains(name, "*") {
			t.wildcards = append(t.wildcards, t.groups[name])
		} else {
			t.publicNames = append(t.publicNames, name)
		}
	}
	slices.SortFunc(t.wildcards, func(a, b *Group) int { return config.WildcardOrder(a.Name, b.Name) })
	for alias, a := range settings.ModelGroupAlias {
		t.aliases[alias] = a.Model
		if _, isGroup := t.groups[alias]; !a.Hidden && !isGroup {
			t.publicNames = append(t.publicNames, alias)
		}
		if g := t.groups[a.Model]; g != nil && alias != g.Name {
			g.aliases = append(g.aliases, alias)
		}
	}
	for _, g := range t.groups {
		slices.Sort(g.aliases)
	}
	slices.Sort(t.publicNames)
	return t
}

// Group is the set of deployments sharing a model_name, split into priority
// tiers by litellm_params.order: lower first, and deployments without an
// order last, as LiteLLM uses only the lowest declared order among healthy
// deployments and the unordered ones when no ordered one is healthy.
type Group struct {
	Name  string
	all   []*deployment.Deployment
	tiers []*tier
	// accessGroups are the model_info.access_groups of its deployments:
	// names a virtual key's models may list to reach the group.
	accessGroups []string
	// aliases are the model_group_alias names that lead to it.
	aliases []string
	// strategy is its routing strategy: its entry in
	// model_group_routing_strategy, else routing_strategy.
	strategy string
}

// strategyOf returns the routing strategy of group.
func strategyOf(s *config.RouterSettings, group string) string {
	if v := s.ModelGroupRoutingStrategy[group]; v != "" {
		return v
	}
	if s.RoutingStrategy != "" {
		return s.RoutingStrategy
	}
	return SimpleShuffle
}

// Strategy returns the group's routing strategy.
func (g *Group) Strategy() string { return g.strategy }

// Aliases returns the model_group_alias names that lead to the group,
// sorted.
func (g *Group) Aliases() []string { return g.aliases }

// Deployments returns the group's deployments in tier order.
func (g *Group) Deployments() []*deployment.Deployment { return g.all }

// AccessGroups returns the access groups (model_info.access_groups) that
// any of the group's deployments belongs to, sorted.
func (g *Group) AccessGroups() []string { return g.accessGroups }

func newGroup(name string, ds []*deployment.Deployment) *Group {
	sorted := slices.Clone(ds)
	slices.SortStableFunc(sorted, func(a, b *deployment.Deployment) int {
		return cmp.Compare(tierOf(a), tierOf(b))
	})
	g := &Group{Name: name, all: sorted}
	for _, d := range sorted {
		if list, ok := d.Model.Info.Metadata["access_groups"].([]any); ok {
			for _, v := range list {
				if s, ok := v.(string); ok && !slices.Contains(g.accessGroups, s) {
					g.accessGroups = append(g.accessGroups, s)
				}
			}
		}
	}
	slices.Sort(g.accessGroups)
	for i := 0; i < len(sorted); {
		j := i
		for j < len(sorted) && tierOf(sorted[j]) == tierOf(sorted[i]) {
			j++
		}
		g.tiers = append(g.tiers, newTier(sorted[i:j]))
		i = j
	}
	return g
}

// tierOf sorts deployments without an order (0) after every ordered one.
func tierOf(d *deployment.Deployment) int {
	if d.Order <= 0 {
		return math.MaxInt
	}
	return d.Order
}

// Target is what a request's "model" resolved to: a group, and for a request
// that named a deployment id, that deployment.
type Target struct {
	Group  *Group
	Pinned *deployment.Deployment
	// Wildcard is what the "*" of a wildcard group's name matched in the
	// model asked for: the upstream model is derived from it
	// (deployment.ModelFor).
	Wildcard string
}

// Resolve maps a client's "model" to a target: a group name, an alias of
// one, or a deployment id (which pins the request to that deployment).
func (r *Router) Resolve(model string) (Target, bool) { return r.table.Load().resolve(model) }

func (t *table) resolve(model string) (Target, bool) {
	// An alias wins over a group of the same name, as in LiteLLM.
	if name, ok := t.aliases[model]; ok {
		if g, ok := t.groups[name]; ok {
			return Target{Group: g}, true
		}
		if tg, ok := t.matchWildcards(name); ok { // an alias of a name a wildcard serves
			return tg, true
		}
	}
	if g, ok := t.groups[model]; ok {
		return Target{Group: g}, true
	}
	if d, ok := t.byID[model]; ok {
		return Target{Group: t.groups[d.Group], Pinned: d}, true
	}
	return t.matchWildcards(model)
}

// matchWildcards resolves model through the wildcard groups, the most
// specific first.
func (t *table) matchWildcards(model string) (Target, bool) {
	for _, g := range t.wildcards {
		if capture, ok := config.MatchWildcard(g.Name, model); ok {
			return Target{Group: g, Wildcard: capture}, true
		}
	}
	return Target{}, false
}

// NoDeploymentsError says why Pick found nothing and when to try again.
type NoDeploymentsError struct {
	Model      string
	RetryAfter time.Duration // until the earliest cooldown ends; 0 if none is cooling down
}

func (e *NoDeploymentsError) Error() string {
	return fmt.Sprintf("no deployments available for model %s", e.Model)
}

// Unwrap lets errors.Is match ErrNoDeployments.
func (e *NoDeploymentsError) Unwrap() error { return ErrNoDeployments }

// Pick chooses a deployment for one attempt and counts it in flight; the
// caller must call Release on it when the attempt ends. avoid, when not nil
// and another deployment is available, is not chosen (the one that just
// failed). Only the lowest tier with an available deployment is used. Pick
// does no I/O, takes no lock and allocates nothing unless it fails (or a
// lowest-score strategy picks from a tier of more than 32 deployments).
// The request path uses a Plan, whose Pick also keeps the strategies'
// state; this is the bare pick.
func (r *Router) Pick(tg Target, avoid *deployment.Deployment) (*deployment.Deployment, error) {
	return r.pickIn(r.table.Load(), tg, avoid, pickOpts{})
}

// pickOpts are what a plan adds to a pick: see pickArgs.
type pickOpts struct {
	hint         *Hint
	promptTokens int64
	tags         []string
	tagMode      uint8
	matchAll     bool
}

func (r *Router) pickIn(tb *table, tg Target, avoid *deployment.Deployment, o pickOpts) (*deployment.Deployment, error) {
	a := pickArgs{
		now: r.Now().UnixNano(), avoid: avoid, defaultCap: tb.defaultCap,
		uint64n: r.Uint64N, strategy: tg.Group.strategy, args: tb.args,
		hint: o.hint, promptTokens: o.promptTokens, tags: o.tags, tagMode: o.tagMode, matchAll: o.matchAll,
	}
	if d := tg.Pinned; d != nil {
		// A deployment the request names is tried even if stalled: the
		// client asked for it.
		if d.AvailableDespiteStall(a.now, a.defaultCap) && d.TryAcquire(a.defaultCap) {
			if d.CountRequest(a.now) {
				return d, nil
			}
			d.Release()
		}
		return nil, r.noDeployments(tg.Group.Name, []*deployment.Deployment{d}, a.now)
	}
	for _, t := range tg.Group.tiers {
		// A lost race for the last in-flight slot retries the pick; each
		// round has one fewer free slot, so the loop is bounded.
		for range len(t.ds) + 1 {
			d := t.pick(&a)
			if d == nil && a.avoid != nil {
				a.avoid = nil
				d = t.pick(&a)
				a.avoid = avoid
			}
			if d == nil {
				break
			}
			if d.TryAcquire(a.defaultCap) {
				if d.CountRequest(a.now) {
					return d, nil
				}
				d.Release() // its shared rpm grant ran out meanwhile
			}
		}
	}
	// A stalled deployment is skipped while others can serve; with none
	// left it is tried rather than answering 429, since a stall may be a
	// slow generation and not a dead server (as Envoy's panic threshold
	// ignores outlier ejection when too few hosts are left).
	for _, d := range tg.Group.all {
		if d.Stalled() && a.fits(d) && d.AvailableDespiteStall(a.now, a.defaultCap) && d.TryAcquire(a.defaultCap) {
			if d.CountRequest(a.now) {
				return d, nil
			}
			d.Release()
		}
	}
	return nil, r.noDeployments(tg.Group.Name, tg.Group.all, a.now)
}

func (r *Router) noDeployments(model string, ds []*deployment.Deployment, now int64) error {
	var earliest int64
	for _, d := range ds {
		if u := d.CooldownUntil(time.Unix(0, now)); !u.IsZero() {
			if n := u.UnixNano(); earliest == 0 || n < earliest {
				earliest = n
			}
		}
	}
	e := &NoDeploymentsError{Model: model}
	if earliest > 0 {
		e.RetryAfter = time.Duration(earliest - now)
	}
	return e
}
