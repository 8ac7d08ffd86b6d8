package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/testutil"
)

// readiness returns GET /health/readiness's status and body.
func readiness(t *testing.T, g *runningGateway) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(g.url + "/health/readiness")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("readiness is not JSON: %v", err)
	}
	return resp.StatusCode, body
}

// TestDamagedSQLiteFileStopsStartUp: a database file damaged on disk, past
// its first page (here the page of the index that looks up models by id,
// which start-up does not read, so the damage would otherwise show as a 500
// on the first admin write), stops serve with a message that names the file
// and says what to do.
func TestDamagedSQLiteFileStopsStartUp(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"m"}})
	cfg := writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: %s/v1}
`, a.URL()))
	tests := []struct {
		name string
		page func(t *testing.T, db *sql.DB) int64 // the 1-based page to damage
	}{
		{"index page", func(t *testing.T, db *sql.DB) int64 {
			var page int64
			if err := db.QueryRow("SELECT rootpage FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'models' AND sql IS NULL").Scan(&page); err != nil {
				t.Fatal(err)
			}
			return page
		}},
		{"table page", func(t *testing.T, db *sql.DB) int64 {
			var page int64
			if err := db.QueryRow("SELECT rootpage FROM sqlite_schema WHERE name = 'models'").Scan(&page); err != nil {
				t.Fatal(err)
			}
			return page
		}},
		{"header", func(*testing.T, *sql.DB) int64 { return 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "maasgate.db")
			g := startGateway(t, nil, "serve", "--config", cfg, "--database-url", path)
			if resp, body := call(t, g.url+"/model/new", "", fmt.Sprintf(`{"model_name":"m","litellm_params":{"model":"openai/m","api_base":"%s/v1"},"model_info":{"id":"db-a"}}`, a.URL())); resp.StatusCode != 200 {
				t.Fatalf("add a model: %d %s", resp.StatusCode, body)
			}
			if code := g.stop(t); code != 0 {
				t.Fatalf("first run exited %d:\n%s", code, g.stderr)
			}

			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			var pageSize int64
			if err := db.QueryRow("PRAGMA page_size").Scan(&pageSize); err != nil {
				t.Fatal(err)
			}
			page := tt.page(t, db)
			db.Close()
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, int(pageSize)), (page-1)*pageSize); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}

			var out testutil.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			exit := make(chan int, 1)
			go func() {
				exit <- run(ctx, []string{"serve", "--config", cfg, "--database-url", path, "--host", "127.0.0.1", "--port", "0"}, &out, &out)
			}()
			var code int
			testutil.Eventually(t, "serve exits", func() bool {
				if strings.Contains(out.String(), "maasgate listening") {
					cancel() // it serves the damaged file: stop it, and fail below
				}
				select {
				case code = <-exit:
					return true
				default:
					return false
				}
			})
			if code != 1 {
				t.Fatalf("serve on a damaged file exited %d, want 1:\n%s", code, out.String())
			}
			for _, want := range []string{"sqlite database " + path + " is damaged", "restore the file from a backup", "move it aside", ".recover"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// TestReadinessFollowsWrites: GET /health/readiness is 503 while the
// database does not take writes, though it still answers reads and pings,
// and 200 again once it does. The conditions are real: another process
// holding SQLite's write lock (as an open sqlite3 shell in a transaction
// does), and the file deleted under the running gateway (writes then go to
// a file nobody will read).
func TestReadinessFollowsWrites(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"m"}})
	cfg := writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: %s/v1}
`, a.URL()))
	ready := func(t *testing.T, g *runningGateway) bool { status, _ := readiness(t, g); return status == 200 }

	t.Run("write lock held by another process", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "maasgate.db")
		g := startGateway(t, nil, "serve", "--config", cfg, "--database-url", path, "--db-check-interval", "50ms")
		testutil.Eventually(t, "ready at start", func() bool { return ready(t, g) })

		other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		conn, err := other.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		testutil.Eventually(t, "unready while the lock is held", func() bool {
			var status int
			status, body = readiness(t, g)
			return status == http.StatusServiceUnavailable
		})
		if db, _ := body["db"].(string); body["status"] != "unhealthy" || !strings.Contains(db, "database writes fail") || !strings.Contains(db, "write lock") {
			t.Errorf("readiness while writes fail: %v", body)
		}
		if resp, body := call(t, g.url+"/v1/chat/completions", "", chatBody("m", 1)); resp.StatusCode != 200 {
			t.Errorf("inference while the database is locked: %d %s", resp.StatusCode, body)
		}
		waitFor(t, g.stderr, `the database does not take writes`)

		if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "ready once the lock is released", func() bool { return ready(t, g) })
		waitFor(t, g.stderr, `the database takes writes again`)
	})

	t.Run("file deleted", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "maasgate.db")
		g := startGateway(t, nil, "serve", "--config", cfg, "--database-url", path, "--db-check-interval", "50ms")
		testutil.Eventually(t, "ready at start", func() bool { return ready(t, g) })
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		testutil.Eventually(t, "unready once the file is gone", func() bool {
			var status int
			status, body = readiness(t, g)
			return status == http.StatusServiceUnavailable
		})
		if db, _ := body["db"].(string); !strings.Contains(db, path+" was deleted or replaced") {
			t.Errorf("readiness without the file: %v", body)
		}
	})
}
