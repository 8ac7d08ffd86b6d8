package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/maasgate/maasgate/internal/auth"
	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/health"
	"github.com/maasgate/maasgate/internal/logbuf"
	"github.com/maasgate/maasgate/internal/metrics"
	"github.com/maasgate/maasgate/internal/router"
)

// serverOptions are the serve flags that are not in config.yaml.
type serverOptions struct {
	host, port        string
	databaseURL       string
	healthTimeout     time.Duration
	healthConcurrency int
	healthMode        string
	maxRequestSizeMB  float64
	maxRequestMBHeld  float64
	shutdownGrace     time.Duration
	readHeaderTimeout time.Duration
	bodyReadTimeout   time.Duration
	idleTimeout       time.Duration
	logLevel          string
	logFormat         string
	pprofAddr         string

	backendMetricsInterval time.Duration
	backendMetricsTimeout  time.Duration
	// allowedHostList is --allowed-hosts as given: comma-separated names
	// the admin API and UI answer on without a master key.
	allowedHostList string
	dbCheckInterval time.Duration
	stallAfter      time.Duration
	metricsMaxKeys  int
	// configPath is the config file served (for reloads; "" for the
	// demo's built-in one); configWatch how often it is checked for
	// changes (0: only on SIGHUP).
	configPath  string
	configWatch time.Duration
}

func (o *serverOptions) bind(fs *flagSet, defaultHost string) {
	fs.StringVar(&o.host, "host", defaultHost, "address to listen on")
	fs.StringVar(&o.port, "port", "4000", "port to listen on")
	fs.Float64Var(&o.maxRequestSizeMB, "max-request-size-mb", 0, "largest accepted request body in MiB; overrides general_settings.max_request_size_mb (default 32)")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", 30*time.Second, "on SIGTERM, how long in-flight requests and streams may take to finish before the gateway exits")
	fs.DurationVar(&o.readHeaderTimeout, "read-header-timeout", 10*time.Second, "how long a client may take to send its request headers (slowloris protection)")
	fs.DurationVar(&o.bodyReadTimeout, "body-read-timeout", time.Minute, "how long a client may take to send its request body")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 2*time.Minute, "how long an idle keep-alive client connection is kept open")
	fs.StringVar(&o.databaseURL, "database-url", "", "where models and settings added through the API are stored: a SQLite file (path or sqlite:///path) or a postgres:// URL; overrides general_settings.database_url (default maasgate.db in the working directory)")
	fs.DurationVar(&o.healthTimeout, "health-check-timeout", 10*time.Second, "time one health probe of a deployment may take")
	fs.IntVar(&o.healthConcurrency, "health-check-concurrency", 16, "health probes run at once")
	fs.StringVar(&o.healthMode, "health-check-mode", "cheap", "health probe: cheap (GET /health and /v1/models) or completion (a one-token request); model_info.health_check overrides per deployment")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "serve Go's net/http/pprof profiles on this separate address, e.g. 127.0.0.1:6060 (off when empty; keep it private: profiles show the gateway's internals)")
	fs.DurationVar(&o.backendMetricsInterval, "backend-metrics-interval", 2*time.Second, "how often each deployment's server is asked for its vLLM /metrics (queue depth, running requests, KV-cache use); 0 turns scraping off")
	fs.DurationVar(&o.backendMetricsTimeout, "backend-metrics-timeout", time.Second, "time one /metrics scrape of a server may take")
	fs.StringVar(&o.allowedHostList, "allowed-hosts", "", "without a master key, the admin API and UI answer only requests addressed to localhost, 127.0.0.1 or [::1] (protection from DNS rebinding); this comma-separated list adds host names or addresses they answer on too, e.g. gateway.internal,10.0.0.5 (any port)")
	fs.DurationVar(&o.dbCheckInterval, "db-check-interval", 5*time.Second, "how often a one-row write checks that the database takes writes; GET /health/readiness is 503 while they fail (0 turns the check off)")
	fs.bindEnv("allowed-hosts", "MAASGATE_ALLOWED_HOSTS")
	fs.bindEnv("db-check-interval", "MAASGATE_DB_CHECK_INTERVAL")
	fs.DurationVar(&o.stallAfter, "stall-after", router.DefaultStallAfter, "take a deployment out of rotation when it sends nothing this long while requests wait on it and its peers answer; it returns when it answers again (0 turns this off)")
	fs.bindEnv("stall-after", "MAASGATE_STALL_AFTER")
	fs.IntVar(&o.metricsMaxKeys, "metrics-max-keys", metrics.DefaultMaxKeys, "how many virtual keys get Prometheus series labelled with their hash and alias; later keys' requests are labelled \"other\" (0: every key is \"other\")")
	fs.bindEnv("metrics-max-keys", "MAASGATE_METRICS_MAX_KEYS")
	fs.bindEnv("host", "MAASGATE_HOST")
	fs.bindEnv("port", "MAASGATE_PORT", "PORT")
	fs.bindEnv("max-request-size-mb", "MAASGATE_MAX_REQUEST_SIZE_MB")
	fs.Float64Var(&o.maxRequestMBHeld, "max-request-mb-in-flight", 0, "request body MiB the gateway holds at once over all requests; a request past it is answered 503 with Retry-After before its body is read (default: a third of GOMEMLIMIT when set, else 1024)")
	fs.bindEnv("max-request-mb-in-flight", "MAASGATE_MAX_REQUEST_MB_IN_FLIGHT")
	fs.bindEnv("shutdown-grace", "MAASGATE_SHUTDOWN_GRACE")
	fs.bindEnv("read-header-timeout", "MAASGATE_READ_HEADER_TIMEOUT")
	fs.bindEnv("body-read-timeout", "MAASGATE_BODY_READ_TIMEOUT")
	fs.bindEnv("idle-timeout", "MAASGATE_IDLE_TIMEOUT")
	fs.bindEnv("database-url", "MAASGATE_DATABASE_URL", "DATABASE_URL")
	fs.bindEnv("health-check-timeout", "MAASGATE_HEALTH_CHECK_TIMEOUT")
	fs.bindEnv("health-check-concurrency", "MAASGATE_HEALTH_CHECK_CONCURRENCY")
	fs.bindEnv("health-check-mode", "MAASGATE_HEALTH_CHECK_MODE")
	fs.bindEnv("log-level", "MAASGATE_LOG_LEVEL")
	fs.bindEnv("log-format", "MAASGATE_LOG_FORMAT")
	fs.bindEnv("pprof-addr", "MAASGATE_PPROF_ADDR")
	fs.bindEnv("backend-metrics-interval", "MAASGATE_BACKEND_METRICS_INTERVAL")
	fs.bindEnv("backend-metrics-timeout", "MAASGATE_BACKEND_METRICS_TIMEOUT")
}

