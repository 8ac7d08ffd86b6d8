package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/store/storetest"
	"github.com/maasgate/maasgate/internal/testutil"
)

// heartbeat runs s.Heartbeat until the test ends.
func heartbeat(t *testing.T, s *Store, interval time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Heartbeat(ctx, interval) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestReadyOnReadOnlyPostgres: a PostgreSQL database that turns read-only
// (default_transaction_read_only, as an operator sets during maintenance)
// still answers pings. Ready says writes fail, from the heartbeat and from
// an admin write alike, and is nil again once writes work.
func TestReadyOnReadOnlyPostgres(t *testing.T) {
	t.Parallel()
	url := storetest.PostgresURL(t)
	s := open(t, url, testSecret)
	heartbeat(t, s, 20*time.Millisecond)
	testutil.Eventually(t, "ready at start", func() bool { return s.Ready(t.Context()) == nil })

	// The operator's session, opened while writes are allowed.
	op, err := s.db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	var name string
	if err := op.QueryRowContext(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	readOnly := func(on string) {
		t.Helper()
		if _, err := op.ExecContext(t.Context(), "ALTER DATABASE "+name+" SET default_transaction_read_only = "+on); err != nil {
			t.Fatal(err)
		}
		// The store's sessions reconnect with the new default.
		if _, err := op.ExecContext(t.Context(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"); err != nil {
			t.Fatal(err)
		}
	}

	readOnly("on")
	var err2 error
	// (Right after the sessions were cut, a write or a ping may fail for
	// that first: "terminating connection due to administrator command".)
	testutil.Eventually(t, "unready, saying the database is read-only", func() bool {
		err2 = s.Ready(t.Context())
		return err2 != nil && strings.Contains(err2.Error(), "read-only")
	})
	if !strings.Contains(err2.Error(), "database writes fail") {
		t.Errorf("Ready = %v, want it to say database writes fail", err2)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping of a read-only database: %v (the point: a ping says nothing of writes)", err)
	}
	if err := s.SaveRouterSettings(t.Context(), map[string]any{"num_retries": 1}); err == nil {
		t.Error("an admin write to a read-only database succeeded")
	}

	readOnly("off")
	testutil.Eventually(t, "ready once writes work", func() bool { return s.Ready(t.Context()) == nil })
}

// TestReadyAfterTheFileIsDeleted: an admin write to a SQLite file deleted
// under the gateway "succeeds" into a file no one will open again; Ready
// says so at once, without waiting for the heartbeat.
func TestReadyAfterTheFileIsDeleted(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "maasgate.db")
	s := open(t, path, testSecret)
	if err := s.SaveRouterSettings(t.Context(), map[string]any{"num_retries": 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(t.Context()); err != nil {
		t.Fatalf("Ready after a write: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveRouterSettings(t.Context(), map[string]any{"num_retries": 2}); err != nil {
		t.Fatalf("the write itself fails: %v", err)
	}
	if err := s.Ready(t.Context()); err == nil || !strings.Contains(err.Error(), path+" was deleted or replaced") {
		t.Errorf("Ready = %v, want one saying the file is gone", err)
	}
}

// TestHeartbeatOff: a non-positive interval turns the heartbeat off, and
// Ready then follows the admin writes alone.
func TestHeartbeatOff(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "maasgate.db"), testSecret)
	if err := s.Heartbeat(t.Context(), 0); err != nil {
		t.Errorf("Heartbeat(0) = %v, want nil at once", err)
	}
	var n int
	if err := s.db.QueryRowContext(t.Context(), "SELECT count(*) FROM heartbeat").Scan(&n); err != nil || n != 0 {
		t.Errorf("heartbeat rows %d (%v), want none", n, err)
	}
}
