package admin

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/maasgate/maasgate/internal/deployment"
)

// TestAPIBaseCredentialsStayInside: a model added with credentials in its
// api_base routes with them, while neither /model/new's answer nor
// /model/info shows them, and the store gives them back whole.
func TestAPIBaseCredentialsStayInside(t *testing.T) {
	t.Parallel()
	srv, rt, st := newAPI(t)
	const apiBase = "http://user:s3cret@127.0.0.1:1/v1?token=t0k3n"
	status, body := post(t, srv.URL+"/model/new",
		`{"model_name":"g","litellm_params":{"model":"openai/m","api_base":"`+apiBase+`"},"model_info":{"id":"with-creds"}}`)
	if status != http.StatusOK {
		t.Fatalf("/model/new: %d %s", status, body)
	}

	resp, err := http.Get(srv.URL + "/model/info?litellm_model_id=with-creds")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	info, _ := io.ReadAll(resp.Body)
	for name, text := range map[string]string{"/model/new": body, "/model/info": string(info)} {
		if strings.Contains(text, "s3cret") || strings.Contains(text, "t0k3n") {
			t.Errorf("%s shows the api_base credentials: %s", name, text)
		}
		if !strings.Contains(text, "http://127.0.0.1:1/v1") {
			t.Errorf("%s does not show the api_base without its credentials: %s", name, text)
		}
	}

	d, ok := rt.Deployment("with-creds")
	if !ok {
		t.Fatal("the new model is not routed")
	}
	if got, want := d.URL(deployment.Chat), "http://user:s3cret@127.0.0.1:1/v1/chat/completions?token=t0k3n"; got != want {
		t.Errorf("routed to %q, want %q", got, want)
	}
	stored, err := st.Model(context.Background(), "with-creds")
	if err != nil || stored.Params["api_base"] != apiBase {
		t.Errorf("stored api_base %v (err %v), want %q back whole", stored.Params["api_base"], err, apiBase)
	}
}