// validate reports flag values that parsing alone does not catch.
func (o *serverOptions) validate() error {
	if o.healthMode != health.ModeCheap && o.healthMode != health.ModeCompletion {
		return fmt.Errorf("--health-check-mode: want %s or %s, got %q", health.ModeCheap, health.ModeCompletion, o.healthMode)
	}
	if o.backendMetricsInterval < 0 {
		return fmt.Errorf("--backend-metrics-interval: must be 0 (off) or positive, got %v", o.backendMetricsInterval)
	}
	if o.backendMetricsTimeout <= 0 {
		return fmt.Errorf("--backend-metrics-timeout: must be positive, got %v", o.backendMetricsTimeout)
	}
	for _, h := range o.allowedHosts() {
		if err := auth.CheckAllowedHost(h); err != nil {
			return fmt.Errorf("--allowed-hosts: %w", err)
		}
	}
	if o.metricsMaxKeys < 0 {
		return fmt.Errorf("--metrics-max-keys: must be 0 (no key labels) or positive, got %d", o.metricsMaxKeys)
	}
	if o.dbCheckInterval < 0 {
		return fmt.Errorf("--db-check-interval: must be 0 (off) or positive, got %v", o.dbCheckInterval)
	}
	if o.databaseURL != "" {
		if err := config.CheckDatabaseURL(o.databaseURL); err != nil {
			return fmt.Errorf("--database-url: %w", err)
		}
	}
	return nil
}

