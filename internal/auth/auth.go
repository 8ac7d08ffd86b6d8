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

	"github.com/maasgate/maasgate/internal/openai"
)

// Authenticator guards handlers with the master key. A zero master key
// disables authentication (the caller warns about it).
type Authenticator struct {
	masterKey [sha256.Size]byte
	enabled   bool
	// hosts are the Host names, besides loopback ones, that admin
	// requests may be addressed to without a master key; normalised by
	// hostName.
	hosts []string
}

// New returns an Authenticator for masterKey; "" disables auth.
// allowedHosts are the host names (or IP addresses) besides loopback that
// the admin API and UI answer on when there is no master key (see Admin);
// they are compared without case, port or trailing dot.
func New(masterKey string, allowedHosts ...string) *Authenticator {
	a := &Authenticator{enabled: masterKey != ""}
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
// "x-litellm-api-key" or "api-key" (the headers LiteLLM accepts), or "".
func Key(r *http.Request) string {
	if v := r.Header.Get("Authorization"); v != "" {
		return bearer(v)
	}
	if v := r.Header.Get("X-Litellm-Api-Key"); v != "" {
		return bearer(v)
	}
	return strings.TrimSpace(r.Header.Get("Api-Key"))
}

func bearer(v string) string {
	v = strings.TrimSpace(v)
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return v
}

// Check reports whether key is the master key.
func (a *Authenticator) Check(key string) bool {
	if !a.enabled {
		return true
	}
	sum := sha256.Sum256([]byte(key))
	return subtle.ConstantTimeCompare(sum[:], a.masterKey[:]) == 1
}

// Wrap returns h guarded by the master key: a request without a key, or with
// a wrong one, gets 401 in the OpenAI error envelope.
func (a *Authenticator) Wrap(h http.Handler) http.Handler {
	if !a.enabled {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := Key(r)
		if key == "" {
			openai.WriteError(w, openai.NewError(http.StatusUnauthorized, openai.TypeAuthentication,
				"Authentication Error, No api key passed in. Send it as 'Authorization: Bearer <key>'."))
			return
		}
		if !a.Check(key) {
			openai.WriteError(w, openai.NewError(http.StatusUnauthorized, openai.TypeAuthentication,
				"Authentication Error, Invalid proxy server token passed. Check the key and try again."))
			return
		}
		h.ServeHTTP(w, r)
	})
}

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
