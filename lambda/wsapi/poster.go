package wsapi

import "context"

// Poster sends one frame to one connection. Implementations return ErrGone
// (possibly wrapped) when the connection is closed.
type Poster interface {
	Post(ctx context.Context, connectionID string, data []byte) error
}
