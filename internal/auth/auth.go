// Package auth checks the API key of every request that is not public. Keys
// are compared as SHA-256 digests in constant time, so neither timing nor
// length reveals how much of a guess was right.
//
// Without a master key, Admin keeps web pages from reaching the admin API
// and UI through DNS rebinding: see Admin.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/maasgate/maasgate/internal/anthropic"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/openai"
)

// Authenticator guards handlers with the master key and the virtual keys.
// A zero master key disables authentication (the caller warns about it),
// virtual keys included, as in LiteLLM.
type Authenticator struct {
	masterKey [sha256.Size]byte
	enabled   bool
	keys      KeySource
	// Now is the clock keys' expiry is checked against; tests replace it.
	Now func() time.Time
	// hosts are the Host names, besides loopback ones, that admin
	// requests may be addressed to without a master key; normalised by
	// hostName.
	hosts []string
}

// KeySource holds the virtual keys in force (the control plane): an
// immutable snapshot, read once per request.
type KeySource interface {
	Keys() *keys.Set
}

// noKeys is the KeySource of a gateway without virtual keys.
type noKeys struct{}

func (noKeys) Keys() *keys.Set { return empty }

var empty = keys.NewSet(nil)

// New returns an Authenticator for masterKey; "" disables auth. ks are
// the virtual keys; nil means none. allowedHosts are the host names (or IP addresses) besides loopback that
// the admin API and UI answer on when there is no master key (see Admin);
// they are compared without case, port or trailing dot.
func New(masterKey string, ks KeySource, allowedHosts ...string) *Authenticator {
	if ks == nil {
		ks = noKeys{}
	}
	a := &Authenticator{enabled: masterKey != "", keys: ks, Now: time.Now}
	if a.enabled {
		a.masterKey = sha256.Sum256([]byte(masterKey))
	}
	for _, h := range allowedHosts {
		a.hosts = append(a.hosts, hostName(h))
	}
	return a
}

// Enabled reports whether requests need a key.
func (a *Authenticator) Enabled() bool { return a.enabled }

// Key returns the API key a request carries, from "Authorization: Bearer",
// "x-litellm-api-key", "api-key" or "x-api-key" (the headers LiteLLM
// accepts), or "".
func Key(r *http.Request) string {
	// LiteLLM's order: x-litellm-api-key first, so a client can send its
	// gateway key there and another credential in Authorization.
	if v := r.Header.Get("X-Litellm-Api-Key"); v != "" {
		return bearer(v)
	}
	if v := r.Header.Get("Authorization"); v != "" {
		return bearer(v)
	}
	if v := r.Header.Get("Api-Key"); v != "" {
		return strings.TrimSpace(v)
	}
	return strings.TrimSpace(r.Header.Get("X-Api-Key"))
}

// bearer returns the credential of an Authorization value, without its
// "Bearer " or "Basic " scheme.
func bearer(v string) string {
	v = strings.TrimSpace(v)
	for _, scheme := range []string{"bearer ", "basic "} {
		if len(v) > len(scheme) && strings.EqualFold(v[:len(scheme)], scheme) {
			return strings.TrimSpace(v[len(scheme):])
		}
	}
	return v
}

// Check reports whether key is the master key.
func (a *Authenticator) Check(key string) bool {
	return a.isMaster(sha256.Sum256([]byte(key)))
}

// isMaster reports whether a secret's SHA-256 is the master key's.
func (a *Authenticator) isMaster(sum [sha256.Size]byte) bool {
	return !a.enabled || subtle.ConstantTimeCompare(sum[:], a.masterKey[:]) == 1
}

// identify tells who a secret is: the admin (the master key), or a virtual
// key and its team, or the error LiteLLM answers. One SHA-256 serves both
// questions: it is the master key's digest and the key's token.
func (a *Authenticator) identify(secret string) (admin bool, k *keys.Key, t *keys.Team, e *openai.Error) {
	sum := sha256.Sum256([]byte(secret))
	if a.isMaster(sum) {
		return true, nil, nil, nil
	}
	k, t, e = a.virtualKey(secret, sum)
	return false, k, t, e
}

