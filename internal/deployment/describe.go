package deployment

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

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
