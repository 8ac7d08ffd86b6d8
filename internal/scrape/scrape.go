package scrape

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/maasgate/maasgate/internal/deployment"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultInterval = 2 * time.Second
	DefaultTimeout  = time.Second
)

const (
	// concurrency bounds how many servers are scraped at once.
	concurrency = 16
	// validIntervals is how many intervals a scrape's values stay valid:
	// enough to ride out one slow or lost round without going stale.
	validIntervals = 3
	// avgWeight is the weight of each scrape in a deployment's AvgLoad:
	// about the last four scrapes count.
	avgWeight = 0.25
)

// Options configure a Scraper. Client is required; every zero field else
// takes its default.
type Options struct {
	// Client sends the scrapes. It is built once by the caller (a tuned
	// transport, no overall Timeout needed) and shared by every scrape.
	Client *http.Client
	// Interval is the time between two scrapes of one server (default
	// 2s). Values read by a scrape are valid for three intervals.
	Interval time.Duration
	// Timeout bounds one scrape of one server (default 1s). It must be
	// shorter than Interval; a longer one is cut to half the interval.
	Timeout time.Duration
	// Logger receives state changes. Nil discards them.
	Logger *slog.Logger
	// Now stamps scrapes. Nil means time.Now.
	Now func() time.Time
}

// Scraper scrapes the servers of deployments. Its methods are safe for
// concurrent use; rounds never overlap.
type Scraper struct {
	client   *http.Client
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger
	now      func() time.Time

	// busy holds a token while a round runs: rounds are serialised, and a
	// caller waiting for one still honours its context.
	busy chan struct{}
	// failing tells, for each server scraped in the latest round, whether
	// its scrape failed, so only changes are logged. Guarded by busy.
	failing map[target]bool
	// buffers holds *bytes.Buffer for the answers, reused across rounds.
	buffers sync.Pool
}

