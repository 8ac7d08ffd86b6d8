package scrape

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
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

	// Prefix cache counters, in tokens, and their names before vLLM 0.9.
	metricPrefixQueries    = "vllm:prefix_cache_queries_total"
	metricPrefixHits       = "vllm:prefix_cache_hits_total"
	metricGPUPrefixQueries = "vllm:gpu_prefix_cache_queries_total"
	metricGPUPrefixHits    = "vllm:gpu_prefix_cache_hits_total"

	// metricCacheConfig is an info gauge whose labels are the engine's
	// cache config, one series per engine, without model_name.
	metricCacheConfig = "vllm:cache_config_info"
)

var wanted = [...]string{
	metricWaiting, metricRunning, metricKVCache, metricGPUCache,
	metricPrefixQueries, metricPrefixHits, metricGPUPrefixQueries, metricGPUPrefixHits,
}

// result is the outcome of one scrape.
type result struct {
	at      time.Time // when the answer was read
	metrics metrics   // when the scrape succeeded
	cache   cacheConfig
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

// cacheConfig is the KV cache size vllm:cache_config_info reports: blocks
// summed over the engines, the largest block size. Zero when unknown.
type cacheConfig struct {
	blocks, blockSize int
}

// readCacheConfig reads the labels of vllm:cache_config_info's series. A
// label that is not a positive integer (vLLM writes "None" before the
// cache is sized) counts as unknown.
func readCacheConfig(fam *dto.MetricFamily) cacheConfig {
	var c cacheConfig
	for _, m := range fam.GetMetric() {
		var blocks, size int
		for _, l := range m.GetLabel() {
			n, err := strconv.Atoi(l.GetValue())
			if err != nil || n <= 0 {
				continue
			}
			switch l.GetName() {
			case "num_gpu_blocks":
				blocks = n
			case "block_size":
				size = n
			}
		}
		c.blocks += blocks
		c.blockSize = max(c.blockSize, size)
	}
	if c.blocks == 0 || c.blockSize == 0 {
		return cacheConfig{}
	}
	return c
}

// prefixCounters returns a deployment's prefix cache counters, -1 each
// when the server reports none.
func (m metrics) prefixCounters(upstream string) (queries, hits float64) {
	for _, names := range [][2]string{{metricPrefixQueries, metricPrefixHits}, {metricGPUPrefixQueries, metricGPUPrefixHits}} {
		q, okQ := pick(m[names[0]], upstream, sum)
		h, okH := pick(m[names[1]], upstream, sum)
		if okQ && okH {
			return q, h
		}
	}
	return -1, -1
}

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

// keepWanted appends to dst the lines of the exposition text that the
// scrape reads: the samples, HELP and TYPE of the wanted metrics and of
// vllm:cache_config_info. A vLLM server's /metrics is some 30 KB per
// engine, mostly histograms; parsing only what is read makes a round
// (BenchmarkScrapeRound) several times cheaper, for scrapes every 100 ms.
// It returns the number of the first line that is neither blank, a
// comment nor a sample (an HTML page, say), or 0.
func keepWanted(dst *bytes.Buffer, text []byte) (badLine int) {
	for n := 1; len(text) > 0; n++ {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i+1], text[i+1:]
		} else {
			text = nil
		}
		var name []byte
		switch c := line[0]; {
		case c == '#':
			// "# HELP name ..." or "# TYPE name ...": other comments go.
			rest := bytes.TrimLeft(line[1:], " \t")
			if !bytes.HasPrefix(rest, []byte("HELP ")) && !bytes.HasPrefix(rest, []byte("TYPE ")) {
				continue
			}
			rest = bytes.TrimLeft(rest[5:], " \t")
			name = rest
			if i := bytes.IndexAny(rest, " \t\r\n"); i >= 0 {
				name = rest[:i]
			}
		case c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			name = line[:max(0, bytes.IndexAny(line, "{ \t"))]
		case c == '\n' || c == ' ' || c == '\t' || c == '\r':
			continue
		default:
			return n
		}
		if keep[string(name)] {
			dst.Write(line)
			if line[len(line)-1] != '\n' { // the parser wants the last line ended
				dst.WriteByte('\n')
			}
		}
	}
	return 0
}

// keep is the set of metric names keepWanted keeps.
var keep = func() map[string]bool {
	m := map[string]bool{metricCacheConfig: true}
	for _, name := range wanted {
		m[name] = true
	}
	return m
}()

// maxPooled bounds the buffers kept for the next scrape.
const maxPooled = 1 << 20

func (s *Scraper) buffer() *bytes.Buffer {
	b, _ := s.buffers.Get().(*bytes.Buffer)
	if b == nil {
		b = &bytes.Buffer{}
	}
	return b
}

func (s *Scraper) release(bs ...*bytes.Buffer) {
	for _, b := range bs {
		if b.Cap() <= maxPooled {
			b.Reset()
			s.buffers.Put(b)
		}
	}
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
	raw, kept := s.buffer(), s.buffer()
	defer s.release(raw, kept)
	body := &io.LimitedReader{R: resp.Body, N: maxBody + 1}
	if _, err := raw.ReadFrom(body); err != nil {
		return failed("read answer: " + deployment.DescribeTransportError(ctx, err, s.timeout))
	}
	if body.N <= 0 {
		return failed(fmt.Sprintf("answer larger than %d MiB", maxBody>>20))
	}
	if line := keepWanted(kept, raw.Bytes()); line > 0 {
		return failed(fmt.Sprintf("unreadable answer: line %d is not a metric", line))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, perr := p.TextToMetricFamilies(kept)
	if perr != nil {
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
	if len(m[metricWaiting])+len(m[metricRunning])+len(m[metricKVCache])+len(m[metricGPUCache]) == 0 {
		return failed("no vllm:num_requests_waiting, vllm:num_requests_running or KV cache usage in the answer")
	}
	var cache cacheConfig
	if fam, ok := fams[metricCacheConfig]; ok {
		cache = readCacheConfig(fam)
	}
	return result{at: s.now(), metrics: m, cache: cache}
}
