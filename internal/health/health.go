package health

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/maasgate/maasgate/internal/deployment"
)

// Probe modes, for Options.Mode and model_info.health_check.
const (
	ModeCheap      = "cheap"      // GET /health, then GET /v1/models lists the model
	ModeCompletion = "completion" // a real one-token request
)

// Defaults applied by New to zero Options fields.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultConcurrency = 16
)

// Options configure a Prober. Client is required; every zero field else
// takes its default.
type Options struct {
	// Client sends the probes. It is built once by the caller (a tuned
	// transport, no overall Timeout needed) and shared by every probe.
	Client *http.Client
	// Timeout bounds one probe of one deployment, all its requests
	// included (default 10s).
	Timeout time.Duration
	// Concurrency is how many deployments are probed at once (default 16).
	Concurrency int
	// Mode is the probe used unless a deployment's model_info.health_check
	// names another: ModeCheap (the default, also for "") or ModeCompletion.
	Mode string
	// Logger receives state changes and warnings. Nil discards them.
	Logger *slog.Logger
	// Now stamps results and measures their duration. Nil means time.Now.
	Now func() time.Time
	// Observe, when not nil, is called with every probe's result, from
	// Check and from Run's rounds (for metrics).
	Observe func(Result)
	// Share, when not nil, spreads Run's probing over the gateway's
	// replicas: each round probes only the deployments this replica
	// claims, publishes their results, and learns the others' through
	// Apply.
	Share Share
}

// Share is how replicas divide the background probes between them.
type Share interface {
	// Claim reports whether this replica probes the deployment id this
	// round; a claim lasts ttl and is renewed by claiming again. It
	// answers true when the replicas cannot be asked (each probes all).
	Claim(ctx context.Context, id string, ttl time.Duration) bool
	// Publish tells the other replicas a result of this replica's probe.
	Publish(r Result)
}

// Result is the outcome of probing one deployment.
type Result struct {
	ID      string // model_info.id
	Group   string // model_name
	Model   string // litellm_params.model as written
	APIBase string // api_base without user info or query
	Healthy bool
	// Error says what failed, naming the request ("GET /health: 503
	// Service Unavailable"); "" when healthy. It never contains the
	// api_key or the api_base's query.
	Error string
	// Status is the HTTP status of the failure (LiteLLM's
	// exception_status): 404 when /v1/models does not list the model, 0 for
	// connection errors, timeouts and unreadable answers.
	Status   int
	Checked  time.Time // when the probe started
	Duration time.Duration
}

// probe returns r as the deployment records it.
func (r Result) probe() deployment.ProbeResult {
	return deployment.ProbeResult{
		Healthy:  r.Healthy,
		Error:    r.Error,
		Status:   r.Status,
		Checked:  r.Checked,
		Duration: r.Duration,
	}
}

// Prober probes deployments. Its methods are safe for concurrent use.
type Prober struct {
	client      *http.Client
	timeout     time.Duration
	concurrency int
	completion  bool // Options.Mode == ModeCompletion
	log         *slog.Logger
	now         func() time.Time
	observe     func(Result)
	share       Share

	mu     sync.Mutex
	latest map[string]Result // by deployment id, from the last round of Run

	groupsDown map[string]bool // groups with no healthy deployment; Run's goroutine only
}

