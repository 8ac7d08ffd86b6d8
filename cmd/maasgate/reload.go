package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/maasgate/maasgate/internal/config"
)

// watchConfig reloads the config file at path on SIGHUP and, with every
// > 0, whenever its content changed (checked that often: a Kubernetes
// ConfigMap volume swaps the file by a symlink, which polling the content
// sees whatever the file system). A file that does not load is rejected,
// its problems logged, and the running configuration kept. The model list
// and router settings apply at once (reload); settings that only take
// effect at start-up are logged as waiting for a restart. It returns a
// function that stops watching.
func watchConfig(ctx context.Context, path string, every time.Duration, current *config.Config,
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
			if changed := restartOnly(current, next); len(changed) > 0 {
				log.Warn("config reloaded, but these settings take effect only at the next restart", "settings", changed)
			}
			current = next
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

// restartOnly names the settings that differ between old and next and are
// read only at start-up: general_settings, and the router's Redis
// connection. Values are not logged: they may be secrets.
func restartOnly(old, next *config.Config) []string {
	var out []string
	diff := func(prefix string, a, b reflect.Value, only func(string) bool) {
		for i := range a.NumField() {
			name := a.Type().Field(i).Name
			if only(name) && !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
				out = append(out, prefix+snake(name))
			}
		}
	}
	diff("general_settings.", reflect.ValueOf(old.General), reflect.ValueOf(next.General), func(string) bool { return true })
	diff("router_settings.", reflect.ValueOf(old.Router), reflect.ValueOf(next.Router), func(n string) bool {
		return strings.HasPrefix(n, "Redis")
	})
	return out
}

// snake spells a Go field name as a config key: MaxRequestSizeMB is
// max_request_size_mb.
func snake(name string) string {
	var b strings.Builder
	for i, r := range name {
		if i > 0 && unicode.IsUpper(r) && (unicode.IsLower(rune(name[i-1])) ||
			i+1 < len(name) && unicode.IsLower(rune(name[i+1])) && unicode.IsUpper(rune(name[i-1]))) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
