package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/testutil"
)

// TestReplicasShareKeys: a key created, blocked or deleted on one replica
// takes effect on the other within a second (PostgreSQL's notification).
func TestReplicasShareKeys(t *testing.T) {
	rd := testutil.StartRedis(t)
	dbURL := postgresURL(t)
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}})
	b := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"qwen3-14b"}})
	gs := startReplicas(t, 2, replicaConfig(t, a, b, rd.Addr(), "", "", ""), dbURL)
	A, B := gs[0], gs[1]
	chat := func(g *runningGateway, key string) int {
		resp, _ := call(t, g.url+"/v1/chat/completions", key, chatBody("qwen3-14b", 1))
		return resp.StatusCode
	}

	_, gen := adminCall(t, "POST", A.url+"/key/generate", `{"models":["qwen3-14b"]}`)
	secret, _ := gen["key"].(string)
	for _, step := range []struct {
		what   string
		change func()
		on     *runningGateway
		want   int
	}{
		{"a key created on A serves on B", func() {}, B, http.StatusOK},
		{"a key blocked on B is refused on A", func() { adminCall(t, "POST", B.url+"/key/block", fmt.Sprintf(`{"key":%q}`, secret)) }, A, http.StatusUnauthorized},
		{"unblocked on A, it serves on B", func() { adminCall(t, "POST", A.url+"/key/unblock", fmt.Sprintf(`{"key":%q}`, secret)) }, B, http.StatusOK},
		{"deleted on B, it is refused on A", func() { adminCall(t, "POST", B.url+"/key/delete", fmt.Sprintf(`{"keys":[%q]}`, secret)) }, A, http.StatusUnauthorized},
	} {
		step.change()
		if took := within(t, step.what, 3*time.Second, func() bool { return chat(step.on, secret) == step.want }); took > time.Second {
			t.Errorf("%s after %v, want under a second", step.what, took)
		}
	}
}

// TestReplicasShareKeyLimits: a key's rpm holds for two replicas together
// (never more than the limit while Redis is up), its tokens on one count
// on the other within a second, and with Redis gone each replica holds the
// limit by itself (fail open, logged).
func TestReplicasShareKeyLimits(t *testing.T) {
	rd := testutil.StartRedis(t)
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}})
	b := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"qwen3-14b"}})
	gs := startReplicas(t, 2, replicaConfig(t, a, b, rd.Addr(), "", "", ""), postgresURL(t))
	A, B := gs[0], gs[1]
	chat := func(g *runningGateway, key string, tokens int) int {
		resp, _ := call(t, g.url+"/v1/chat/completions", key, chatBody("qwen3-14b", tokens))
		return resp.StatusCode
	}
	// A key made on A, once B knows it (reading its own info spends nothing).
	newKey := func(body string) string {
		secret := generateKey(t, A.url, body)
		within(t, "the key to reach B", 3*time.Second, func() bool {
			status, _ := callJSON(t, "GET", B.url+"/key/info", secret, "")
			return status == http.StatusOK
		})
		return secret
	}

	rpmKey := newKey(`{"rpm_limit":10}`)
	tpmKey := newKey(`{"tpm_limit":10}`)
	awayFromMinuteEnd(10 * time.Second)
	ok := 0
	for i := range 30 {
		switch status := chat(gs[i%2], rpmKey, 1); status {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("request %d: %d", i, status)
		}
	}
	if g := replicaThatLostRedis(gs); ok > 10 && g != nil {
		t.Logf("replica %s lost Redis during the burst (fail open): %d of 30 requests passed a key's rpm_limit of 10", g.url, ok)
	} else if ok != 10 {
		t.Errorf("%d of 30 requests alternating between two replicas passed a key's rpm_limit of 10", ok)
	}

	if status := chat(A, tpmKey, 12); status != http.StatusOK {
		t.Fatalf("first tpm request: %d", status)
	}
	if took := within(t, "B to refuse the tokens spent on A", 3*time.Second, func() bool { return chat(B, tpmKey, 1) == http.StatusTooManyRequests }); took > time.Second {
		t.Errorf("B refused the key after %v, want within a second", took)
	}

	// Redis gone: each replica holds a new key's rpm by itself.
	local := newKey(`{"rpm_limit":2}`)
	rd.Stop()
	for _, g := range gs {
		waitFor(t, g.stderr, `redis unreachable`)
	}
	awayFromMinuteEnd(10 * time.Second)
	ok = 0
	for i := range 8 {
		if chat(gs[i%2], local, 1) == http.StatusOK {
			ok++
		}
	}
	if ok != 4 {
		t.Errorf("with Redis down, %d of 8 requests passed a key's rpm_limit of 2 on two replicas, want 2 per replica", ok)
	}
}
