package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Workload is one of the fleet benchmark's traffic shapes. Traffic comes
// as sessions that start at Poisson arrivals; a session is one request, or
// a conversation of several turns, each sent when the previous one is
// answered and the user has thought (an exponential pause), with the whole
// history resent.
type Workload struct {
	Name  string `json:"name"`
	About string `json:"about"`
	// Turns per session, System prompts shared by sessions (each session
	// draws one; 0: none), SystemWords per system prompt, UserWords per
	// user message, ThinkS the mean pause between turns in simulated
	// seconds.
	Turns       int     `json:"turns"`
	System      int     `json:"system_prompts"`
	SystemWords int     `json:"system_words"`
	UserWords   int     `json:"user_words"`
	ThinkS      float64 `json:"think_s"`
	// Rates are the offered loads, in requests per simulated second.
	Rates []float64 `json:"rates"`
}

// The mock counts one word as one token; words of three letters and a
// space are 4 bytes, the gateway's estimate of a token.
const wordLetters = 3

// fleetWorkloads are the three workloads of issue 15, sized for a fleet of
// backends H100s: (A) multi-turn chats over a few shared system prompts,
// (B) llm-d's shared long context (contexts of 6K tokens, 160 by default:
// 2.3 × one server's KV cache, and 1.2K-token questions), (C) unrelated
// prompts of B's length. Rates are in requests per simulated second,
// multiples of what the fleet prefills without any cache.
func fleetWorkloads(backends, contexts int, loads []float64) []Workload {
	ws := []Workload{
		{Name: "A", About: "multi-turn chats resending their history, over 4 shared 2K-token system prompts",
			Turns: 5, System: 4, SystemWords: 2000, UserWords: 600, ThinkS: 1},
		{Name: "B", About: fmt.Sprintf("shared long context: %d contexts of 6K tokens, 1.2K-token questions", contexts),
			Turns: 1, System: contexts, SystemWords: 6000, UserWords: 1200},
		{Name: "C", About: "control: unrelated 6K-token prompts",
			Turns: 1, UserWords: 6000},
	}
	for i := range ws {
		w := &ws[i]
		// Mean prompt tokens per request, and what prefilling them all
		// costs: 35 µs a token on the h100-llama-8b profile.
		prompt := float64(w.SystemWords) + float64(w.UserWords+fleetTokens)*float64(w.Turns+1)/2
		capacity := float64(backends) / (prompt * 35e-6)
		for _, l := range loads {
			w.Rates = append(w.Rates, roundRate(l*capacity))
		}
	}
	return ws
}

func roundRate(r float64) float64 {
	if r >= 10 {
		return float64(int(r + 0.5))
	}
	return float64(int(r*10+0.5)) / 10
}

// fleetTokens is the output of every request: short, so that the
// benchmark measures prefill and routing rather than decode.
const fleetTokens = 32

// session is one user's traffic: when it starts, and its turns' text
// drawn from its own seeded generator, so every strategy sees the same.
type session struct {
	start  time.Duration // simulated, from the run's start
	system string        // "" for none
	users  []string
	thinks []time.Duration // simulated pauses after each turn
}

// schedule is one run's traffic: its sessions, and the simulated times at
// which the measured window starts (warm) and arrivals end (end).
type schedule struct {
	sessions  []session
	warm, end time.Duration
}

// primeMargin is how long after the last first sighting of a shared
// system prompt the measured window starts at the earliest: about the
// prefill of (B)'s 7.2K-token prompt and the requests queued behind it.
const primeMargin = time.Second