// Wrap returns h guarded by the keys: the master key may call everything;
// a virtual key only the routes keyRoute allows (inference, the model list
// and its own /key/info: what it may do within them is their handlers' to
// check, with KeyOf), the admin API being refused as LiteLLM refuses it. A
// request without a key, or with a wrong, blocked or expired one, gets
// LiteLLM's 401.
func (a *Authenticator) Wrap(h http.Handler) http.Handler {
	if !a.enabled {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret := Key(r)
		if secret == "" {
			writeError(w, r, openai.NewError(http.StatusUnauthorized, openai.TypeAuthentication,
				"Authentication Error, No api key passed in. Send it as 'Authorization: Bearer <key>'."))
			return
		}
		admin, _, _, e := a.identify(secret)
		if admin {
			h.ServeHTTP(w, r)
			return
		}
		if e != nil {
			writeError(w, r, e)
			return
		}
		if !keyRoute(r) {
			writeError(w, r, openai.NewError(http.StatusUnauthorized, openai.TypeAuthentication, fmt.Sprintf(
				"Authentication Error, Only proxy admin can be used to generate, delete, update info for new keys/users/teams. Route=%s. Your role=internal_user.",
				openai.Clip(r.URL.Path))))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// writeError answers e in the envelope of the API r calls: Anthropic's
// for the Messages API (Claude Code and the Anthropic SDKs read it), else
// OpenAI's.
func writeError(w http.ResponseWriter, r *http.Request, e *openai.Error) {
	if strings.HasPrefix(r.URL.Path, "/v1/messages") {
		anthropic.WriteError(w, anthropic.FromOpenAI(e), "")
		return
	}
	openai.WriteError(w, e)
}

// VirtualKey returns the virtual key whose secret this is, and its team
// (nil for none), or the error LiteLLM answers for it: a secret that does
// not look like a key, an unknown key, a blocked or an expired one, a key
// of a blocked team. The secret itself never appears in the error, only
// its last four characters and its hash.
func (a *Authenticator) VirtualKey(secret string) (*keys.Key, *keys.Team, *openai.Error) {
	return a.virtualKey(secret, keys.Token(secret))
}

// virtualKey is VirtualKey for a secret whose token is known.
func (a *Authenticator) virtualKey(secret string, token [32]byte) (*keys.Key, *keys.Team, *openai.Error) {
	if !strings.HasPrefix(secret, keys.Prefix) {
		return nil, nil, openai.NewError(http.StatusUnauthorized, openai.TypeAuthentication,
			fmt.Sprintf("LiteLLM Virtual Key expected. Received=%s, expected to start with '%s'.", masked(secret), keys.Prefix))
	}
	k, t, err := a.keys.Keys().CheckToken(token, a.Now())
	switch err {
	case nil:
		return k, t, nil
	case keys.ErrBlocked:
		return nil, nil, openai.NewError(http.StatusUnauthorized, openai.TypeAuthentication,
			"Authentication Error, Key is blocked. Update via `/key/unblock` if you're an admin.")
	case keys.ErrTeamMissing:
		return nil, nil, openai.NewError(http.StatusUnauthorized, openai.TypeAuthentication, fmt.Sprintf(
			"Authentication Error, Team=%s of this key does not exist. An admin can create it (POST /team/new) or move the key (POST /key/update).", k.TeamID))
	case keys.ErrTeamBlocked:
		return nil, nil, openai.NewError(http.StatusUnauthorized, openai.TypeAuthentication, fmt.Sprintf(
			"Authentication Error, Team=%s is blocked. Update via `/team/unblock` if you're an admin.", t.ID))
	case keys.ErrExpired:
		e := openai.NewError(http.StatusUnauthorized, "expired_key", fmt.Sprintf(
			"Authentication Error - Expired Key. Key Expiry time %s and current time %s",
			k.Expires.Time().Format(pythonTime), a.Now().UTC().Format(pythonTime)))
		e.Param = keys.Name(secret)
		return nil, nil, e
	}
	e := openai.NewError(http.StatusUnauthorized, "token_not_found_in_db", fmt.Sprintf(
		"Authentication Error, Invalid proxy server token passed. Received API Key = %s, Key Hash (Token) =%s. Unable to find token in cache or `LiteLLM_VerificationTokenTable`",
		keys.Name(secret), keys.TokenHex(token)))
	e.Param = "key"
	return nil, nil, e
}

// KeyOf returns the virtual key r authenticates with and its team, for the routes Wrap
// lets virtual keys call: nil for the master key, or when the gateway has
// none (every request is then the admin's). A key that stopped being
// usable since Wrap let r through (blocked, expired, deleted) gets its
// error, never the master key's rights.
func (a *Authenticator) KeyOf(r *http.Request) (*keys.Key, *keys.Team, *openai.Error) {
	if !a.enabled {
		return nil, nil, nil
	}
	_, k, t, e := a.identify(Key(r))
	return k, t, e
}

// pythonTime is how LiteLLM's messages print a UTC time (Python's str of
// an aware datetime).
const pythonTime = "2006-01-02 15:04:05.999999-07:00"

// masked shows a secret that is not a key as LiteLLM does: its first and
// last four characters.
func masked(s string) string {
	if len(s) <= 8 {
		return "****"
	}
	return s[:4] + "****" + s[len(s)-4:]
}

// keyRoute reports whether a virtual key may call r's route: the inference
// endpoints, stored responses, the model list and model metadata, and its
// own info and its team's.
func keyRoute(r *http.Request) bool {
	path := r.URL.Path
	if keyPostRoutes[path] {
		return r.Method == http.MethodPost
	}
	if keyGetRoutes[path] {
		return r.Method == http.MethodGet
	}
	for _, prefix := range []string{"/v1/responses/", "/responses/"} {
		if id, ok := strings.CutPrefix(path, prefix); ok && id != "" && !strings.Contains(id, "/") {
			return r.Method == http.MethodGet || r.Method == http.MethodDelete
		}
	}
	return false
}

// keyPostRoutes are the paths of the inference endpoints, as the proxy
// serves them; keyGetRoutes what a key may read.
var (
	keyPostRoutes = func() map[string]bool {
		m := map[string]bool{anthropic.CountTokensPath: true}
		for _, e := range deployment.Endpoints() {
			for _, path := range e.ServedPaths() {
				m[path] = true
			}
		}
		return m
	}()
	keyGetRoutes = map[string]bool{"/v1/models": true, "/models": true, "/key/info": true, "/team/info": true,
		"/model/info": true, "/v1/model/info": true, "/v2/model/info": true, "/model_group/info": true}
)

// KeyRoutes returns the paths a virtual key may POST to, for a test that
// every inference endpoint is among them.
func KeyRoutes() map[string]bool { return keyPostRoutes }

// Admin returns h guarded against DNS rebinding, for the admin API and UI.
//
// With a master key it returns h unchanged: the key travels in a header
// that no web page can make a browser add to a request to another site, so
// a page gains nothing by reaching the gateway. Without one, the admin
// endpoints answer anyone who reaches the port, and a web page can reach
// it: the attacker's DNS name first resolves to the attacker's server,
// then to the gateway's address, and the browser, seeing one origin, lets
// the page send the gateway requests and read the answers. Origin and Host
// then both carry the attacker's name, so comparing them (as a
// cross-origin check does) proves nothing. What such a request cannot do
// is name the gateway the way its operator does: Admin answers only
// requests whose Host is loopback (localhost, 127.0.0.0/8 or ::1, any
// port) or one of the allowed hosts, and refuses the others with 403
// saying how to allow them.
func (a *Authenticator) Admin(h http.Handler) http.Handler {
	if a.enabled {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.trustedHost(r.Host) {
			openai.WriteError(w, openai.NewError(http.StatusForbidden, openai.TypePermission, fmt.Sprintf(
				"Admin request refused: this gateway has no master key, so its admin API and UI answer only requests "+
					"addressed to localhost, 127.0.0.1 or [::1], or to a name listed in --allowed-hosts (MAASGATE_ALLOWED_HOSTS); "+
					"this one was addressed to Host %q. This keeps web pages from reaching the admin API through DNS rebinding. "+
					"If that is a name the gateway is reached by, add it to --allowed-hosts; better, set general_settings.master_key.",
				openai.Clip(r.Host))))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// trustedHost reports whether a request's Host (with or without a port)
// is loopback or allowed.
func (a *Authenticator) trustedHost(host string) bool {
	name := hostName(host)
	if name == "localhost" {
		return true
	}
	if ip, err := netip.ParseAddr(name); err == nil && ip.IsLoopback() {
		return true
	}
	return name != "" && slices.Contains(a.hosts, name)
}

// hostName is the host of a Host header value, without its port, brackets
// or trailing dot, in lower case; an IP address in its canonical form (an
// IPv4-mapped IPv6 address as IPv4).
func hostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().String()
	}
	return host
}

// CheckAllowedHost says why name cannot be an allowed host for Admin: it
// must be a bare host name or IP address, without scheme, port, path or
// wildcard (every port of an allowed name is accepted).
func CheckAllowedHost(name string) error {
	if _, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")); err == nil {
		return nil
	}
	switch {
	case name == "":
		return fmt.Errorf("empty host name")
	case strings.Contains(name, "://") || strings.ContainsAny(name, "/?#@"):
		return fmt.Errorf("%q: give a host name, not a URL", name)
	case strings.Contains(name, ":"):
		return fmt.Errorf("%q: give the host name without a port (every port is accepted)", name)
	case strings.ContainsAny(name, "* \t"):
		return fmt.Errorf("%q: give exact host names (no wildcards or spaces)", name)
	}
	return nil
}
