package bench

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// print writes the fleet benchmark's figures as Markdown tables, one per
// workload and load, then the targets.
func (r *FleetResult) print(w io.Writer) {
	fmt.Fprintf(w, "\nFleet: %d simulated %s servers behind %d gateway replica(s) at %g× speed-up, %gs measured per run after a warm-up of at least %gs (longer until each shared prompt was sent once), seed %d; times in simulated seconds\n",
		r.Backends, r.Profile, r.Replicas, r.SpeedUp, r.DurationS-r.WarmupS, r.WarmupS, r.Seed)
	for _, fw := range r.Workloads {
		for _, p := range fw.Points {
			fmt.Fprintf(w, "\n(%s) %s, %g requests/s (warm-up %.1fs)\n\n", fw.Name, fw.About, p.Rate, p.WarmupS)
			fmt.Fprintln(w, "| strategy | TTFT p50 | TTFT p90 | TTFT p99 | e2e p50 | e2e p99 | output tok/s | prefix hits | imbalance | failed |")
			fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
			for _, s := range p.Strategies {
				fmt.Fprintf(w, "| %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.0f | %.0f%% | %.2f | %d/%d |\n",
					s.Strategy, s.TTFT.P50, s.TTFT.P90, s.TTFT.P99, s.Total.P50, s.Total.P99,
					s.TokensPerS, 100*s.HitRate, s.Imbalance, s.Failed, s.Requests)
			}
		}
	}
	if ts := r.Targets(); len(ts) > 0 {
		fmt.Fprintf(w, "\nFleet targets (issue 15, item 4)\n")
		for _, t := range ts {
			mark := "not met"
			if t.Met {
				mark = "met"
			}
			fmt.Fprintf(w, "  %-7s %s: %s (target %s)\n", mark, t.Name, t.Value, t.Target)
		}
	}
}

// find returns the figures of strategy at p, or nil.
func (p *FleetPoint) find(strategy string) *FleetRunResult {
	for i := range p.Strategies {
		if p.Strategies[i].Strategy == strategy {
			return &p.Strategies[i]
		}
	}
	return nil
}

// Targets holds the figures against issue 15's: on (B), at the first load
// where round-robin's TTFT p90 passes 2 s (the highest load if none does),
// cache-aware's p90 at least 5× lower than round-robin's and lower than the
// llm-d-style scorer's; on (A), at least 2× lower than least-busy's, at
// every load; on (C), within 5% of the best other strategy's, at every load.
func (r *FleetResult) Targets() []TargetResult {
	var out []TargetResult
	for _, fw := range r.Workloads {
		switch fw.Name {
		case "B":
			if len(fw.Points) == 0 {
				continue
			}
			p := &fw.Points[len(fw.Points)-1]
			for i := range fw.Points {
				if rr := fw.Points[i].find("round-robin"); rr != nil && rr.TTFT.P90 > 2 {
					p = &fw.Points[i]
					break
				}
			}
			ca, rr, ld := p.find("cache-aware"), p.find("round-robin"), p.find("llm-d-scorer")
			if ca == nil || rr == nil {
				continue
			}
			where := fmt.Sprintf("(B) at %g/s, round-robin p90 %.2fs", p.Rate, rr.TTFT.P90)
			if rr.TTFT.P90 <= 2 {
				where += " (never passed 2 s)"
			}
			out = append(out, TargetResult{Name: where + ": cache-aware TTFT p90 vs round-robin's",
				Target: "at least 5× lower", Value: fmt.Sprintf("%.3fs, %.1f× lower", ca.TTFT.P90, ratio(rr.TTFT.P90, ca.TTFT.P90)),
				Met: rr.TTFT.P90 > 2 && ratio(rr.TTFT.P90, ca.TTFT.P90) >= 5, Figure: ratio(rr.TTFT.P90, ca.TTFT.P90)})
			if ld != nil {
				out = append(out, TargetResult{Name: fmt.Sprintf("(B) at %g/s: cache-aware TTFT p90 vs llm-d-scorer's", p.Rate),
					Target: "lower", Value: fmt.Sprintf("%.3fs vs %.3fs", ca.TTFT.P90, ld.TTFT.P90),
					Met: ca.TTFT.P90 < ld.TTFT.P90, Figure: ratio(ld.TTFT.P90, ca.TTFT.P90)})
			}
		case "A":
			for i := range fw.Points {
				p := &fw.Points[i]
				ca, lb := p.find("cache-aware"), p.find("least-busy")
				if ca == nil || lb == nil {
					continue
				}
				x := ratio(lb.TTFT.P90, ca.TTFT.P90)
				out = append(out, TargetResult{Name: fmt.Sprintf("(A) at %g/s: cache-aware TTFT p90 vs least-busy's", p.Rate),
					Target: "at least 2× lower", Value: fmt.Sprintf("%.3fs vs %.3fs, %.1f× lower", ca.TTFT.P90, lb.TTFT.P90, x),
					Met: x >= 2, Figure: x})
			}
		case "C":
			for i := range fw.Points {
				p := &fw.Points[i]
				ca := p.find("cache-aware")
				if ca == nil {
					continue
				}
				var best *FleetRunResult
				for j := range p.Strategies {
					s := &p.Strategies[j]
					if s.Strategy != "cache-aware" && (best == nil || s.TTFT.P90 < best.TTFT.P90) {
						best = s
					}
				}
				if best == nil {
					continue
				}
				x := ca.TTFT.P90 / best.TTFT.P90
				out = append(out, TargetResult{Name: fmt.Sprintf("(C) at %g/s: cache-aware TTFT p90 vs the best other (%s)", p.Rate, best.Strategy),
					Target: "within 5%", Value: fmt.Sprintf("%.3fs vs %.3fs (%+.0f%%)", ca.TTFT.P90, best.TTFT.P90, 100*(x-1)),
					Met: x <= 1.05, Figure: x})
			}
		}
	}
	return out
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return math.Inf(1)
	}
	return a / b
}

