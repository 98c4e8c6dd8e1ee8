package devserver

import (
	"context"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/p2/buddy/lambda/dev/fakeconnections"
)

// The gateway is where fakeconnections delivers the handlers' @connections
// calls: a post is written to the live socket, in the order posts are
// accepted, split into frames of at most 32 KB as API Gateway splits them.
var _ fakeconnections.Connections = (*wsGateway)(nil)

// Post delivers data to an open connection; a connection still in its
// $connect answers gone, as in AWS.
func (g *wsGateway) Post(ctx context.Context, id string, data []byte) error {
	c := g.openConn(ctx, id)
	if c == nil {
		return fakeconnections.ErrGone
	}
	if int64(len(data)) > g.limits.maxFrame {
		g.stats.fragment.Add(1)
	}
	if err := c.send(ctx, data, g.limits.maxFrame); err != nil {
		// The socket died under the write: to the poster it is gone.
		return fmt.Errorf("%w: %v", fakeconnections.ErrGone, err)
	}
	c.touch()
	return nil
}

// Get describes an open connection.
func (g *wsGateway) Get(ctx context.Context, id string) (fakeconnections.Info, error) {
	c := g.openConn(ctx, id)
	if c == nil {
		return fakeconnections.Info{}, fakeconnections.ErrGone
	}
	return fakeconnections.Info{
		ConnectedAt:  c.connectedAt,
		LastActiveAt: time.Unix(0, c.lastActive.Load()),
		SourceIP:     c.sourceIP,
		UserAgent:    c.userAgent,
	}, nil
}

// Delete closes an open connection with 1000; its $disconnect follows.
func (g *wsGateway) Delete(ctx context.Context, id string) error {
	c := g.openConn(ctx, id)
	if c == nil {
		return fakeconnections.ErrGone
	}
	go c.closeWith(websocket.StatusNormalClosure, "")
	return nil
}

// openConn returns the connection if it is open. One whose upgrade is
// being written is waited for: a client may post the moment it sees the
// 101, before Accept has returned here.
func (g *wsGateway) openConn(ctx context.Context, id string) *wsConn {
	g.mu.Lock()
	c := g.conns[id]
	st := stateClosed
	if c != nil {
		st = c.state
	}
	g.mu.Unlock()
	switch st {
	case stateOpen:
		return c
	case stateUpgrading:
		select {
		case <-c.ready:
		case <-ctx.Done():
			return nil
		}
		if g.state(c) == stateOpen {
			return c
		}
	}
	return nil
}