// plan draws the sessions of w at rate requests per simulated second from
// seed, the same for every strategy: a warm-up of at least warmup, then a
// measured window of window.
//
// The warm-up is there to fill the caches, as on a fleet that has been
// serving these prompts: the first sessions take each shared system prompt
// once, in a seeded order, and the window starts only primeMargin after the
// last of them. A prompt's first sighting is a miss no strategy can avoid;
// left in the window, those misses and the requests queued behind them
// were a tenth of (B)'s requests and set every strategy's TTFT p90 to one
// 7.2K-token prefill (docs/routing.md, "Warm-up").
func plan(w Workload, rate float64, warmup, window time.Duration, seed uint64, systems []string) schedule {
	rng := rand.New(rand.NewPCG(seed, 0))
	order := rng.Perm(len(systems))
	sessionRate := rate / float64(w.Turns)
	sc := schedule{warm: warmup, end: warmup + window}
	var t time.Duration
	for i := uint64(1); ; i++ {
		t += time.Duration(rng.ExpFloat64() / sessionRate * float64(time.Second))
		if t >= sc.end {
			return sc
		}
		r := rand.New(rand.NewPCG(seed, i))
		s := session{start: t}
		if len(systems) > 0 {
			k := r.IntN(len(systems))
			if n := int(i) - 1; n < len(order) {
				k = order[n]
				if t+primeMargin > sc.warm {
					sc.warm = t + primeMargin
					sc.end = sc.warm + window
				}
			}
			s.system = systems[k]
		}
		for range w.Turns {
			s.users = append(s.users, words(r, w.UserWords))
			s.thinks = append(s.thinks, time.Duration(r.ExpFloat64()*w.ThinkS*float64(time.Second)))
		}
		sc.sessions = append(sc.sessions, s)
	}
}

// systemPrompts draws w's shared system prompts; the first word numbers
// each, so no two share a prefix.
func systemPrompts(w Workload, seed uint64) []string {
	out := make([]string, w.System)
	for i := range out {
		r := rand.New(rand.NewPCG(seed^0x5eed, uint64(i)))
		out[i] = fmt.Sprintf("ctx%d %s", i, words(r, w.SystemWords-1))
	}
	return out
}

// words returns n random words of wordLetters letters.
func words(r *rand.Rand, n int) string {
	b := make([]byte, 0, n*(wordLetters+1))
	for i := range n {
		if i > 0 {
			b = append(b, ' ')
		}
		for range wordLetters {
			b = append(b, byte('a'+r.IntN(26)))
		}
	}
	return string(b)
}

// chatMessage is one message of a chat request.
type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// turnResult is what one request of a session gave.
type turnResult struct {
	sent   time.Time
	ttft   time.Duration // wall time to the first token
	total  time.Duration // wall time to the end of the stream
	tokens int           // output tokens
	reply  string
	err    string // "" when it succeeded
}

// fleetClient sends the benchmark's streaming chat requests, each to the
// next gateway replica in turn.
type fleetClient struct {
	http  *http.Client
	urls  []string // chat completions URL of each replica
	next  atomic.Uint64
	key   string
	model string
}

// send sends one streaming chat request and reads it to the end, noting
// when the first token came.
func (c *fleetClient) send(ctx context.Context, msgs []chatMessage, timeout time.Duration) turnResult {
	body, _ := json.Marshal(map[string]any{
		"model": c.model, "messages": msgs, "max_tokens": fleetTokens, "stream": true,
		"stream_options": map[string]bool{"include_usage": true},
	})
	res := turnResult{sent: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := c.urls[(c.next.Add(1)-1)%uint64(len(c.urls))]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		res.err = err.Error()
		return res
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		res.err = requestError(err)
		return res
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		res.err = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, errorMessage(b))
		return res
	}
	var reply strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	done := false
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data:"))
		if !ok {
			continue
		}
		data = bytes.TrimSpace(data)
		if string(data) == "[DONE]" {
			done = true
			break
		}
		var ev struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(data, &ev); err != nil {
			res.err = "bad event: " + err.Error()
			return res
		}
		if ev.Error != nil {
			res.err = "error event in stream"
			return res
		}
		for _, ch := range ev.Choices {
			if ch.Delta.Content != "" && res.ttft == 0 {
				res.ttft = time.Since(res.sent)
			}
			reply.WriteString(ch.Delta.Content)
		}
		if ev.Usage != nil {
			res.tokens = ev.Usage.CompletionTokens
		}
	}
	res.total = time.Since(res.sent)
	switch {
	case sc.Err() != nil:
		res.err = requestError(sc.Err())
	case !done:
		res.err = "stream ended without data: [DONE]"
	case res.ttft == 0:
		res.err = "no token in the stream"
	}
	res.reply = reply.String()
	return res
}

func requestError(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return err.Error()
}

// errorMessage is the first line of an error body's message.
func errorMessage(b []byte) string {
	var env struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &env) == nil && env.Error.Message != "" {
		b = []byte(env.Error.Message)
	}
	return firstLine(string(b))
}
