package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/control"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/health"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/metrics"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/router"
	"github.com/maasgate/maasgate/internal/store"
)

// Store is what the admin API reads from the store directly: the pages of
// keys and teams it lists, and whether the database answers. Every write
// goes through the control plane.
type Store interface {
	Ping(ctx context.Context) error
	Key(ctx context.Context, token [32]byte) (*keys.Key, error)
	KeysPage(ctx context.Context, offset, limit int) ([]*keys.Key, int, error)
	Team(ctx context.Context, id string) (*keys.Team, error)
	TeamsPage(ctx context.Context, offset, limit int) ([]*keys.Team, int, error)
}

// Prober runs health probes.
type Prober interface {
	Check(ctx context.Context, ds []*deployment.Deployment) []health.Result
	Latest() map[string]health.Result
}

// Identifier tells which virtual key a request authenticates with (the
// authenticator).
type Identifier interface {
	// KeyOf returns the virtual key a request authenticates with, and its
	// team; nil for the master key.
	KeyOf(r *http.Request) (*keys.Key, *keys.Team, *openai.Error)
}

// Options configures the admin API.
type Options struct {
	// Control changes what the gateway serves; its router is what the
	// read endpoints show.
	Control *control.Plane
	Store   Store
	Prober  Prober
	// Background says whether background health checks run; /health then
	// answers from their latest results instead of probing.
	Background bool
	Logger     *slog.Logger
	Now        func() time.Time
	// Traffic reports the gateway's own request counts of the last
	// window, for GET /traffic; nil answers 404.
	Traffic func(window time.Duration) metrics.TrafficReport
	// Guard wraps every admin route (the gateway passes auth's guard
	// against DNS rebinding); nil leaves them unwrapped.
	Guard func(http.Handler) http.Handler
	// Identify tells the virtual key of a request; without it the /key/*
	// and /team/* endpoints are not served.
	Identify Identifier
	// Usage serves the daily activity endpoints (nil: not served); Spend
	// the live spend /key/* and /team/* show (nil: the stored spend).
	Usage UsageStore
	Spend Spend
	// BodyReadTimeout is the server's bound on reading a request body,
	// named in the 408 a client too slow to send one gets.
	BodyReadTimeout time.Duration
}

// API serves the admin endpoints. It is HTTP only: it decodes and
// validates requests and renders answers; the control plane makes the
// changes (store first, then what is served), serialised.
type API struct {
	o Options
	// router is the control plane's: what the read endpoints show.
	router *router.Router
}

// New returns the admin API.
func New(o Options) *API {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &API{o: o, router: o.Control.Router()}
}

// Register adds the admin endpoints to mux, each wrapped by Options.Guard.
// The caller guards mux with the master key.
//
// The writes also refuse requests a browser marks as cross-site
// (Sec-Fetch-Site, or an Origin other than the Host): with a master key
// they could not authenticate anyway (the key travels in a header, not a
// cookie), but a gateway run without one must not let any web page its
// operator visits change it. That check compares Origin with Host, both of
// which a page reaching the gateway through DNS rebinding chooses, so
// without a master key the Guard must first refuse Hosts the operator does
// not use. Clients that are not browsers send neither header and pass.
func (a *API) Register(mux *http.ServeMux) {
	guard := a.o.Guard
	if guard == nil {
		guard = func(h http.Handler) http.Handler { return h }
	}
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		openai.WriteError(w, openai.NewError(http.StatusForbidden, openai.TypePermission,
			"Cross-origin request refused: admin changes are accepted only from the gateway's own pages or from clients that are not browsers."))
	}))
	read := func(h http.HandlerFunc) http.Handler { return guard(h) }
	write := func(h http.HandlerFunc) http.Handler { return guard(csrf.Handler(h)) }
	a.registerKeys(mux, read, write)
	a.registerTeams(mux, read, write)
	a.registerActivity(mux, read)
	mux.Handle("POST /model/new", write(a.newModel))
	mux.Handle("POST /model/update", write(a.updateModel))
	mux.Handle("PATCH /model/{id}/update", write(a.patchModel))
	mux.Handle("POST /model/delete", write(a.deleteModel))
	mux.Handle("GET /model/info", read(a.modelInfo))
	mux.Handle("GET /v1/model/info", read(a.modelInfo))
	mux.Handle("GET /v2/model/info", read(a.modelInfo))
	mux.Handle("GET /model_group/info", read(a.modelGroupInfo))
	mux.Handle("GET /health", read(a.health))
	mux.Handle("GET /router/settings", read(a.routerSettings))
	mux.Handle("GET /router/fields", read(a.routerFields))
	mux.Handle("GET /config/effective", read(a.effectiveConfig))
	mux.Handle("POST /config/update", write(a.configUpdate))
	mux.Handle("GET /traffic", read(a.traffic))
}

