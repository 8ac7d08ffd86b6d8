package metrics

import (
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/router"
)

// keyed is what a series says of the key: hashed_api_key, api_key_alias,
// team, team_alias.
type keyed struct{ Hash, Alias, Team, TeamAlias string }

// keysOn returns the key labels of the series of a metric family, as
// scraped, with the sum of their values.
func keysOn(t *testing.T, m *Metrics, reg *prometheus.Registry, family string) map[keyed]float64 {
	t.Helper()
	scrape(t, m) // prunes, as Prometheus's scrape would
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[keyed]float64{}
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, s := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			v := s.GetCounter().GetValue() + float64(s.GetHistogram().GetSampleCount())
			out[keyed{l["hashed_api_key"], l["api_key_alias"], l["team"], l["team_alias"]}] += v
		}
	}
	return out
}

// keySet is the virtual keys a test's Metrics sees, changeable.
type keySet struct {
	mu  sync.Mutex
	set *keys.Set
}

func (s *keySet) put(ks ...*keys.Key) { s.mu.Lock(); s.set = keys.NewSet(ks); s.mu.Unlock() }
func (s *keySet) get() *keys.Set      { s.mu.Lock(); defer s.mu.Unlock(); return s.set }

func testKey(secret, alias, team string) *keys.Key {
	return &keys.Key{Token: keys.Token(secret), Alias: alias, TeamID: team}
}

func hashOf(secret string) string { return keys.TokenHex(keys.Token(secret)) }

