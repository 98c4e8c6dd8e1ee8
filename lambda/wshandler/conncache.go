package wshandler

import (
	"sync"
	"time"

	"github.com/p2/buddy/lambda/store"
)

// connCache remembers, per execution environment, the connections it has
// resolved, so the frames after the first on a socket skip a store read on
// the path to the first token. This is safe because API Gateway never
// reuses a connection id and delivers no frame after $disconnect; entries
// still lapse at the connection's own expiry, exactly as the store's
// record would.
type connCache struct {
	mu    sync.Mutex
	conns map[string]store.Connection
}

// connCacheMax bounds the memory of a long-lived environment: at the
// bound the cache starts over (a lookup costs one store read, no more).
const connCacheMax = 10_000

func (c *connCache) get(id string, now time.Time) (store.Connection, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	conn, ok := c.conns[id]
	if ok && !now.Before(conn.ExpiresAt) {
		delete(c.conns, id)
		return store.Connection{}, false
	}
	return conn, ok
}

func (c *connCache) put(conn store.Connection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns == nil || len(c.conns) >= connCacheMax {
		c.conns = map[string]store.Connection{}
	}
	c.conns[conn.ConnectionID] = conn
}

func (c *connCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.conns, id)
}