// chartColors are the strategies' colours in the charts, in FleetStrategies order.
var chartColors = []string{"#999999", "#e69f00", "#56b4e9", "#009e73", "#d55e00", "#0072b2", "#cc79a7"}

// writeCharts writes fleet-<workload>.svg into dir: TTFT p90 (log scale)
// against the offered load, one line per strategy.
func (r *FleetResult) writeCharts(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, fw := range r.Workloads {
		path := filepath.Join(dir, "fleet-"+strings.ToLower(fw.Name)+".svg")
		if err := os.WriteFile(path, []byte(fw.chart()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// chart draws fw's TTFT p90 against load as an SVG document.
func (fw *FleetWorkload) chart() string {
	const W, H, left, right, top, bottom = 640, 360, 70, 170, 40, 50
	pw, ph := float64(W-left-right), float64(H-top-bottom)
	lo, hi := math.Inf(1), math.Inf(-1)
	maxRate := 0.0
	for _, p := range fw.Points {
		maxRate = max(maxRate, p.Rate)
		for _, s := range p.Strategies {
			if v := s.TTFT.P90; v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 0) || maxRate == 0 {
		lo, hi, maxRate = 0.01, 1, 1
	}
	ylo, yhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if yhi <= ylo {
		yhi = ylo + 1
	}
	x := func(rate float64) float64 { return left + rate/maxRate*pw }
	y := func(v float64) float64 { return top + (yhi-math.Log10(v))/(yhi-ylo)*ph }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">(%s) TTFT p90, simulated seconds (log scale), by offered load</text>`+"\n", left, fw.Name)
	for e := ylo; e <= yhi; e++ {
		v := math.Pow(10, e)
		fmt.Fprintf(&b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%g s</text>`+"\n",
			left, left+pw, y(v), y(v), left-6, y(v)+4, v)
	}
	for _, p := range fw.Points {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%g/s</text>`+"\n", x(p.Rate), top+ph+18, p.Rate)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">requests per simulated second</text>`+"\n", left+pw/2, H-8)
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%.0f" stroke="black"/><line x1="%d" x2="%.0f" y1="%.0f" y2="%.0f" stroke="black"/>`+"\n",
		left, left, top, top+ph, left, left+pw, top+ph, top+ph)
	if len(fw.Points) == 0 {
		b.WriteString("</svg>\n")
		return b.String()
	}
	for i, s := range fw.Points[0].Strategies {
		color := chartColors[i%len(chartColors)]
		var pts []string
		for _, p := range fw.Points {
			if r := p.find(s.Strategy); r != nil && r.TTFT.P90 > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.Rate), y(r.TTFT.P90)))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(p.Rate), y(r.TTFT.P90), color)
			}
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), color)
		ly := top + 10 + 18*i
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"/><text x="%d" y="%d">%s</text>`+"\n",
			W-right+10, W-right+30, ly, ly, color, W-right+36, ly+4, s.Strategy)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
