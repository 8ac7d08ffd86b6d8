package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// ServeBareProxy serves the standard library's reverse proxy to upstream on
// ln until ctx ends: no routing, no parsing, no headers of its own. The
// bench measures it beside the gateway as the floor of what any Go HTTP
// proxy costs on the machine (two more loopback hops and the net/http
// server and client), so the gateway's figures can be read against it.
func ServeBareProxy(ctx context.Context, ln net.Listener, upstream string, log *slog.Logger) error {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return fmt.Errorf("upstream %q: want an http:// URL", upstream)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(u) },
		Transport:     &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true},
		FlushInterval: -1, // relay streams as they come, as the gateway does
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	log.Info("maasgate listening", "addr", ln.Addr().String(), "upstream", upstream)
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}
