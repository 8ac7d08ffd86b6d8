package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/maasgate/maasgate/internal/config"
)

// watchConfig reloads the config file at path on SIGHUP and, with every
// > 0, whenever its content changed (checked that often: a Kubernetes
// ConfigMap volume swaps the file by a symlink, which polling the content
// sees whatever the file system). A file that does not load is rejected,
// its problems logged, and the running configuration kept. The model list
// and router settings apply at once (reload); settings that only take
// effect at start-up and differ from those of started, the configuration
// the process started with, are logged, on every reload, as waiting for a
// restart. It returns a function that stops watching.
func watchConfig(ctx context.Context, path string, every time.Duration, started *config.Config,
	reload func(context.Context, *config.Config) error, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	var tick <-chan time.Time
	var ticker *time.Ticker
	if every > 0 {
		ticker = time.NewTicker(every)
		tick = ticker.C
	}
	sum := fileSum(path)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading the config file", "path", path)
			case <-tick:
				s := fileSum(path)
				if s == nil || bytes.Equal(s, sum) {
					continue
				}
				log.Info("the config file changed: reloading it", "path", path)
			}
			sum = fileSum(path)
			next, err := loadConfig(path, log)
			if err != nil {
				log.Error("config reload rejected; the running configuration is kept", "path", path, "error", err.Error())
				continue
			}
			if err := reload(ctx, next); err != nil {
				log.Error("config reload failed; the running configuration is kept", "path", path, "error", err.Error())
				continue
			}
			if changed := restartOnly(started, next); len(changed) > 0 {
				log.Warn("config reloaded, but these settings take effect only at the next restart", "settings", changed)
			}
		}
	})
	return func() {
		signal.Stop(hup)
		cancel()
		wg.Wait()
		if ticker != nil {
			ticker.Stop()
		}
	}
}

// fileSum returns the SHA-256 of the file at path, nil when it cannot be
// read.
func fileSum(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	s := sha256.Sum256(b)
	return s[:]
}

// restartOnly names the settings read only at start-up that differ
// between started, the configuration the process started with, and next.
// Values are not logged: they may be secrets.
func restartOnly(started, next *config.Config) []string {
	var out []string
	for _, s := range restartOnlySettings {
		if s.value(started) != s.value(next) {
			out = append(out, s.key)
		}
	}
	return out
}

// restartOnlySettings are the settings read only at start-up, by the key
// that sets them: general_settings, and the router's Redis connection.
// Values are comparable.
var restartOnlySettings = []struct {
	key   string
	value func(*config.Config) any
}{
	{"general_settings.master_key", func(c *config.Config) any { return c.General.MasterKey }},
	{"general_settings.database_url", func(c *config.Config) any { return c.General.DatabaseURL }},
	{"general_settings.store_model_in_db", func(c *config.Config) any { return c.General.StoreModelInDB }},
	{"general_settings.background_health_checks", func(c *config.Config) any { return c.General.BackgroundHealthChecks }},
	{"general_settings.health_check_interval", func(c *config.Config) any { return c.General.HealthCheckInterval }},
	{"general_settings.max_request_size_mb", func(c *config.Config) any { return c.General.MaxRequestSizeMB }},
	{"general_settings.hide_upstream_details", func(c *config.Config) any {
		return [2]bool{c.General.HideUpstreamDetails, c.General.ShowUpstreamDetailsToKeys}
	}},
	{"general_settings.token_rate_limit_type", func(c *config.Config) any { return c.General.TokenRateLimitType }},
	{"litellm_settings.require_auth_for_metrics_endpoint", func(c *config.Config) any { return c.General.RequireAuthForMetrics }},
	{"router_settings.redis_host", func(c *config.Config) any { return c.Router.RedisHost }},
	{"router_settings.redis_port", func(c *config.Config) any { return c.Router.RedisPort }},
	{"router_settings.redis_password", func(c *config.Config) any { return c.Router.RedisPassword }},
	{"router_settings.redis_url", func(c *config.Config) any { return c.Router.RedisURL }},
}
