package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/maasgate/maasgate/internal/admin"
	"github.com/maasgate/maasgate/internal/auth"
	"github.com/maasgate/maasgate/internal/cluster"
	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/control"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/health"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/limits"
	"github.com/maasgate/maasgate/internal/metrics"
	"github.com/maasgate/maasgate/internal/proxy"
	"github.com/maasgate/maasgate/internal/router"
	"github.com/maasgate/maasgate/internal/scrape"
	"github.com/maasgate/maasgate/internal/store"
	"github.com/maasgate/maasgate/internal/tracing"
	spend "github.com/maasgate/maasgate/internal/usage"
	"github.com/maasgate/maasgate/internal/webui"
)

// gateway is the wired process: its handler, its background work and what
// to close when it stops.
type gateway struct {
	handler http.Handler
	// run does the background work (health checks, backend scrapes,
	// cooldown watch) until ctx ends.
	run   func(ctx context.Context) error
	close func()
	// endStreams ends the streams still open with an in-band error event,
	// when the shutdown's grace period is over.
	endStreams func()
	// router serves the effective state: the config file's deployments
	// and settings with the database's applied over them.
	router *router.Router
	// reload serves a new config file's models and router settings.
	reload func(ctx context.Context, cfg *config.Config) error
}

// buildGateway opens the store and wires every package in dependency
// order: the store, the control plane (deployments and settings from the
// config file with the stored ones applied over them, keys and teams),
// then the data plane that reads its snapshots, then the admin API that
// changes them.
func buildGateway(ctx context.Context, cfg *config.Config, opts serverOptions, log *slog.Logger) (_ *gateway, err error) {
	var closers []func() // in the order opened; closed in reverse
	closeAll := func() {
		for _, c := range slices.Backward(closers) {
			c()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()

	st, err := openStore(ctx, cfg, opts, log)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() {
		if err := st.Close(); err != nil {
			log.Warn("close the database", "error", err)
		}
	})
	ctl, err := control.New(ctx, control.Options{
		Store:     st,
		Models:    cfg.Models,
		Base:      cfg.Router,
		Getenv:    lookupEnv,
		Logger:    log,
		Reconcile: registryReconcile,
	})
	if err != nil {
		return nil, err
	}
	if stored := ctl.StoredSettings(); len(stored) > 0 {
		log.Info("router settings from the database applied over the config file", "keys", slices.Sorted(maps.Keys(stored)))
	}
	rt := ctl.Router()
	for _, d := range rt.Deployments() {
		logDeployment(log, d)
	}

	reg := prometheus.NewRegistry()
	tracer, closeTracing, err := startTracing(ctx, log)
	if err != nil {
		return nil, err
	}
	closers = append(closers, closeTracing)

	maxMB := opts.maxRequestSizeMB
	if maxMB <= 0 {
		maxMB = cfg.General.MaxRequestSizeMB
	}
	maxBody := int64(maxMB * (1 << 20))
	held, err := bodyBytesInFlight(opts.maxRequestMBHeld, maxBody)
	if err != nil {
		return nil, err
	}
	log.Info("request bodies held at once are bounded", "max_request_mb_in_flight", held>>20)
	authn := auth.New(cfg.General.MasterKey, ctl, opts.allowedHosts()...)
	transport := proxy.NewTransport()
	closers = append(closers, transport.CloseIdleConnections)
	tokenType, _ := limits.ParseTokenType(cfg.General.TokenRateLimitType)
	lim := limits.New(limits.Options{TokenType: tokenType})
	redisCfg, err := redisSettings(rt.Settings())
	if err != nil {
		return nil, err
	}
	// The cluster applies probes shared by other replicas through the
	// prober, which shares its own through the cluster: the one cycle,
	// closed by the prober captured here.
	var prober *health.Prober
	cl, closeRedis, err := startCluster(ctx, redisCfg, cluster.Options{
		Deployments: rt.Deployments,
		Deployment:  rt.Deployment,
		ApplyProbe: func(d *deployment.Deployment, r health.Result) {
			prober.Apply(d, r)
		},
		Limits: lim,
	}, reg, log)
	if err != nil {
		return nil, err
	}
	closers = append(closers, closeRedis)
	var share health.Share
	if cl != nil {
		share = cl
		rt.OnCooldown = cl.CooledDown
		rt.Refill = cl.Refill
	}
	// Spend and usage: counted in memory, shared through the cluster's
	// Redis, written to the store in batches.
	ledgerOpts := spend.Options{Store: st, Keys: ctl.Keys, Logger: log}
	if cl != nil {
		ledgerOpts.Redis = cl.Redis()
	}
	ledger := spend.New(ledgerOpts)
	serviceName, _ := lookupEnv("OTEL_SERVICE_NAME") // the gen_ai_* metrics' service_name, as the spans'
	mtr := metrics.New(metrics.Options{Registry: reg, Deployments: rt.Deployments, Keys: ctl.Keys, MaxKeys: opts.metricsMaxKeys,
		Spend: ledger, Limits: lim, ServiceName: strings.TrimSpace(serviceName)})
	var adminToken [32]byte
	if cfg.General.MasterKey != "" {
		adminToken = keys.Token(cfg.General.MasterKey)
	}
	p := proxy.New(proxy.Options{
		Router:               rt,
		Transport:            transport,
		MaxBodyBytes:         maxBody,
		MaxBodyBytesInFlight: held,
		BodyReadTimeout:      opts.bodyReadTimeout,
		Version:              version,
		Logger:               log,
		Metrics:              mtr,
		Tracer:               tracer,
		Propagator:           tracing.Propagator(),

		HideUpstreamDetails:       cfg.General.HideUpstreamDetails,
		ShowUpstreamDetailsToKeys: cfg.General.ShowUpstreamDetailsToKeys,
		Keys:                      authn,
		Limits:                    lim,
		Usage:                     ledger,
		AdminToken:                adminToken,
	})
	prober = health.New(health.Options{
		Client:      &http.Client{Transport: proxy.NewTransport()},
		Timeout:     opts.healthTimeout,
		Concurrency: opts.healthConcurrency,
		Mode:        opts.healthMode,
		Logger:      log,
		Observe: func(r health.Result) {
			mtr.Probe(r.Group, r.ID, r.APIBase, r.Healthy, r.Duration)
		},
		Share: share,
	})
	adm := admin.New(admin.Options{
		Control:    ctl,
		Store:      st,
		Prober:     prober,
		Background: cfg.General.BackgroundHealthChecks,
		Logger:     log,
		Traffic:    mtr.Traffic,
		// Without a master key, only Hosts the operator uses (DNS rebinding).
		Guard:           authn.Admin,
		BodyReadTimeout: opts.bodyReadTimeout,
		Identify:        authn,
		Usage:           st,
		Spend:           ledger,
	})

	mux := routes(cfg, p, adm, authn, mtr, st, cl)

	scrapeTransport := proxy.NewTransport()
	closers = append(closers, scrapeTransport.CloseIdleConnections)
	scraper := scrape.New(scrape.Options{
		Client:   &http.Client{Transport: scrapeTransport},
		Interval: opts.backendMetricsInterval,
		Timeout:  opts.backendMetricsTimeout,
		Logger:   log,
	})
	run := func(ctx context.Context) error {
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return rt.Watch(ctx, time.Second) })
		g.Go(func() error { return st.Heartbeat(ctx, opts.dbCheckInterval) })
		g.Go(func() error {
			t := time.NewTicker(stallWatchInterval)
			defer t.Stop()
			return rt.WatchStalls(ctx, t.C, opts.stallAfter)
		})
		if cl != nil {
			g.Go(func() error { return cl.Run(ctx) })
		}
		// Stopped after the server drained its requests: the ledger then
		// writes what is left, so a SIGTERM loses no spend.
		g.Go(func() error { return ledger.Run(ctx) })
		g.Go(func() error { return lim.Run(ctx) })
		if st.Dialect() == "postgres" {
			// Other replicas' admin changes: at once through
			// LISTEN/NOTIFY, and by a full reload every 30 s in case a
			// notification was lost.
			g.Go(func() error { return ctl.Run(ctx) })
		}
		if opts.backendMetricsInterval > 0 {
			log.Info("scraping the deployments' /metrics", "interval", opts.backendMetricsInterval.String())
			g.Go(func() error { return scraper.Run(ctx, rt.Deployments) })
		}
		if cfg.General.BackgroundHealthChecks {
			log.Info("background health checks on", "interval", cfg.General.HealthCheckInterval.String())
			g.Go(func() error { return prober.Run(ctx, cfg.General.HealthCheckInterval, rt.Deployments) })
		}
		if err := g.Wait(); !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	}
	return &gateway{
		handler:    proxy.BodyDeadline(mux, opts.bodyReadTimeout),
		run:        run,
		endStreams: p.EndStreams,
		close:      closeAll,
		router:     rt,
		reload: func(ctx context.Context, next *config.Config) error {
			return ctl.ReloadConfig(ctx, next.Models, next.Router)
		},
	}, nil
}

