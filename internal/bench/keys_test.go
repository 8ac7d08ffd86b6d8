package bench

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/store"
)

// TestSeedKeys: the keys the bench adds are in the gateway's database, and
// the secret it sends is one of them, allowed the bench's models.
func TestSeedKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := Defaults()
	db := filepath.Join(t.TempDir(), "gateway.db")
	secret, err := seedKeys(ctx, o, db, 5)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, db, o.GatewayKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ks, err := st.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k, _, err := keys.NewSet(ks).Check(secret, ks[0].CreatedAt.Time())
	if len(ks) != 5 || err != nil || !k.Allows(o.ChatModel) || !k.Allows(o.EmbedModel) || !slices.Contains(k.Models, o.ChatModel) {
		t.Errorf("%d keys stored; the bench's key: %+v, %v", len(ks), k, err)
	}
}