// allowedHosts are the names of --allowed-hosts.
func (o *serverOptions) allowedHosts() []string {
	var hosts []string
	for h := range strings.SplitSeq(o.allowedHostList, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// logger returns the logger the flags ask for. It writes to w in batches
// (see logbuf), so the caller must call flush before it returns.
func (o *serverOptions) logger(w io.Writer) (log *slog.Logger, flush func(), err error) {
	if err := o.validate(); err != nil {
		return nil, nil, err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, nil, fmt.Errorf("--log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	buf := logbuf.New(w, 64<<10, logFlushInterval)
	flush = func() { _ = buf.Flush() }
	switch o.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(buf, hopts)), flush, nil
	case "json":
		return slog.New(slog.NewJSONHandler(buf, hopts)), flush, nil
	}
	return nil, nil, fmt.Errorf("--log-format: want text or json, got %q", o.logFormat)
}

// logFlushInterval is how late a log line may reach the output.
const logFlushInterval = 50 * time.Millisecond

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "serve --config config.yaml [flags]", stderr)
	configPath := fs.String("config", "", "LiteLLM-format config.yaml to serve (required); SIGHUP reloads it")
	fs.bindEnv("config", "MAASGATE_CONFIG", "CONFIG_FILE_PATH")
	var opts serverOptions
	opts.bind(fs, "0.0.0.0")
	fs.DurationVar(&opts.configWatch, "config-watch-interval", 0, "how often the config file is checked for changes and reloaded when it changed, e.g. 10s (0: only on SIGHUP); suits a Kubernetes ConfigMap mounted as a volume")
	fs.bindEnv("config-watch-interval", "MAASGATE_CONFIG_WATCH_INTERVAL")
	if err := fs.parse(args, lookupEnv); err != nil {
		return err
	}
	log, flush, err := opts.logger(stderr)
	if err != nil {
		return err
	}
	defer flush()
	if *configPath == "" {
		return errors.New("no config: pass --config config.yaml (or set MAASGATE_CONFIG); see README for the format")
	}
	cfg, err := loadConfig(*configPath, log)
	if err != nil {
		return err
	}
	if err := redisEnvProblem(cfg); err != nil {
		return fmt.Errorf("invalid environment: %w", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(opts.host, opts.port))
	if err != nil {
		return err
	}
	opts.configPath = *configPath
	return serveGateway(ctx, ln, cfg, opts, log)
}

// loadConfig loads and validates a config file, logging each warning.
func loadConfig(path string, log *slog.Logger) (*config.Config, error) {
	cfg, warnings, err := config.Load(path, lookupEnv)
	for _, w := range warnings {
		log.Warn("config: " + w.String())
	}
	if err != nil {
		return nil, fmt.Errorf("invalid config:\n%w", err)
	}
	return cfg, nil
}

// serveGateway serves on ln until ctx ends, then shuts down gracefully:
// it stops accepting, lets in-flight requests and streams finish within the
// grace period, then closes what is left.
func serveGateway(ctx context.Context, ln net.Listener, cfg *config.Config, opts serverOptions, log *slog.Logger) error {
	uuid.EnableRandPool()
	if cfg.General.MasterKey == "" {
		log.Warn("NO MASTER KEY: general_settings.master_key is not set, so anyone who can reach this port can use every model and admin endpoint. Set it before exposing the gateway.")
	}
	gw, err := buildGateway(ctx, cfg, opts, log)
	if err != nil {
		return err
	}
	defer gw.close()
	// Start-up leaves garbage behind (the migration tool pools a 16 MB
	// parse buffer, which a sync.Pool keeps for two collections); give it
	// back to the OS before serving, so the process's memory is what
	// serving needs.
	runtime.GC()
	debug.FreeOSMemory()
	bg, stopBackground := context.WithCancel(context.Background())
	background := make(chan error, 1)
	go func() { background <- gw.run(bg) }()
	if opts.configPath != "" {
		stopReloads := watchConfig(bg, opts.configPath, opts.configWatch, cfg, gw.reload, log)
		defer stopReloads()
	}
	// Runs before gw.close: the health checks, scrapes and cooldown watch
	// end before the store and the tracer they use are closed.
	defer func() {
		stopBackground()
		if err := <-background; err != nil {
			log.Warn("background work stopped with an error", "error", err)
		}
	}()
	srv := &http.Server{
		Handler:           gw.handler,
		ReadHeaderTimeout: opts.readHeaderTimeout,
		IdleTimeout:       opts.idleTimeout,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if opts.pprofAddr != "" {
		stop, err := servePprof(opts.pprofAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	log.Info("maasgate listening", append([]any{"addr", ln.Addr().String(), "version", version}, servedSummary(gw.router)...)...)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: no new connections; waiting for in-flight requests", "grace", opts.shutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), opts.shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("grace period over; ending open streams with an error event", "error", err)
		gw.endStreams()
		ectx, cancel := context.WithTimeout(context.Background(), streamEndGrace)
		if err := srv.Shutdown(ectx); err != nil {
			log.Warn("closing remaining connections", "error", err)
			_ = srv.Close()
		}
		cancel()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// streamEndGrace is how long the streams ended at the close of a
// shutdown's grace period have to send their error event.
const streamEndGrace = 2 * time.Second

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", "check [--no-env] --config config.yaml", stderr)
	configPath := fs.String("config", "", "config.yaml to validate (required)")
	fs.bindEnv("config", "MAASGATE_CONFIG", "CONFIG_FILE_PATH")
	noEnv := fs.Bool("no-env", false, "check the file where its environment is not (CI, a migration): "+
		"os.environ/NAME references are checked for form, not looked up (unless the file's environment_variables set NAME), "+
		"the values they stand for are not checked, and REDIS_* and DATABASE_URL are not read")
	if err := fs.parse(args, lookupEnv); err != nil {
		return err
	}
	if *configPath == "" {
		return errors.New("no config: pass --config config.yaml")
	}
	load := func(path string) (*config.Config, []config.Problem, error) { return config.Load(path, lookupEnv) }
	if *noEnv {
		load = config.LoadNoEnv
	}
	cfg, warnings, err := load(*configPath)
	for _, w := range warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			for _, p := range ce.Problems {
				fmt.Fprintf(stdout, "error: %s\n", p)
			}
			if n := len(ce.UnsetEnv); n > 0 {
				them := "them"
				if n == 1 {
					them = "it"
				}
				fmt.Fprintf(stdout, "not set: %s (check --no-env checks the rest of the file without %s)\n", strings.Join(ce.UnsetEnv, ", "), them)
			}
			return fmt.Errorf("%s: %d %s", *configPath, len(ce.Problems), plural(len(ce.Problems), "problem"))
		}
		return err
	}
	if !*noEnv {
		if err := envProblems(cfg, stdout); err != nil {
			return fmt.Errorf("%s: %w", *configPath, err)
		}
	}
	groups, wildcards := map[string]bool{}, 0
	for _, m := range cfg.Models {
		if !groups[m.Name] && strings.Contains(m.Name, "*") {
			wildcards++
		}
		groups[m.Name] = true
	}
	wild := ""
	if wildcards > 0 {
		wild = fmt.Sprintf(" (%d wildcard)", wildcards)
	}
	fmt.Fprintf(stdout, "%s: OK: %d %s in %d model %s%s, routing_strategy %s\n", *configPath,
		len(cfg.Models), plural(len(cfg.Models), "deployment"), len(groups), plural(len(groups), "group"), wild, cfg.Router.RoutingStrategy)
	if len(cfg.NotLookedUp) > 0 {
		fmt.Fprintf(stdout, "not looked up (--no-env): %s\n", strings.Join(cfg.NotLookedUp, ", "))
	}
	return nil
}

// envProblems prints what serve would refuse in the environment variables
// it reads besides the file (REDIS_*, DATABASE_URL), and returns an error
// when there is any.
func envProblems(cfg *config.Config, stdout io.Writer) error {
	var problems []error
	if err := redisEnvProblem(cfg); err != nil {
		problems = append(problems, err)
	}
	for _, name := range []string{"MAASGATE_DATABASE_URL", "DATABASE_URL"} { // as serve's --database-url reads them
		if v, ok := lookupEnv(name); ok && v != "" {
			if err := config.CheckDatabaseURL(v); err != nil {
				problems = append(problems, fmt.Errorf("%s: %w", name, err))
			}
			break
		}
	}
	for _, p := range problems {
		fmt.Fprintf(stdout, "error: %s\n", p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d %s in the environment", len(problems), plural(len(problems), "problem"))
	}
	return nil
}

// redisEnvProblem is what serve would refuse in the REDIS_* variables it
// reads when router_settings names no Redis. check and serve both report
// it.
func redisEnvProblem(cfg *config.Config) error {
	rs, err := redisSettings(cfg.Router)
	if err != nil {
		return err
	}
	if rs.URL != "" && cfg.Router.RedisURL == "" {
		if err := config.CheckRedisURL(rs.URL); err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// hostPort renders a listener address for URLs, mapping the unspecified
// address to loopback.
func hostPort(addr net.Addr) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}

// servePprof serves net/http/pprof on its own listener at addr, apart from
// the API, so profiles are never reachable through the gateway's port.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof-addr: %w", err)
	}
	mux := http.NewServeMux()
	// Index answers the named profiles; /debug/pprof/cmdline is left out
	// (Index answers it 404), as the command line may carry --database-url
	// with its password.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("pprof listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// servedSummary describes what the router serves, for the start-up log:
// the deployments from the config file and from the database apart, the
// model groups, and the effective routing settings (the stored ones
// applied over the file's).
func servedSummary(rt *router.Router) []any {
	fromConfig, fromDB := 0, 0
	groups := map[string]bool{}
	for _, d := range rt.Deployments() {
		if d.Source == deployment.FromDatabase {
			fromDB++
		} else {
			fromConfig++
		}
		groups[d.Group] = true
	}
	s := rt.Settings()
	out := []any{"deployments_from_config", fromConfig, "deployments_from_database", fromDB,
		"model_groups", len(groups), "routing_strategy", cmp.Or(s.RoutingStrategy, router.SimpleShuffle),
		"num_retries", s.NumRetries, "timeout", s.Timeout.String()}
	if len(s.ModelGroupRoutingStrategy) > 0 {
		out = append(out, "model_group_routing_strategy", s.ModelGroupRoutingStrategy)
	}
	if len(s.Fallbacks) > 0 {
		out = append(out, "fallbacks", len(s.Fallbacks))
	}
	return out
}
