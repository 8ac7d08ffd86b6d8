package bench

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/store"
)

// seedKeys stores n virtual keys in the gateway's database before it
// starts, as an operator's would be: each with an alias and the bench's
// two models, no limits. It returns the secret of the one the load is sent
// with, in the middle of them.
func seedKeys(ctx context.Context, o Options, dbPath string, n int) (string, error) {
	st, err := store.Open(ctx, dbPath, o.GatewayKey, slog.New(slog.DiscardHandler))
	if err != nil {
		return "", fmt.Errorf("open the gateway's database to add keys: %w", err)
	}
	defer st.Close()
	secret := func(i int) string { return fmt.Sprintf("sk-bench-key-%08d", i) }
	for i := range n {
		s := secret(i)
		k := keys.Key{Token: keys.Token(s), KeyName: keys.Name(s), Alias: fmt.Sprintf("bench-key-%d", i),
			Models: []string{o.ChatModel, o.EmbedModel}}
		if _, err := st.CreateKey(ctx, k); err != nil {
			return "", fmt.Errorf("add key %d of %d: %w", i+1, n, err)
		}
	}
	return secret(n / 2), nil
}