// TestKeyLabels: a virtual key's requests, failures, tokens and spend carry
// its hash, alias and team; the master key's carry "None"; the latency
// histograms carry "None" for everyone, so a key adds no histogram series.
func TestKeyLabels(t *testing.T) {
	t.Parallel()
	d := newDeployment("qwen", "a", "http://gpu-a:8000/v1")
	d.Model.Params.InputCostPerToken = 0.001
	team := &keys.Team{ID: "team-1", Alias: "research"}
	withTeam := testKey("sk-with-team", "alice", "team-1")
	bare := testKey("sk-bare", "", "")
	var ks keySet
	ks.put(withTeam, bare)
	reg := prometheus.NewRegistry()
	m := New(Options{Registry: reg, Deployments: func() []*deployment.Deployment { return []*deployment.Deployment{d} },
		Keys: ks.get, MaxKeys: 10})
	call := func(k *keys.Key, t *keys.Team, status int) {
		m.Start()
		c := success(d)
		c.Key, c.Team = k, t
		if status != 200 {
			c.Status, c.Class = status, router.RateLimited
		}
		m.Finish(c)
	}
	call(withTeam, team, 200)
	call(withTeam, team, 429)
	call(bare, nil, 200)
	call(nil, nil, 200)

	alice := keyed{hashOf("sk-with-team"), "alice", "team-1", "research"}
	noAlias := keyed{hashOf("sk-bare"), none, none, none}
	master := keyed{none, none, none, none}
	for _, tc := range []struct {
		family string
		want   map[keyed]float64
	}{
		{"litellm_proxy_total_requests_metric_total", map[keyed]float64{alice: 2, noAlias: 1, master: 1}},
		{"litellm_proxy_failed_requests_metric_total", map[keyed]float64{alice: 1}},
		{"litellm_input_tokens_metric_total", map[keyed]float64{alice: 5, noAlias: 5, master: 5}},
		{"litellm_output_tokens_metric_total", map[keyed]float64{alice: 10, noAlias: 10, master: 10}},
		{"litellm_total_tokens_metric_total", map[keyed]float64{alice: 15, noAlias: 15, master: 15}},
		{"litellm_spend_metric_total", map[keyed]float64{alice: 0.005, noAlias: 0.005, master: 0.005}},
		{"litellm_request_total_latency_metric", map[keyed]float64{master: 3}},
		{"litellm_llm_api_latency_metric", map[keyed]float64{master: 3}},
	} {
		t.Run(tc.family, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, keysOn(t, m, reg, tc.family)); diff != "" {
				t.Errorf("series by key (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKeyLabelsFollowChanges: a renamed key's series take its new alias and
// the old ones go at the next scrape; a deleted key's series go, and its
// place under the cap is free for another key.
func TestKeyLabelsFollowChanges(t *testing.T) {
	t.Parallel()
	d := newDeployment("qwen", "a", "http://gpu-a:8000/v1")
	var ks keySet
	first := testKey("sk-first", "old-name", "")
	ks.put(first)
	reg := prometheus.NewRegistry()
	m := New(Options{Registry: reg, Deployments: func() []*deployment.Deployment { return []*deployment.Deployment{d} },
		Keys: ks.get, MaxKeys: 1})
	call := func(k *keys.Key) {
		m.Start()
		c := success(d)
		c.Key = k
		m.Finish(c)
	}
	const family = "litellm_proxy_total_requests_metric_total"
	call(first)
	renamed := testKey("sk-first", "new-name", "")
	ks.put(renamed)
	call(renamed)
	want := map[keyed]float64{{hashOf("sk-first"), "new-name", none, none}: 1}
	if diff := cmp.Diff(want, keysOn(t, m, reg, family)); diff != "" {
		t.Errorf("after a rename (-want +got):\n%s", diff)
	}

	second := testKey("sk-second", "second", "")
	ks.put(second) // the first is deleted
	if got := keysOn(t, m, reg, family); len(got) != 0 {
		t.Errorf("a deleted key's series stay: %v", got)
	}
	call(second)
	want = map[keyed]float64{{hashOf("sk-second"), "second", none, none}: 1}
	if diff := cmp.Diff(want, keysOn(t, m, reg, family)); diff != "" {
		t.Errorf("a key in the deleted one's place (-want +got):\n%s", diff)
	}
}

// TestKeyLabelsCapped: past MaxKeys keys, a key's calls are labelled
// "other" but keep their team, until MaxKeys teams have been seen that way;
// the series stay bounded however many keys call.
func TestKeyLabelsCapped(t *testing.T) {
	t.Parallel()
	d := newDeployment("qwen", "a", "http://gpu-a:8000/v1")
	teams := []*keys.Team{{ID: "t0", Alias: "zero"}, {ID: "t1"}, {ID: "t2", Alias: "two"}}
	for _, tc := range []struct {
		name    string
		maxKeys int
		want    map[keyed]float64
	}{
		{"off", 0, map[keyed]float64{{other, other, other, other}: 300}},
		{"two", 2, map[keyed]float64{
			{hashOf("sk-0"), "key-0", "t0", "zero"}: 1,
			{hashOf("sk-1"), "key-1", "t1", none}:   1,
			{other, other, "t2", "two"}:             100,
			{other, other, "t0", "zero"}:            99,
			{other, other, other, other}:            99, // t1 is a third team past the cap
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			m := New(Options{Registry: reg, MaxKeys: tc.maxKeys,
				Deployments: func() []*deployment.Deployment { return []*deployment.Deployment{d} }})
			for i := range 300 {
				secret := fmt.Sprint("sk-", i)
				m.Start()
				c := success(d)
				c.Key, c.Team = testKey(secret, fmt.Sprint("key-", i), teams[i%3].ID), teams[i%3]
				m.Finish(c)
			}
			if diff := cmp.Diff(tc.want, keysOn(t, m, reg, "litellm_proxy_total_requests_metric_total")); diff != "" {
				t.Errorf("series by key (-want +got):\n%s", diff)
			}
		})
	}
}

// BenchmarkFinish measures recording a successful call, with the master
// key and with a virtual key among the labelled ones.
func BenchmarkFinish(b *testing.B) {
	d := newDeployment("qwen", "a", "http://gpu-a:8000/v1")
	k := testKey("sk-bench", "bench", "team-1")
	team := &keys.Team{ID: "team-1", Alias: "research"}
	for _, tc := range []struct {
		name string
		key  *keys.Key
		team *keys.Team
	}{
		{"master-key", nil, nil},
		{"virtual-key", k, team},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m := New(Options{Registry: prometheus.NewRegistry(), MaxKeys: DefaultMaxKeys})
			c := success(d)
			c.Key, c.Team = tc.key, tc.team
			b.ReportAllocs()
			for b.Loop() {
				m.Start()
				m.Finish(c)
			}
		})
	}
}
