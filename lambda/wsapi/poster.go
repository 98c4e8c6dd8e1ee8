package wsapi

import (
	"context"
	"time"
)

// Poster sends one frame to one connection. Implementations return ErrGone
// (possibly wrapped) when the connection is closed.
type Poster interface {
	Post(ctx context.Context, connectionID string, data []byte) error
}

// DefaultPostTimeout bounds one post, the SDK's retries included. API
// Gateway answers a post in milliseconds; one still running after seconds
// is stuck (a half-open connection, an endpoint that stopped answering),
// and without a bound it would hold the reply until Lambda kills the
// function at its timeout, before the reply is stored.
const DefaultPostTimeout = 10 * time.Second

// WithPostTimeout returns a Poster that gives every Post of p at most d,
// whatever deadline the caller's context has (DefaultPostTimeout when d is
// not positive). A post that runs out of time fails with an error wrapping
// context.DeadlineExceeded, like any other failed post.
func WithPostTimeout(p Poster, d time.Duration) Poster {
	if d <= 0 {
		d = DefaultPostTimeout
	}
	return timedPoster{p: p, timeout: d}
}

type timedPoster struct {
	p       Poster
	timeout time.Duration
}

func (t timedPoster) Post(ctx context.Context, connectionID string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.p.Post(ctx, connectionID, data)
}
