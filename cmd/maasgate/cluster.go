package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/maasgate/maasgate/internal/cluster"
	"github.com/maasgate/maasgate/internal/config"
)

// redisSettings takes the Redis connection from router_settings (redis_url,
// or redis_host, redis_port and redis_password), else from the REDIS_URL,
// REDIS_HOST, REDIS_PORT, REDIS_PASSWORD and REDIS_SSL environment
// variables, as LiteLLM does.
func redisSettings(rs config.RouterSettings) (cluster.Settings, error) {
	s := cluster.Settings{URL: rs.RedisURL, Host: rs.RedisHost, Port: rs.RedisPort, Password: rs.RedisPassword}
	env := func(k string) string { v, _ := lookupEnv(k); return strings.TrimSpace(v) }
	if s.URL == "" && s.Host == "" {
		s.URL, s.Host = env("REDIS_URL"), env("REDIS_HOST")
		if p := env("REDIS_PORT"); p != "" && s.Port == 0 && !serviceLink(p) {
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 || n > 65535 {
				return s, &envError{"REDIS_PORT", "must be a port number, got " + strconv.Quote(p)}
			}
			s.Port = n
		}
	}
	if s.Password == "" {
		s.Password = env("REDIS_PASSWORD")
	}
	switch strings.ToLower(env("REDIS_SSL")) {
	case "1", "true", "yes", "on":
		s.TLS = true
	}
	return s, nil
}

type envError struct{ name, msg string }

func (e *envError) Error() string { return e.name + ": " + e.msg }

// startCluster connects to Redis when it is configured and returns the
// replica's cluster link, or nil. A Redis that does not answer at start-up
// is logged and retried in the background: the gateway serves meanwhile.
func startCluster(ctx context.Context, s cluster.Settings, o cluster.Options, reg *prometheus.Registry, log *slog.Logger) (*cluster.Cluster, func(), error) {
	if !s.Enabled() {
		log.Info("no redis configured: routing state is this replica's own")
		return nil, func() {}, nil
	}
	rdb, err := cluster.Connect(ctx, s, 2*time.Second)
	if rdb == nil {
		return nil, nil, err
	}
	if err != nil {
		log.Warn("redis does not answer yet; serving with this replica's own routing state until it does", "error", err)
	}
	o.Client = rdb
	o.Logger = log
	up := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "maasgate_redis_connected",
		Help: "1 while Redis is reachable and routing state is shared with the other replicas, 0 while this replica uses its own.",
	})
	reg.MustRegister(up)
	o.SetUp = func(ok bool) {
		if ok {
			up.Set(1)
		} else {
			up.Set(0)
		}
	}
	// go-redis reports its own connection retries through a process-wide
	// logger; they go to this log at debug level (the cluster logs the
	// outage itself, once).
	redis.SetLogger(redisLog{log})
	cl := cluster.New(o)
	log.Info("redis configured: routing state is shared", "redis", s.Address(), "replica", cl.Replica())
	return cl, func() { _ = rdb.Close() }, nil
}

// redisLog adapts go-redis's logger to slog.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}
