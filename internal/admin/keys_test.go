package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/auth"
	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/control"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/store"
)

// unreadable is the real store whose reading back of every key fails once
// told to: a read that fails after a write committed.
type unreadable struct {
	*store.Store
	fail atomic.Bool
}

func (u *unreadable) Keys(ctx context.Context) ([]*keys.Key, error) {
	if u.fail.Load() {
		return nil, errors.New("read failed")
	}
	return u.Store.Keys(ctx)
}

// TestKeyWriteServedWithoutReadBack: a key deleted or blocked stops working
// at once, without the keys being read back (here reading them fails).
func TestKeyWriteServedWithoutReadBack(t *testing.T) {
	t.Parallel()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "k.db"), "secret", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ks := &unreadable{Store: st}
	c, err := control.New(context.Background(), control.Options{Store: ks, Base: config.DefaultRouterSettings()})
	if err != nil {
		t.Fatal(err)
	}
	authn := auth.New("sk-master-0000000000", c)
	a := New(Options{Control: c, Store: st, Identify: authn})
	mux := http.NewServeMux()
	a.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	secrets := make([]string, 2)
	for i := range secrets {
		code, body := post(t, srv.URL+"/key/generate", `{}`)
		var out map[string]any
		_ = json.Unmarshal([]byte(body), &out)
		secrets[i], _ = out["key"].(string)
		if code != 200 || secrets[i] == "" {
			t.Fatalf("/key/generate: %d %s", code, body)
		}
	}
	ks.fail.Store(true)
	if code, body := post(t, srv.URL+"/key/block", fmt.Sprintf(`{"key":%q}`, secrets[0])); code != 200 {
		t.Fatalf("/key/block: %d %s", code, body)
	}
	if code, body := post(t, srv.URL+"/key/delete", fmt.Sprintf(`{"keys":[%q]}`, secrets[1])); code != 200 {
		t.Fatalf("/key/delete: %d %s", code, body)
	}
	now := time.Now()
	if _, _, err := c.Keys().Check(secrets[0], now); !errors.Is(err, keys.ErrBlocked) {
		t.Errorf("the blocked key checks as %v", err)
	}
	if _, _, err := c.Keys().Check(secrets[1], now); !errors.Is(err, keys.ErrUnknown) {
		t.Errorf("the deleted key checks as %v", err)
	}
}