// traffic serves GET /traffic?window=<seconds> (default 300, at most the
// window kept): requests, errors and latency per step, and each
// deployment's share, from the gateway's own counters.
func (a *API) traffic(w http.ResponseWriter, r *http.Request) {
	if a.o.Traffic == nil {
		openai.WriteError(w, openai.NewError(http.StatusNotFound, openai.TypeNotFound, "The traffic view is not enabled."))
		return
	}
	window := 5 * time.Minute
	if v := r.URL.Query().Get("window"); v != "" {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || !(secs > 0) || math.IsInf(secs, 0) { // !(> 0) is also true for NaN
			openai.WriteError(w, badRequest("window", "window must be a positive number of seconds, got %q.", openai.Clip(v)))
			return
		}
		window = time.Duration(min(secs, metrics.TrafficWindow.Seconds()) * float64(time.Second))
	}
	writeJSON(w, http.StatusOK, a.o.Traffic(window))
}

// maxAdminBody bounds admin request bodies.
const maxAdminBody = 1 << 20

// decode reads a JSON object body into v, numbers kept as json.Number. A
// body that stalls past the body read timeout is 408; one cut off by a
// failing connection is 400 without the connection's details (socket
// addresses say nothing useful to the client).
func (a *API) decode(w http.ResponseWriter, r *http.Request, v any) *openai.Error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.UseNumber()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var tooBig *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &tooBig):
		return openai.NewError(http.StatusRequestEntityTooLarge, openai.TypeInvalidRequest, "Request body is larger than 1 MiB.")
	case errors.As(err, &netErr) && netErr.Timeout():
		within := ""
		if a.o.BodyReadTimeout > 0 {
			within = " within " + a.o.BodyReadTimeout.String()
		}
		return openai.NewError(http.StatusRequestTimeout, openai.TypeTimeout, fmt.Sprintf(
			"The request body did not arrive%s (--body-read-timeout); send the whole body at once.", within))
	case errors.As(err, &netErr):
		return badRequest("", "The request body could not be read: the connection failed while it was being sent.")
	}
	return badRequest("", "Request body is not a valid JSON object: %v", err)
}

func badRequest(param, format string, args ...any) *openai.Error {
	e := openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, fmt.Sprintf(format, args...))
	e.Param = param
	return e
}

func notFound(id string) *openai.Error {
	return openai.NewError(http.StatusNotFound, openai.TypeNotFound, fmt.Sprintf("Model with id=%s not found. See GET /model/info for the deployments.", openai.Clip(id)))
}

// storeError answers a failed database read or write: 503 when the
// database cannot be reached (nothing was changed; the gateway goes on
// serving from what it has), else 500.
func (a *API) storeError(ctx context.Context, what string, err error) *openai.Error {
	a.o.Logger.Error(what, "error", err)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if perr := a.o.Store.Ping(pctx); perr != nil {
		outcome := "nothing was changed"
		if errors.Is(err, store.ErrCommitUnknown) {
			outcome = "the connection broke while committing, so the change may or may not be stored: check once the database is back"
		}
		e := openai.NewError(http.StatusServiceUnavailable, openai.TypeServerError,
			fmt.Sprintf("%s: the database is unreachable (%v); %s. The gateway goes on serving the models it has; try again when the database is back.", what, perr, outcome))
		e.Header = http.Header{"Retry-After": []string{"5"}}
		return e
	}
	return openai.NewError(http.StatusInternalServerError, openai.TypeServerError, fmt.Sprintf("%s: %v", what, err))
}

// controlError answers a write the control plane refused or failed: the
// *openai.Error a check of the caller's returned, or a failed store read
// or write (storeError).
func (a *API) controlError(ctx context.Context, err error) *openai.Error {
	var e *openai.Error
	if errors.As(err, &e) {
		return e
	}
	var se *control.StoreError
	if errors.As(err, &se) {
		return a.storeError(ctx, se.What, se.Err)
	}
	return a.storeError(ctx, "change the gateway", err)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// maxProblems is how many validation problems one error message lists: a
// 1 MiB body can hold tens of thousands of bad keys, and the answer must
// stay small.
const maxProblems = 10

// problemsError renders validation problems as one 400 naming every field
// (up to maxProblems; the rest are counted). Keys may hold a client's map
// keys and are clipped; messages clip the values they quote.
func problemsError(what string, problems []config.Problem) *openai.Error {
	msgs := make([]string, 0, min(len(problems), maxProblems)+1)
	for _, p := range problems[:min(len(problems), maxProblems)] {
		msgs = append(msgs, openai.Clip(p.Key)+": "+p.Message)
	}
	if n := len(problems) - maxProblems; n > 0 {
		msgs = append(msgs, fmt.Sprintf("and %d more", n))
	}
	return badRequest(openai.Clip(problems[0].Key), "Invalid %s: %s", what, strings.Join(msgs, "; "))
}