// New returns a Scraper for o with defaults applied. It panics when o.Client
// is nil, which is the caller's mistake.
func New(o Options) *Scraper {
	if o.Client == nil {
		panic("scrape.New: nil Client")
	}
	s := &Scraper{
		client:   o.Client,
		interval: o.Interval,
		timeout:  o.Timeout,
		log:      o.Logger,
		now:      o.Now,
		busy:     make(chan struct{}, 1),
		failing:  map[target]bool{},
	}
	if s.interval <= 0 {
		s.interval = DefaultInterval
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.timeout >= s.interval {
		s.timeout = s.interval / 2
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Run scrapes the servers of list() every interval until ctx ends, the first
// round at once, and returns ctx.Err(). list is called at every round, so
// deployments added or removed at runtime are followed. When ctx ends, the
// scrapes in flight are cancelled and their round is dropped, so shutting
// down never marks values stale. A round slower than the interval delays the
// next.
func (s *Scraper) Run(ctx context.Context, list func() []*deployment.Deployment) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		s.Scrape(ctx, list())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// target is one scrape: a metrics URL and the Authorization sent with it.
// Deployments of one server normally share both; two deployments whose keys
// differ are scraped apart, since a gateway in front may check the key.
type target struct {
	url, auth string
}

// group is the deployments scraped by one request.
type group struct {
	target
	u  *url.URL // the metrics URL, for error messages
	ds []*deployment.Deployment
}

// Scrape runs one round now: it scrapes the servers of ds, at most 16 at a
// time, and writes the result onto each deployment with SetBackendLoad.
// Deployments whose server answered 401, 403, 404 or 405 before are skipped. ds is taken as
// the whole list: what is known about servers not in it is forgotten. When
// ctx ends before the round does, nothing is written.
func (s *Scraper) Scrape(ctx context.Context, ds []*deployment.Deployment) {
	select {
	case s.busy <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-s.busy }()
	if ctx.Err() != nil {
		return
	}

	groups := s.groups(ds)
	results := make([]result, len(groups))
	var g errgroup.Group
	g.SetLimit(concurrency)
	for i, gr := range groups {
		g.Go(func() error {
			results[i] = s.fetch(ctx, gr)
			return nil
		})
	}
	_ = g.Wait() // fetch reports through results, never an error
	if ctx.Err() != nil {
		return
	}
	listed := make(map[target]bool, len(groups))
	for i, gr := range groups {
		listed[gr.target] = true
		s.apply(gr, results[i])
	}
	maps.DeleteFunc(s.failing, func(t target, _ bool) bool { return !listed[t] })
}

// groups returns the deployments of ds to scrape, by target, in the order
// first seen.
func (s *Scraper) groups(ds []*deployment.Deployment) []*group {
	var out []*group
	byTarget := map[target]*group{}
	for _, d := range ds {
		if l := d.BackendLoad(); l != nil && !l.Supported {
			continue // no /metrics for us: not asked again while d is listed
		}
		base, err := url.Parse(d.APIBase)
		if err != nil { // not reachable with a validated config
			fail(d, "api_base: not a valid URL")
			continue
		}
		u := metricsURL(base)
		t := target{url: u.String(), auth: d.AuthHeader()}
		g := byTarget[t]
		if g == nil {
			g = &group{target: t, u: u}
			byTarget[t] = g
			out = append(out, g)
		}
		g.ds = append(g.ds, d)
	}
	return out
}

// metricsURL returns the server's /metrics: vLLM serves it at the root, so a
// trailing /v1 of api_base is dropped. A query of api_base is kept, as for
// every upstream URL.
func metricsURL(base *url.URL) *url.URL {
	u := *base
	u.Path = strings.TrimSuffix(strings.TrimRight(u.Path, "/"), "/v1") + "/metrics"
	u.RawPath = ""
	u.Fragment, u.RawFragment = "", ""
	return &u
}

// apply writes the result of one scrape onto its deployments and logs a
// change of the server's state.
func (s *Scraper) apply(g *group, r result) {
	attrs := func(extra ...any) []any {
		ids := make([]string, len(g.ds))
		for i, d := range g.ds {
			ids[i] = d.ID
		}
		return append([]any{"api_base", g.ds[0].PublicAPIBase(), "deployments", ids}, extra...)
	}
	switch {
	case r.noMetrics:
		for _, d := range g.ds {
			d.SetBackendLoad(deployment.BackendLoad{
				Supported:     false,
				KVCacheUsage:  -1,
				PrefixQueries: -1,
				PrefixHits:    -1,
				PrefixHitRate: -1,
				Scraped:       r.at,
				Error:         r.err,
			})
		}
		delete(s.failing, g.target)
		s.log.Info("scrape: server has no /metrics for the gateway; its queue is not known, and it is not asked again",
			attrs("error", r.err)...)
	case r.err != "":
		for _, d := range g.ds {
			fail(d, r.err)
		}
		if failing, known := s.failing[g.target]; !known || !failing {
			s.log.Warn("scrape: reading the server's load failed; its values are stale until a scrape succeeds",
				attrs("error", r.err)...)
		}
		s.failing[g.target] = true
	default:
		until := r.at.Add(validIntervals * s.interval)
		for _, d := range g.ds {
			w, run, kv := r.metrics.load(d.UpstreamModel)
			q, h := r.metrics.prefixCounters(d.UpstreamModel)
			prev := d.BackendLoad()
			d.SetBackendLoad(deployment.BackendLoad{
				Supported:     true,
				Waiting:       w,
				Running:       run,
				KVCacheUsage:  kv,
				KVBlocks:      r.cache.blocks,
				KVBlockSize:   r.cache.blockSize,
				PrefixQueries: q,
				PrefixHits:    h,
				PrefixHitRate: hitRate(prev, q, h),
				AvgLoad:       avgLoad(prev, w+run),
				OwnInFlight:   float64(d.InFlight()),
				Scraped:       r.at,
				ValidUntil:    until,
			})
		}
		if s.failing[g.target] {
			s.log.Info("scrape: reading the server's load works again", attrs()...)
		}
		s.failing[g.target] = false
	}
}

// avgLoad returns the moving average of the server's running and waiting
// requests after a scrape that read load, prev being the deployment's
// previous scrape: load itself when the previous one failed or there was
// none.
func avgLoad(prev *deployment.BackendLoad, load float64) float64 {
	if prev == nil || !prev.Supported || prev.Error != "" || prev.Scraped.IsZero() {
		return load
	}
	return prev.AvgLoad + avgWeight*(load-prev.AvgLoad)
}

// hitRate returns the prefix cache hit rate between prev, the deployment's
// previous scrape, and counters queries and hits read now: hits over
// queries of the deltas, the counters themselves after a reset (a counter
// that went down: the server restarted). Without queries in between, the
// previous rate stands; without counters on either side it is unknown, -1.
func hitRate(prev *deployment.BackendLoad, queries, hits float64) float64 {
	if prev == nil || queries < 0 || prev.PrefixQueries < 0 {
		return -1
	}
	dq, dh := queries-prev.PrefixQueries, hits-prev.PrefixHits
	if dq < 0 || dh < 0 {
		dq, dh = queries, hits
	}
	if dq <= 0 {
		return prev.PrefixHitRate
	}
	return min(1, max(0, dh/dq))
}

// fail records a failed scrape of d: the values of the last successful
// scrape are kept, with msg as the Error that makes them stale.
func fail(d *deployment.Deployment, msg string) {
	l := deployment.BackendLoad{KVCacheUsage: -1, PrefixQueries: -1, PrefixHits: -1, PrefixHitRate: -1}
	if prev := d.BackendLoad(); prev != nil {
		l = *prev
	}
	l.Supported = true
	l.Error = msg
	d.SetBackendLoad(l)
}
