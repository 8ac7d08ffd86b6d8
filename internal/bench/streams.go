package bench

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// StreamsResult is the gateway's memory with many streams open at once.
type StreamsResult struct {
	Streams     int     `json:"streams"`     // streams asked for
	Held        int     `json:"held"`        // open at once when memory was read
	Failed      int     `json:"failed"`      // refused: an error status or a broken connection
	EndedEarly  int     `json:"ended_early"` // ended by the backend before memory was read
	OpenUS      float64 `json:"open_us"`     // time until every stream had its first byte
	RSSIdle     uint64  `json:"rss_idle_bytes"`
	RSSOpen     uint64  `json:"rss_open_bytes"` // highest RSS seen with the streams open
	PeakRSS     uint64  `json:"peak_rss_bytes"` // the process's VmHWM
	PerStreamKB float64 `json:"per_stream_kb"`
}

// Streams of the memory measurement: slow enough tokens that a stream stays
// open for a minute unless the bench ends it, few enough chunks per second
// in all that the two cores are not busy relaying.
const (
	streamTPOT   = 250 * time.Millisecond
	streamTokens = 240
	streamWait   = time.Minute
)

// runStreams opens o.Streams streams through a fresh gateway (so its peak
// memory is theirs, not the ramp's), reads its memory while all are open,
// then ends them.
func runStreams(ctx context.Context, o Options, rep *Report) error {
	if o.Streams == 0 {
		return nil
	}
	progress(o, "streams: opening %d concurrent streams", o.Streams)
	s, err := startLoadSetup(ctx, o, "bench-streams", mockllm.Config{TTFT: o.Latency, TPOT: streamTPOT})
	if err != nil {
		return err
	}
	defer s.close()
	res := &StreamsResult{Streams: o.Streams}
	rep.Streams = res
	if s.stats != nil {
		res.RSSIdle, _, _ = s.stats.memory()
	}

	sc := scenario{Path: "/v1/chat/completions", Stream: true, PromptLen: o.PromptLen}
	body := sc.body(s.via.ChatModel, streamTokens)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.Streams, DisableCompression: true}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var opened, refused, endedEarly atomic.Int64
	var wg sync.WaitGroup
	settled := make(chan struct{}, o.Streams) // one per stream: opened, or failed to
	start := time.Now()
	for range o.Streams {
		wg.Go(func() {
			switch openAndHold(ctx, client, s.via, body, func() { opened.Add(1); settled <- struct{}{} }) {
			case streamRefused:
				refused.Add(1)
				settled <- struct{}{}
			case streamEndedEarly:
				endedEarly.Add(1)
			}
		})
	}
	deadline := time.NewTimer(streamWait)
	defer deadline.Stop()
wait:
	for range o.Streams {
		select {
		case <-settled:
		case <-deadline.C:
			break wait
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	res.OpenUS = us(time.Since(start))
	if s.stats != nil {
		for range 5 { // memory settles as the first chunks are relayed
			if rss, _, err := s.stats.memory(); err == nil {
				res.RSSOpen = max(res.RSSOpen, rss)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	res.EndedEarly = int(endedEarly.Load())
	res.Held = int(opened.Load()) - res.EndedEarly
	if s.pprofURL != "" {
		path := filepath.Join(o.ProfileDir, "streams-heap.pprof")
		if err := fetchProfile(ctx, s.pprofURL+"/debug/pprof/heap", path); err != nil {
			return err
		}
		progress(o, "  heap profile with the streams open: go tool pprof -sample_index=inuse_space -top %s", path)
	}
	cancel()
	wg.Wait()
	res.Failed = int(refused.Load())
	if s.stats != nil {
		_, res.PeakRSS, _ = s.stats.memory()
		if res.Held > 0 && res.RSSOpen > res.RSSIdle {
			res.PerStreamKB = float64(res.RSSOpen-res.RSSIdle) / 1024 / float64(res.Held)
		}
	}
	progress(o, "  %d of %d streams held open; gateway RSS %s (peak %s)", res.Held, o.Streams, fmtBytes(res.RSSOpen), fmtBytes(res.PeakRSS))
	return nil
}

// How a stream of the memory measurement went.
type streamEnd int

const (
	streamHeld       streamEnd = iota // open until the bench ended it
	streamRefused                     // no first byte: an error status or a broken connection
	streamEndedEarly                  // opened, then ended by itself
)

// openAndHold opens one stream, calls opened once its first byte arrives,
// and reads it until ctx ends.
func openAndHold(ctx context.Context, client *http.Client, e *endpoint, body []byte, opened func()) streamEnd {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return streamRefused
	}
	req.Header = e.header()
	resp, err := client.Do(req)
	if err != nil {
		return streamRefused
	}
	defer resp.Body.Close()
	buf := make([]byte, 4096)
	if resp.StatusCode != http.StatusOK {
		return streamRefused
	}
	if n, err := resp.Body.Read(buf); n == 0 && err != nil {
		return streamRefused
	}
	opened()
	for {
		if _, err := resp.Body.Read(buf); err != nil {
			if ctx.Err() != nil {
				return streamHeld
			}
			return streamEndedEarly
		}
	}
}
