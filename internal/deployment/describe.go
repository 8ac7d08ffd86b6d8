package deployment

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Redact removes the deployment's secrets from msg: its api_key, and the
// query and user info of its api_base, whole and value by value, in case a
// server or a parse error echoed them. Values too short to be a secret
// (under 4 bytes) are left alone, since replacing them would mangle the
// message.
func (d *Deployment) Redact(msg string) string {
	secrets := []string{d.Model.Params.APIKey}
	if u, err := url.Parse(d.APIBase); err == nil {
		secrets = append(secrets, u.RawQuery, u.Query().Encode())
		for _, vs := range u.Query() {
			secrets = append(secrets, vs...)
		}
		if u.User != nil {
			secrets = append(secrets, u.User.String())
			if pw, ok := u.User.Password(); ok {
				secrets = append(secrets, pw)
			}
		}
	}
	for _, s := range secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return msg
}

// ShownPath returns the path of u for an error message: never the host,
// user info or query, which may hold a secret.
func ShownPath(u *url.URL) string {
	p := u.EscapedPath()
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

// DescribeTransportError describes an error of a request to a deployment
// that got no HTTP status: the cause without the URL (a *url.Error names
// it, query included), and the request's own deadline (timeout, under ctx)
// as a timeout.
func DescribeTransportError(ctx context.Context, err error, timeout time.Duration) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("timed out after %v", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return "timed out: " + ue.Err.Error()
		}
		return ue.Err.Error()
	}
	return err.Error()
}
