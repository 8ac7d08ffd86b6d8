package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/testutil"
)

// replicaConfig serves qwen3-14b on a (qwen-a) and b (qwen-b), plus the
// model_list entries in models, shares routing state through the Redis at
// redisAddr, and adds extra YAML lines under router_settings and
// general_settings.
func replicaConfig(t *testing.T, a, b *mockllm.Server, redisAddr, routerExtra, generalExtra, models string) string {
	host, port, _ := strings.Cut(redisAddr, ":")
	return writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: qwen3-14b
    litellm_params: {model: openai/qwen3-14b, api_base: %s/v1}
    model_info: {id: qwen-a}
  - model_name: qwen3-14b
    litellm_params: {model: openai/qwen3-14b, api_base: %s/v1}
    model_info: {id: qwen-b}
%srouter_settings:
  redis_host: %s
  redis_port: %s
%s
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
%s`, a.URL(), b.URL(), models, host, port, routerExtra, generalExtra))
}

// soloModel is a group "solo" with one deployment on a, with a limit such
// as "rpm: 60".
func soloModel(a *mockllm.Server, limit string) string {
	return fmt.Sprintf("  - model_name: solo\n    litellm_params: {model: openai/solo, api_base: %s/v1, %s}\n    model_info: {id: solo-a}\n", a.URL(), limit)
}

// startReplicas starts n gateways on one config and one database, as a
// Deployment's pods would run.
func startReplicas(t *testing.T, n int, cfg, dbURL string) []*runningGateway {
	env := map[string]string{"LITELLM_MASTER_KEY": testKey, "LITELLM_SALT_KEY": "sk-salt-shared"}
	gs := make([]*runningGateway, n)
	for i := range gs {
		if dbURL == "" {
			gs[i] = startGateway(t, env, "serve", "--config", cfg, "--backend-metrics-interval", "0")
		} else {
			gs[i] = startGateway(t, env, "serve", "--config", cfg, "--database-url", dbURL, "--backend-metrics-interval", "0")
		}
		waitFor(t, gs[i].stderr, `redis connected`)
	}
	return gs
}

// deploymentState returns a deployment's model_info.state from a
// replica's /model/info.
func deploymentState(t *testing.T, g *runningGateway, id string) map[string]any {
	t.Helper()
	code, out := adminCall(t, "GET", g.url+"/model/info?litellm_model_id="+id, "")
	if code != http.StatusOK {
		return nil
	}
	data, _ := out["data"].([]any)
	if len(data) == 0 {
		return nil
	}
	info, _ := data[0].(map[string]any)["model_info"].(map[string]any)
	st, _ := info["state"].(map[string]any)
	return st
}

// within polls cond every 10 ms for up to limit and returns how long it
// took to become true, or fails the test.
func within(t *testing.T, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, limit)
	return 0
}

// chatVia sends one chat request to a replica and returns its status and
// the deployment that answered.
func chatVia(t *testing.T, g *runningGateway, model string) (int, string, string) {
	t.Helper()
	resp, body := call(t, g.url+"/v1/chat/completions", testKey, chatBody(model, 1))
	return resp.StatusCode, resp.Header.Get("x-litellm-model-id"), resp.Header.Get("x-litellm-attempted-retries") + " " + body
}

// TestReplicasShareCooldowns: a backend that dies while replica A serves
// traffic is out of replica B's rotation within a second, without B ever
// trying it.
func TestReplicasShareCooldowns(t *testing.T) {
	rd := testutil.StartRedis(t)
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}})
	b := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"qwen3-14b"}})
	cfg := replicaConfig(t, a, b, rd.Addr(), "  routing_strategy: round-robin\n  num_retries: 2\n  cooldown_time: 60", "", "")
	gs := startReplicas(t, 2, cfg, "")
	A, B := gs[0], gs[1]

	b.Close()
	// Replica A's traffic finds gpu-b dead and cools it down.
	within(t, "replica A cools the dead backend down", 10*time.Second, func() bool {
		chatVia(t, A, "qwen3-14b")
		return deploymentState(t, A, "qwen-b")["cooling_down"] == true
	})
	took := within(t, "replica B learns of the cooldown", 2*time.Second, func() bool {
		return deploymentState(t, B, "qwen-b")["cooling_down"] == true
	})
	if took > time.Second {
		t.Errorf("replica B took %v to stop using the dead backend, want under a second", took)
	}
	if left, _ := deploymentState(t, B, "qwen-b")["cooldown_seconds_left"].(float64); left < 50 || left > 60 {
		t.Errorf("replica B's cooldown has %.1f s left, want the 60 s replica A set", left)
	}
	for range 10 {
		code, id, rest := chatVia(t, B, "qwen3-14b")
		if code != http.StatusOK || id != "qwen-a" || !strings.HasPrefix(rest, "0 ") {
			t.Fatalf("replica B: %d from %s (retries, body: %s), want 200 from qwen-a on the first try", code, id, rest)
		}
	}
	waitFor(t, B.stderr, "deployment cooling down, as another replica found")
	if n := strings.Count(B.stderr.String(), "deployment cooling down, as another replica found"); n != 1 {
		t.Errorf("replica B logged the shared cooldown %d times, want once", n)
	}
}

// TestReplicasShareRPM: an rpm of 60 holds for the three replicas together.
func TestReplicasShareRPM(t *testing.T) {
	rd := testutil.StartRedis(t)
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b", "solo"}})
	b := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"qwen3-14b"}})
	cfg := replicaConfig(t, a, b, rd.Addr(), "  num_retries: 0", "", soloModel(a, "rpm: 60"))
	gs := startReplicas(t, 3, cfg, "")
	// The limit is per clock minute: start the burst early in one.
	if s := time.Now().Second(); s > 45 {
		time.Sleep(time.Duration(61-s) * time.Second)
	}
	var ok, limited atomic.Int64
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := range 25 {
				code, _, _ := chatVia(t, gs[(w+i)%3], "solo")
				switch code {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
				default:
					t.Errorf("status %d", code)
				}
			}
		})
	}
	wg.Wait()
	// Grants are taken from one Redis counter atomically: no overshoot
	// while Redis is up (docs/deploy.md). A replica that found Redis too
	// slow (a command over its deadline on a loaded machine) holds the rpm
	// by itself meanwhile, as documented: then the bound does not apply.
	if ok.Load() > 60 || a.Stats().Completed > 60 {
		if g := replicaThatLostRedis(gs); g != nil {
			t.Logf("replica %s lost Redis during the burst (fail open): %d requests sent under an rpm of 60", g.url, ok.Load())
		} else {
			t.Errorf("three replicas sent %d requests (backend saw %d) under an rpm of 60", ok.Load(), a.Stats().Completed)
		}
	}
	// A replica whose grant runs dry asks for more before refusing, so the
	// whole rpm is used; at most a batch (1 here) per replica can be left.
	if ok.Load() < 60-3 {
		t.Errorf("only %d of 150 requests were served under an rpm of 60: the replicas hold back too much", ok.Load())
	}
	t.Logf("150 requests over 3 replicas, rpm 60: %d served, %d refused with 429", ok.Load(), limited.Load())
}

// TestReplicasShareTPM: tokens used through replica A count against the
// tpm on replica B.
func TestReplicasShareTPM(t *testing.T) {
	rd := testutil.StartRedis(t)
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b", "solo"}})
	b := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"qwen3-14b"}})
	cfg := replicaConfig(t, a, b, rd.Addr(), "  num_retries: 0", "", soloModel(a, "tpm: 20"))
	gs := startReplicas(t, 2, cfg, "")
	A, B := gs[0], gs[1]
	if s := time.Now().Second(); s > 50 { // the limit is per clock minute
		time.Sleep(time.Duration(61-s) * time.Second)
	}
	served := 0
	for range 30 {
		code, _, _ := chatVia(t, A, "solo")
		if code != http.StatusOK {
			break
		}
		served++
	}
	if served == 0 || served == 30 {
		t.Fatalf("replica A served %d requests under a tpm of 20 (%v)", served, deploymentState(t, A, "solo-a"))
	}
	time.Sleep(600 * time.Millisecond) // two exchanges of token counts
	if code, _, rest := chatVia(t, B, "solo"); code != http.StatusTooManyRequests {
		t.Errorf("replica B, after replica A used the minute's tokens: %d %s, want 429", code, rest)
	}
}

// TestReplicasShareInFlight: least-busy on replica B counts the requests
// replica A has in flight.
func TestReplicasShareInFlight(t *testing.T) {
	rd := testutil.StartRedis(t)
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}, MaxConcurrent: 64})
	b := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"qwen3-14b"}})
	cfg := replicaConfig(t, a, b, rd.Addr(), "  routing_strategy: least-busy\n  num_retries: 0", "", "")
	gs := startReplicas(t, 2, cfg, "")
	A, B := gs[0], gs[1]
	slow := mockllm.Faults{ExtraLatency: mockllm.Duration(3 * time.Second)}
	a.SetFaults(slow)
	b.SetFaults(slow)
	// Three slow requests through replica A, one after the other: A's
	// least-busy puts two on one backend and one on the other.
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 1; i <= 3; i++ {
		wg.Go(func() { chatVia(t, A, "qwen3-14b") })
		within(t, "replica A's request in flight", 2*time.Second, func() bool {
			return a.Stats().Running+b.Stats().Running == int64(i)
		})
	}
	busy, idle := "qwen-a", "qwen-b"
	if b.Stats().Running > a.Stats().Running {
		busy, idle = idle, busy
	}
	time.Sleep(600 * time.Millisecond) // two exchanges of in-flight counts
	// Replica B has nothing in flight itself; least-busy over the cluster
	// sends its request to the backend with one request, not two.
	code, id, _ := chatVia(t, B, "qwen3-14b")
	if code != http.StatusOK || id != idle {
		t.Errorf("replica B sent its request to %s (%d), want %s: %s has more requests in flight through replica A", id, code, idle, busy)
	}
}

// TestReplicasShareProbes: with background checks on, the replicas divide
// the probes: each backend is probed about once per interval, not once per
// replica, and every replica knows the results.
func TestReplicasShareProbes(t *testing.T) {
	rd := testutil.StartRedis(t)
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}})
	b := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"qwen3-14b"}})
	cfg := replicaConfig(t, a, b, rd.Addr(), "", "  background_health_checks: true\n  health_check_interval: 1\n", "")
	gs := startReplicas(t, 3, cfg, "")
	probes := func() int {
		n := 0
		for _, g := range gs {
			f := scrapeMetrics(t, g.url, testKey)
			for _, s := range f.series("maasgate_health_checks_total", "model_id") {
				if strings.HasPrefix(s, "model_id=qwen-a ") {
					var v float64
					fmt.Sscanf(strings.TrimPrefix(s, "model_id=qwen-a = "), "%g", &v)
					n += int(v)
				}
			}
		}
		return n
	}
	// Counted over a window once all replicas run, so the replicas'
	// start-up (each starts its rounds as it comes up) is not counted.
	before := probes()
	time.Sleep(3500 * time.Millisecond)
	n := probes() - before
	for _, g := range gs {
		if st := deploymentState(t, g, "qwen-a"); st["last_health_check"] == nil {
			t.Errorf("replica %s has no health result for qwen-a", g.url)
		}
	}
	// About 3 or 4 rounds of 1 s; three replicas each probing would be
	// about 10.
	if n < 2 || n > 6 {
		t.Errorf("qwen-a was probed %d times by three replicas in 3.5 s at a 1 s interval, want about 4", n)
	}
}

// TestReplicasFollowTheDatabase: models and router settings changed
// through one replica serve on the other within a second (PostgreSQL
// LISTEN/NOTIFY), and a replica that lost the database converges when it
// is back.
func TestReplicasFollowTheDatabase(t *testing.T) {
	rd := testutil.StartRedis(t)
	dbURL := postgresURL(t)
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b", "qwen3-7b"}})
	b := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"qwen3-14b"}})
	cfg := replicaConfig(t, a, b, rd.Addr(), "", "", "")
	gs := startReplicas(t, 2, cfg, dbURL)
	A, B := gs[0], gs[1]

	// A model added on A serves on B.
	if code, out := adminCall(t, "POST", A.url+"/model/new", fmt.Sprintf(
		`{"model_name":"qwen3-7b","litellm_params":{"model":"openai/qwen3-7b","api_base":"%s/v1"},"model_info":{"id":"small-a"}}`, a.URL())); code != 200 {
		t.Fatalf("POST /model/new on A: %d %v", code, out)
	}
	took := within(t, "the new model serves on B", 3*time.Second, func() bool {
		code, _, _ := chatVia(t, B, "qwen3-7b")
		return code == http.StatusOK
	})
	if took > time.Second {
		t.Errorf("the model added on A served on B after %v, want under a second", took)
	}
	// A settings change on B is in force on A.
	if code, out := adminCall(t, "POST", B.url+"/config/update", `{"router_settings":{"num_retries":5,"routing_strategy":"least-busy"}}`); code != 200 {
		t.Fatalf("POST /config/update on B: %d %v", code, out)
	}
	took = within(t, "the settings reach A", 3*time.Second, func() bool {
		_, s := adminCall(t, "GET", A.url+"/router/settings", "")
		cur, _ := s["current_values"].(map[string]any)
		return cur["num_retries"] == float64(5) && cur["routing_strategy"] == "least-busy"
	})
	if took > time.Second {
		t.Errorf("the settings changed on B reached A after %v, want under a second", took)
	}
	// A deletion too.
	if code, out := adminCall(t, "POST", B.url+"/model/delete", `{"id":"small-a"}`); code != 200 {
		t.Fatalf("POST /model/delete on B: %d %v", code, out)
	}
	within(t, "the deletion reaches A", time.Second, func() bool {
		code, _, _ := chatVia(t, A, "qwen3-7b")
		return code == http.StatusBadRequest
	})

	// The database goes away for replica A's connections: A keeps serving
	// what it has, and its admin writes fail with a clear 503.
	admin := openAdminDB(t, dbURL)
	name := dbName(t, dbURL)
	cut := func(allow bool) {
		t.Helper()
		if _, err := admin.Exec(fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %t", name, allow)); err != nil {
			t.Fatal(err)
		}
		if !allow {
			if _, err := admin.Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name); err != nil {
				t.Fatal(err)
			}
		}
	}
	cut(false)
	for range 5 {
		if code, _, rest := chatVia(t, A, "qwen3-14b"); code != http.StatusOK {
			t.Fatalf("with the database gone, A answered %d: %s", code, rest)
		}
	}
	code, out := adminCall(t, "POST", A.url+"/model/new", fmt.Sprintf(
		`{"model_name":"qwen3-7b","litellm_params":{"model":"openai/qwen3-7b","api_base":"%s/v1"},"model_info":{"id":"lost"}}`, a.URL()))
	if code != http.StatusServiceUnavailable || !strings.Contains(errMessage(out), "database is unreachable") {
		t.Errorf("POST /model/new with the database gone: %d %v, want 503 naming the database", code, out)
	}
	if c, _, _ := chatVia(t, A, "qwen3-7b"); c != http.StatusBadRequest {
		t.Errorf("the refused model serves anyway: %d", c)
	}
	// The database is back: a model added through B reaches A, whose
	// notification connection reconnects.
	cut(true)
	within(t, "B writes again", 10*time.Second, func() bool {
		code, _ := adminCall(t, "POST", B.url+"/model/new", fmt.Sprintf(
			`{"model_name":"qwen3-7b","litellm_params":{"model":"openai/qwen3-7b","api_base":"%s/v1"},"model_info":{"id":"after"}}`, a.URL()))
		return code == http.StatusOK
	})
	within(t, "A converges after the outage", 10*time.Second, func() bool {
		code, id, _ := chatVia(t, A, "qwen3-7b")
		return code == http.StatusOK && id == "after"
	})
}

// TestRedisOutage: Redis stops mid-run: no request fails, the replicas
// say so in readiness and metrics, and when Redis is back a cooldown one
// replica found meanwhile reaches the other.
func TestRedisOutage(t *testing.T) {
	rd := testutil.StartRedis(t)
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}})
	b := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"qwen3-14b"}})
	cfg := replicaConfig(t, a, b, rd.Addr(), "  routing_strategy: round-robin\n  num_retries: 2\n  cooldown_time: 120", "", "")
	gs := startReplicas(t, 2, cfg, "")
	A, B := gs[0], gs[1]

	var failed, served atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Go(func() {
			for ctx.Err() == nil {
				if code, _, _ := chatVia(t, g, "qwen3-14b"); code != http.StatusOK {
					failed.Add(1)
				}
				served.Add(1)
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	rd.Stop()
	for _, g := range gs {
		waitFor(t, g.stderr, `redis unreachable`)
	}
	_, ready := adminCall(t, "GET", A.url+"/health/readiness", "")
	if ready["status"] != "healthy" || !strings.Contains(fmt.Sprint(ready["redis"]), "unreachable") {
		t.Errorf("readiness with Redis down: %v, want healthy with redis unreachable", ready)
	}
	if v, _ := scrapeMetrics(t, A.url, testKey).value("maasgate_redis_connected", nil); v != 0 {
		t.Errorf("maasgate_redis_connected = %g with Redis down", v)
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed while Redis went away", failed.Load(), served.Load())
	}
	if n := strings.Count(A.stderr.String(), "redis unreachable"); n != 1 {
		t.Errorf("replica A logged the outage %d times, want once", n)
	}

	// Replica A alone finds gpu-b dead while Redis is away.
	b.Close()
	within(t, "replica A cools gpu-b down", 10*time.Second, func() bool {
		chatVia(t, A, "qwen3-14b")
		return deploymentState(t, A, "qwen-b")["cooling_down"] == true
	})
	if deploymentState(t, B, "qwen-b")["cooling_down"] == true {
		t.Fatal("replica B learned of the cooldown without Redis")
	}
	rd.Start()
	within(t, "replica B learns of it once Redis is back", 5*time.Second, func() bool {
		return deploymentState(t, B, "qwen-b")["cooling_down"] == true
	})
	waitFor(t, B.stderr, `redis connected: routing state is shared(?s:.*)redis connected`)
}

// openAdminDB connects to the test server's postgres database, to cut and
// restore a test database's connections.
func openAdminDB(t *testing.T, dbURL string) *sql.DB {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/postgres"
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func dbName(t *testing.T, dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// TestRedisSettingsFromEnv: router_settings win; without them the REDIS_*
// variables LiteLLM reads apply; a bad REDIS_PORT is an error naming it.
func TestRedisSettingsFromEnv(t *testing.T) {
	setEnv(t, map[string]string{"REDIS_HOST": "cache", "REDIS_PORT": "6380", "REDIS_PASSWORD": "pw", "REDIS_SSL": "True"})
	s, err := redisSettings(config.RouterSettings{})
	if err != nil || s.Host != "cache" || s.Port != 6380 || s.Password != "pw" || !s.TLS {
		t.Errorf("from the environment: %+v %v", s, err)
	}
	s, _ = redisSettings(config.RouterSettings{RedisHost: "redis", RedisPort: 7000})
	if s.Host != "redis" || s.Port != 7000 || s.Password != "pw" {
		t.Errorf("router_settings first: %+v", s)
	}
	// Kubernetes sets REDIS_PORT=tcp://... for a Service named redis.
	setEnv(t, map[string]string{"REDIS_HOST": "redis", "REDIS_PORT": "tcp://10.0.0.9:6379"})
	if s, err := redisSettings(config.RouterSettings{}); err != nil || s.Address() != "redis:6379" {
		t.Errorf("with a service link in REDIS_PORT: %+v %v", s, err)
	}
	setEnv(t, map[string]string{"REDIS_URL": "redis://cache:6379"})
	if s, _ := redisSettings(config.RouterSettings{}); s.URL != "redis://cache:6379" {
		t.Errorf("REDIS_URL: %+v", s)
	}
	setEnv(t, map[string]string{"REDIS_HOST": "cache", "REDIS_PORT": "sixty"})
	if _, err := redisSettings(config.RouterSettings{}); err == nil || !strings.Contains(err.Error(), "REDIS_PORT") {
		t.Errorf("bad REDIS_PORT: %v", err)
	}
	setEnv(t, nil)
	if s, _ := redisSettings(config.RouterSettings{}); s.Enabled() {
		t.Errorf("no redis configured, yet %+v", s)
	}
}

// TestRedisRefusingWrites: a Redis that answers but refuses writes (out of
// memory here) counts as away: the replica serves on its own state, under
// its own rpm count, and says why.
func TestRedisRefusingWrites(t *testing.T) {
	rd := testutil.StartRedis(t)
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b", "solo"}})
	b := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"qwen3-14b"}})
	cfg := replicaConfig(t, a, b, rd.Addr(), "  num_retries: 0", "", soloModel(a, "rpm: 5"))
	g := startReplicas(t, 1, cfg, "")[0]
	rdb := redis.NewClient(&redis.Options{Addr: rd.Addr()})
	defer rdb.Close()
	if err := rdb.ConfigSet(context.Background(), "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, g.stderr, `redis unreachable.*OOM`)
	_, ready := adminCall(t, "GET", g.url+"/health/readiness", "")
	if ready["status"] != "healthy" || !strings.Contains(fmt.Sprint(ready["redis"]), "OOM") {
		t.Errorf("readiness with Redis refusing writes: %v", ready)
	}
	served := 0
	for range 8 {
		if code, _, _ := chatVia(t, g, "solo"); code == http.StatusOK {
			served++
		}
	}
	// The minute may already have counted requests before the switch; the
	// local count never lets more than the rpm through.
	if served == 0 || served > 5 {
		t.Errorf("with Redis refusing writes, %d of 8 requests were served under an rpm of 5", served)
	}
	if code, _, rest := chatVia(t, g, "qwen3-14b"); code != http.StatusOK {
		t.Errorf("an unlimited group failed with Redis refusing writes: %d %s", code, rest)
	}
}

// replicaThatLostRedis returns a replica that logged losing Redis, or nil.
func replicaThatLostRedis(gs []*runningGateway) *runningGateway {
	for _, g := range gs {
		if strings.Contains(g.stderr.String(), "redis unreachable") {
			return g
		}
	}
	return nil
}
