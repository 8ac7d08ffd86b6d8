package scrape

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/maasgate/maasgate/internal/deployment"
)

// maxBody bounds what a scrape reads. vLLM's /metrics, histograms
// included, is tens of kilobytes per served model.
const maxBody = 4 << 20

// The vLLM gauges a scrape reads.
const (
	metricWaiting  = "vllm:num_requests_waiting"
	metricRunning  = "vllm:num_requests_running"
	metricKVCache  = "vllm:kv_cache_usage_perc"
	metricGPUCache = "vllm:gpu_cache_usage_perc" // its name on older vLLM
)

var wanted = [...]string{metricWaiting, metricRunning, metricKVCache, metricGPUCache}

// result is the outcome of one scrape.
type result struct {
	at      time.Time // when the answer was read
	metrics metrics   // when the scrape succeeded
	// noMetrics: the server has no /metrics for the gateway (404, 405) or
	// refuses it (401, 403), so it is not asked again.
	noMetrics bool
	err       string // why the scrape failed; "" when it succeeded
}

// sample is one series of a wanted metric.
type sample struct {
	model string // its model_name label
	value float64
}

// metrics are the series of the wanted metrics, by metric name.
type metrics map[string][]sample

// load returns a deployment's values: those of the series labelled with its
// upstream model, else the sum over all series (the max for the KV cache,
// a share that does not add up). The KV cache usage is -1 when the server
// reports neither of its names.
func (m metrics) load(upstream string) (waiting, running, kv float64) {
	waiting, _ = pick(m[metricWaiting], upstream, sum)
	running, _ = pick(m[metricRunning], upstream, sum)
	var ok bool
	if kv, ok = pick(m[metricKVCache], upstream, math.Max); ok {
		return waiting, running, kv
	}
	if kv, ok = pick(m[metricGPUCache], upstream, math.Max); ok {
		return waiting, running, kv
	}
	return waiting, running, -1
}

func sum(a, b float64) float64 { return a + b }

// pick folds with agg the series of ss labelled with upstream, or all of ss
// when none is; it reports false when ss is empty. Several series can carry
// one model_name: vLLM with data parallelism reports one per engine.
func pick(ss []sample, upstream string, agg func(a, b float64) float64) (float64, bool) {
	matched := slices.ContainsFunc(ss, func(s sample) bool { return s.model == upstream })
	var v float64
	n := 0
	for _, s := range ss {
		if matched && s.model != upstream {
			continue
		}
		if n == 0 {
			v = s.value
		} else {
			v = agg(v, s.value)
		}
		n++
	}
	return v, n > 0
}

// fetch scrapes one server within s.timeout. Its errors name the method and
// path, never the full URL, whose query or user info may hold a secret.
func (s *Scraper) fetch(ctx context.Context, g *group) result {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	what := "GET " + deployment.ShownPath(g.u)
	failed := func(msg string) result {
		return result{at: s.now(), err: g.ds[0].Scrub(what + ": " + msg)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url, nil)
	if err != nil {
		return failed("build request") // not reachable: the URL was parsed
	}
	// Only the text format is parsed; vLLM's prometheus_client would send
	// OpenMetrics if asked, which TextParser does not read.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	req.Header.Set("User-Agent", "maasgate-scrape")
	if g.auth != "" {
		req.Header.Set("Authorization", g.auth)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return failed(deployment.DescribeTransportError(ctx, err, s.timeout))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little, so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		r := failed(fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode)))
		switch resp.StatusCode {
		case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusUnauthorized, http.StatusForbidden:
			r.noMetrics = true
		}
		return r
	}
	body := &io.LimitedReader{R: resp.Body, N: maxBody + 1}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, perr := p.TextToMetricFamilies(body)
	if body.N <= 0 {
		return failed(fmt.Sprintf("answer larger than %d MiB", maxBody>>20))
	}
	if perr != nil {
		if ctx.Err() != nil {
			return failed("read answer: " + deployment.DescribeTransportError(ctx, perr, s.timeout))
		}
		return failed("unreadable answer: " + perr.Error())
	}
	m := metrics{}
	for _, name := range wanted {
		fam, ok := fams[name]
		if !ok {
			continue
		}
		vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{}, fam)
		if err != nil {
			return failed("unreadable answer: " + err.Error())
		}
		for _, smp := range vec {
			if string(smp.Metric[model.MetricNameLabel]) != name || smp.Histogram != nil || math.IsNaN(float64(smp.Value)) {
				continue // a histogram's or summary's parts, or no value
			}
			m[name] = append(m[name], sample{model: string(smp.Metric["model_name"]), value: float64(smp.Value)})
		}
	}
	if len(m) == 0 {
		return failed("no vllm:num_requests_waiting, vllm:num_requests_running or KV cache usage in the answer")
	}
	return result{at: s.now(), metrics: m}
}
