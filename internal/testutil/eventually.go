package testutil

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds, failing the test after a generous
// bound (30 s): it waits for background work or a server noticing
// something, it does not assert how fast that happens.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
