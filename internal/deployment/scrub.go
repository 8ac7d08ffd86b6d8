package deployment

import (
	"cmp"
	"iter"
	"net/url"
	"slices"
	"strings"
)

// Redacted is what Scrub puts in place of a credential.
const Redacted = "[redacted]"

// minScrubLen is the length, in bytes, of the shortest value Scrub
// replaces. Shorter values ("json", "true", "admin", a port, a year) would
// match ordinary words and numbers and mangle the message, and a
// credential that short can be guessed, so hiding it protects little.
const minScrubLen = 6

// publicQueryParams are api_base query parameters that are never
// credentials and that upstream errors often quote (Azure's "unsupported
// api-version 2024-02-01"): Scrub leaves their values alone.
var publicQueryParams = []string{"api-version"}

// Scrub returns msg with the deployment's own credentials replaced by
// Redacted, so an upstream error that quotes what it received ("upstream
// saw auth=Bearer sk-...") can be relayed to a client. It replaces:
//
//   - the api_key, wherever it appears (after "Bearer " too);
//   - the user info of api_base, whole, and its password (or, with no
//     password, the user name, which then is the token);
//   - the query of api_base, whole, and the value of each parameter
//     except the public api-version (a query of public parameters only
//     is left alone);
//
// each as written in api_base (percent-encoded) and decoded. Longer values
// are replaced first, so a value that contains another disappears whole.
// Values shorter than 6 bytes are left alone (see minScrubLen). msg is text
// as it will be shown, not JSON: a credential that the upstream escaped
// for JSON is found once the caller has decoded the message.
//
// When msg holds none of these values Scrub returns msg itself and
// allocates nothing, unless a value of api_base is percent-encoded and
// must be decoded on each call: it runs on every relayed error, so the
// common case costs a few substring searches.
func (d *Deployment) Scrub(msg string) string {
	var found []string
	for s := range d.credentials() {
		if len(s) >= minScrubLen && strings.Contains(msg, s) {
			found = append(found, s)
		}
	}
	if found == nil {
		return msg
	}
	slices.SortFunc(found, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
	})
	for _, s := range slices.Compact(found) {
		msg = strings.ReplaceAll(msg, s, Redacted)
	}
	return msg
}

// credentials yields the values Scrub hides, short ones and duplicates
// included. It reads api_base in place rather than through url.Parse, so
// that a call that finds nothing allocates nothing.
func (d *Deployment) credentials() iter.Seq[string] {
	return func(yield func(string) bool) {
		if !yield(d.Model.Params.APIKey) {
			return
		}
		userinfo, query := userinfoQuery(d.APIBase)
		if userinfo != "" {
			secret := userinfo
			if _, pass, ok := strings.Cut(userinfo, ":"); ok {
				secret = pass
			}
			if !yield(userinfo) || !yieldDecoded(yield, secret, url.PathUnescape) {
				return
			}
		}
		secretQuery := false
		for param := range strings.SplitSeq(query, "&") {
			name, value, _ := strings.Cut(param, "=")
			if param == "" || slices.Contains(publicQueryParams, name) {
				continue
			}
			secretQuery = true
			if !yieldDecoded(yield, value, url.QueryUnescape) {
				return
			}
		}
		if secretQuery {
			yield(query)
		}
	}
}

// yieldDecoded yields s as written and, when it differs, decoded.
func yieldDecoded(yield func(string) bool, s string, unescape func(string) (string, error)) bool {
	if !yield(s) {
		return false
	}
	if plain, err := unescape(s); err == nil && plain != s {
		return yield(plain)
	}
	return true
}

// userinfoQuery returns the user info and the query of an absolute URL as
// written. It cuts the URL in url.Parse's order (fragment, query, then the
// authority up to the first "/", whose user info ends at the last "@"), so
// the parts are those url.Parse finds.
func userinfoQuery(rawURL string) (userinfo, query string) {
	rest, _, _ := strings.Cut(rawURL, "#")
	rest, query, _ = strings.Cut(rest, "?")
	if _, after, ok := strings.Cut(rest, "://"); ok {
		authority, _, _ := strings.Cut(after, "/")
		if i := strings.LastIndexByte(authority, '@'); i >= 0 {
			userinfo = authority[:i]
		}
	}
	return userinfo, query
}