// routes serves the data plane and the admin API behind the keys, and
// the public endpoints (liveness, the UI's files, /metrics unless the
// config file guards it) beside them.
func routes(cfg *config.Config, p *proxy.Proxy, adm *admin.API, authn *auth.Authenticator, mtr *metrics.Metrics,
	st *store.Store, cl *cluster.Cluster) *http.ServeMux {
	api := http.NewServeMux()
	p.Register(api)
	adm.Register(api)
	readiness := &admin.Readiness{Version: version, Checks: []admin.Check{
		{Name: "db", Run: func(r *http.Request) error { return st.Ready(r.Context()) }},
	}}
	if cl != nil {
		// Shown, but not a reason to be unready: without Redis the replica
		// serves with its own routing state.
		readiness.Details = append(readiness.Details, admin.Check{Name: "redis", Run: func(*http.Request) error { return cl.Err() }})
	}
	api.Handle("GET /health/readiness", readiness)
	api.HandleFunc("/", proxy.NotFound)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/liveliness", admin.Liveness)
	mux.HandleFunc("GET /health/liveness", admin.Liveness)
	// /metrics/ too: LiteLLM's Grafana dashboard documents that path.
	metricsMux := mux
	if cfg.General.RequireAuthForMetrics {
		metricsMux = api
	}
	metricsMux.Handle("GET /metrics", mtr.Handler())
	metricsMux.Handle("GET /metrics/", mtr.Handler())
	// The UI's files are public and hold no data; everything it shows
	// comes from the admin API above, with the master key.
	webui.Register(mux, authn.Admin)
	mux.Handle("/", authn.Wrap(api))

	return mux
}