// New returns a Prober for o with defaults applied. It panics when o.Client
// is nil or o.Mode is not "", ModeCheap or ModeCompletion: both are the
// caller's mistake, and the mode comes from a validated config.
func New(o Options) *Prober {
	if o.Client == nil {
		panic("health.New: nil Client")
	}
	p := &Prober{
		client:      o.Client,
		timeout:     o.Timeout,
		concurrency: o.Concurrency,
		log:         o.Logger,
		now:         o.Now,
		observe:     o.Observe,
		share:       o.Share,
		latest:      map[string]Result{},
	}
	switch o.Mode {
	case "", ModeCheap:
	case ModeCompletion:
		p.completion = true
	default:
		panic(fmt.Sprintf("health.New: mode %q: want %q or %q", o.Mode, ModeCheap, ModeCompletion))
	}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	if p.concurrency <= 0 {
		p.concurrency = DefaultConcurrency
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p
}

// Check probes ds now, at most Options.Concurrency at a time and each within
// Options.Timeout, and returns one Result per deployment in the order given.
// It does not change the deployments: use it to answer /health on demand.
// When ctx ends first, the probes not yet done fail with its error.
func (p *Prober) Check(ctx context.Context, ds []*deployment.Deployment) []Result {
	results := make([]Result, len(ds))
	var g errgroup.Group
	g.SetLimit(p.concurrency)
	for i, d := range ds {
		g.Go(func() error {
			results[i] = p.probe(ctx, d)
			if p.observe != nil && ctx.Err() == nil {
				p.observe(results[i])
			}
			return nil
		})
	}
	_ = g.Wait() // probes report through results, never an error
	return results
}

// Run probes list() every interval until ctx ends, the first round at once,
// and returns ctx.Err(). list is called at every round, so deployments added
// or removed at runtime are followed. Each result is written onto its deployment with
// SetProbe, so a deployment that fails leaves rotation and one that passes
// again is back after the next round. A round cut short by ctx is dropped
// rather than applied, so shutting down never marks backends unhealthy.
//
// A round that leaves every deployment of a group unhealthy is still applied
// (routing then falls back or answers 429), and a warning naming the group is
// logged when it happens (once, not at every round), with a line when the
// group has a healthy deployment again. Rounds do not overlap: a round slower than
// interval delays the next.
func (p *Prober) Run(ctx context.Context, interval time.Duration, list func() []*deployment.Deployment) error {
	if interval <= 0 {
		return fmt.Errorf("health: interval %v: must be positive", interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		all := list()
		ds := all
		if p.share != nil {
			// The claim outlives the wait for the next round and the
			// round itself, with a second to spare.
			ds = p.claimed(ctx, all, interval+p.timeout+time.Second)
		}
		p.round(ctx, ds, all)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// claimed returns the deployments of ds this replica probes this round.
func (p *Prober) claimed(ctx context.Context, ds []*deployment.Deployment, ttl time.Duration) []*deployment.Deployment {
	mine := ds[:0:0]
	for _, d := range ds {
		if p.share.Claim(ctx, d.ID, ttl) {
			mine = append(mine, d)
		}
	}
	return mine
}

// Apply records a result another replica's probe found, as if this
// replica had probed: the deployment leaves or rejoins rotation, the
// change is logged once, and Latest reports it.
func (p *Prober) Apply(d *deployment.Deployment, r Result) {
	p.logChange(d, r)
	d.SetProbe(r.probe())
	p.mu.Lock()
	p.latest[r.ID] = r
	p.mu.Unlock()
}

// round probes ds and applies the results; all are the deployments
// served (ds and those other replicas probe), for the groups' state.
func (p *Prober) round(ctx context.Context, ds, all []*deployment.Deployment) {
	results := p.Check(ctx, ds)
	if ctx.Err() != nil {
		return
	}
	latest := make(map[string]Result, len(results))
	for i, d := range ds {
		r := results[i]
		p.logChange(d, r)
		d.SetProbe(r.probe())
		latest[r.ID] = r
		if p.share != nil {
			p.share.Publish(r)
		}
	}
	type tally struct{ total, unhealthy int }
	groups := map[string]*tally{}
	served := make(map[string]bool, len(all))
	for _, d := range all {
		served[d.ID] = true
		pr := d.Probe()
		if pr == nil {
			continue // not probed yet, here or by another replica
		}
		g := groups[d.Group]
		if g == nil {
			g = &tally{}
			groups[d.Group] = g
		}
		g.total++
		if !pr.Healthy {
			g.unhealthy++
		}
	}
	p.mu.Lock()
	if p.share != nil {
		// Results other replicas published stay until they go stale.
		for id, r := range p.latest {
			if _, ok := latest[id]; !ok && served[id] && p.now().Sub(r.Checked) < staleAfter {
				latest[id] = r
			}
		}
	}
	p.latest = latest
	p.mu.Unlock()
	down := make(map[string]bool, len(groups))
	for name, g := range groups {
		if g.unhealthy < g.total {
			if p.groupsDown[name] {
				p.log.Info("health: the model group has a healthy deployment again", "model_group", name)
			}
			continue
		}
		down[name] = true
		if !p.groupsDown[name] {
			p.log.Warn("health: every deployment of the model group failed its probe; none is in rotation",
				"model_group", name, "deployments", g.total)
		}
	}
	p.groupsDown = down
}

// logChange logs a deployment leaving or rejoining rotation.
func (p *Prober) logChange(d *deployment.Deployment, r Result) {
	prev := d.Probe()
	switch {
	case !r.Healthy && (prev == nil || prev.Healthy):
		p.log.Warn("health: deployment failed its probe; out of rotation",
			"model_group", r.Group, "model_id", r.ID, "api_base", r.APIBase, "error", r.Error, "status", r.Status)
	case r.Healthy && prev != nil && !prev.Healthy:
		p.log.Info("health: deployment passed its probe; back in rotation",
			"model_group", r.Group, "model_id", r.ID, "api_base", r.APIBase)
	}
}

// staleAfter is how long a result another replica published is kept
// without a newer one (its prober may be gone).
const staleAfter = 10 * time.Minute

// Latest returns the most recent result of Run for each deployment it
// probed, by deployment id: a copy, empty before the first round ends.
// Deployments no longer listed drop out at the next round.
func (p *Prober) Latest() map[string]Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.latest)
}
