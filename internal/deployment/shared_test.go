package deployment

import (
	"testing"
	"time"
)

// TestQuota: a replica sends only what the cluster granted it for the
// minute; the next minute's grant waits in its own slot; a spent minute is
// not asked again.
func TestQuota(t *testing.T) {
	d := &Deployment{RPM: 10}
	wanted := 0
	q := &Quota{Want: func() { wanted++ }}
	minute := int64(time.Minute)
	now := 1000*minute + 5*int64(time.Second)
	q.Grant(now, 2)
	d.SetQuota(q)
	for i, want := range []bool{true, true, false} {
		if got := d.underRPM(now) && d.CountRequest(now); got != want {
			t.Fatalf("request %d: admitted %v, want %v", i+1, got, want)
		}
	}
	if wanted == 0 {
		t.Error("a grant running low did not ask for more")
	}
	if !q.Dry(now) || d.Available(now, 0) {
		t.Error("an empty grant is not dry, or the deployment is still available")
	}
	// The next minute's first batch, fetched early, is not this minute's.
	next := 1001 * minute
	q.Grant(next, 3)
	if q.Remaining(now) != 0 || q.Remaining(next) != 3 {
		t.Errorf("remaining now %d, next minute %d; want 0 and 3", q.Remaining(now), q.Remaining(next))
	}
	// A spent minute: no more asking until the next one.
	q.Spent(now)
	wanted = 0
	d.underRPM(now)
	if q.Dry(now) || wanted != 0 {
		t.Errorf("a spent minute is still dry (%v) or asked for more (%d)", q.Dry(now), wanted)
	}
	if !d.Available(next, 0) {
		t.Error("the next minute's grant does not admit")
	}
	// Without a quota the rpm is this replica's own count.
	d.SetQuota(nil)
	if !d.Available(now, 0) {
		t.Error("the local count (2 of 10) refuses")
	}
}

// TestInherit: an edited deployment keeps the minute's usage and, with the
// same rpm, the cluster's grant.
func TestInherit(t *testing.T) {
	now := 1000 * int64(time.Minute)
	old := &Deployment{RPM: 5, TPM: 100}
	q := &Quota{}
	q.Grant(now, 1)
	old.SetQuota(q)
	old.CountRequest(now)
	old.AddTokens(now, 40)
	edited := &Deployment{RPM: 5, TPM: 100}
	edited.Inherit(old)
	if r, tok := edited.MinuteUsage(now); r != 1 || tok != 40 || edited.Quota() != q {
		t.Errorf("inherited %d requests, %d tokens, quota %v", r, tok, edited.Quota() == q)
	}
	changed := &Deployment{RPM: 50}
	changed.Inherit(old)
	if changed.Quota() != nil {
		t.Error("a new rpm kept the old grant")
	}
}