// openStore opens the database of --database-url, else of the config
// file's database_url, encrypting secrets with LITELLM_SALT_KEY, else the
// master key.
func openStore(ctx context.Context, cfg *config.Config, opts serverOptions, log *slog.Logger) (*store.Store, error) {
	dbURL := opts.databaseURL
	if dbURL == "" {
		dbURL = cfg.General.DatabaseURL
	}
	secret, secretFrom := cfg.General.MasterKey, "master key"
	if v, ok := lookupEnv("LITELLM_SALT_KEY"); ok && v != "" {
		secret, secretFrom = v, "LITELLM_SALT_KEY"
	} else if secret == "" {
		secretFrom = "a fixed development key (no master key, no LITELLM_SALT_KEY)"
	}
	st, err := store.Open(ctx, dbURL, secret, log)
	if err != nil {
		return nil, fmt.Errorf("open the database: %w", err)
	}
	log.Info("database ready", "dialect", st.Dialect(), "location", st.Location(), "encryption_key_from", secretFrom)
	return st, nil
}

// startTracing sets up the OpenTelemetry export the environment asks for:
// the proxy's tracer (nil when tracing is off) and what flushes the spans
// still batched at exit.
func startTracing(ctx context.Context, log *slog.Logger) (trace.Tracer, func(), error) {
	tp, on, err := tracing.Setup(ctx, lookupEnv, version)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	if !on {
		return nil, func() {}, nil
	}
	log.Info("tracing on: spans go to the OTLP endpoint of OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT")
	// The SDK reports failed exports to its process-wide handler, which
	// would print through the log package, outside this log's format.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: the OpenTelemetry SDK reported an error", "error", err)
	}))
	return tp.Tracer("github.com/maasgate/maasgate/internal/proxy"), func() {
		// Flush the spans still batched, within a bound.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn("tracing: flush spans at exit", "error", err)
		}
	}, nil
}

// bodyBytesInFlight returns the bound on request body bytes held at once:
// --max-request-mb-in-flight, else a third of Go's memory limit when one is
// set (GOMEMLIMIT: bodies are held once, and the heap may grow to about
// twice what is live before a collection), else 1 GiB; never less than one
// body of the largest size accepted, which would otherwise be refused
// forever with a 503 that says to retry.
func bodyBytesInFlight(mb float64, maxBody int64) (int64, error) {
	if mb > 0 {
		held := int64(mb * (1 << 20))
		if held < maxBody {
			return 0, fmt.Errorf("--max-request-mb-in-flight %g is below the largest request accepted (max_request_size_mb %g): such a request could never be served",
				mb, float64(maxBody)/(1<<20))
		}
		return held, nil
	}
	held := int64(1 << 30)
	if limit := debug.SetMemoryLimit(-1); limit < math.MaxInt64 {
		held = limit / 3
	}
	return max(held, maxBody), nil
}

// logDeployment logs one deployment being served, without its secrets:
// api_base without user info or query, never the api_key.
func logDeployment(log *slog.Logger, d *deployment.Deployment) {
	source := "config"
	if d.Source == deployment.FromDatabase {
		source = "database"
	}
	log.Info("deployment", "model_group", d.Group, "model_id", d.ID, "model", d.UpstreamModel,
		"api_base", d.PublicAPIBase(), "source", source)
}

// storeLocation renders a database URL for the log: a PostgreSQL URL
// without its password or query, a SQLite path as it is.
func storeLocation(dbURL string) string {
	if strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://") {
		return deployment.PublicURL(dbURL)
	}
	if strings.Contains(dbURL, "password=") { // a key=value DSN
		return "(connection string)"
	}
	return dbURL
}

// stallWatchInterval is how often the router looks for stalled
// deployments: a stall is seen at most this long after --stall-after.
const stallWatchInterval = 500 * time.Millisecond

// registryReconcile is how often a replica on PostgreSQL reloads the
// models and settings even without a notification.
const registryReconcile = 30 * time.Second
