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
