package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// profile runs sc through the gateway alone at o.Rate for o.Duration while
// taking a CPU profile of the gateway, then saves its allocation profile:
// cpu.pprof and allocs.pprof in o.ProfileDir, for "go tool pprof".
func profile(ctx context.Context, o Options, s *loadSetup, sc scenario) error {
	if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
		return err
	}
	seconds := max(1, int(o.Duration/time.Second))
	progress(o, "  profiling the gateway: %s at %d/s for %ds", sc.Name, o.Rate, seconds)
	cpu := make(chan error, 1)
	go func() {
		cpu <- fetchProfile(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", s.pprofURL, seconds), filepath.Join(o.ProfileDir, "cpu.pprof"))
	}()
	s.via.attack(ctx, sc, sc.body(s.via.model(sc), o.MaxTokens), o.Rate, time.Duration(seconds)*time.Second, o.Latency)
	if err := <-cpu; err != nil {
		return err
	}
	if err := fetchProfile(ctx, s.pprofURL+"/debug/pprof/allocs", filepath.Join(o.ProfileDir, "allocs.pprof")); err != nil {
		return err
	}
	progress(o, "  profiles written: go tool pprof -top %s", filepath.Join(o.ProfileDir, "cpu.pprof"))
	return nil
}

func fetchProfile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return fmt.Errorf("fetch profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch profile %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
