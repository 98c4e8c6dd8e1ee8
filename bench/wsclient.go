package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// wsClient is one chat client on the WebSocket API: it sends sendMessage
// frames and files every server frame under its reply by requestId, timing
// it the moment it is read.
type wsClient struct {
	conn *websocket.Conn

	mu        sync.Mutex
	replies   map[string]*Reply
	unmatched int // frames for no known request (e.g. an error without requestId)
	readErr   error
	closed    chan struct{}
}

// dialClient connects to wsURL with token in the query string, as a browser
// does (DESIGN §4).
func dialClient(ctx context.Context, wsURL, token string) (*wsClient, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	q.Set("token", token)
	u.RawQuery = q.Encode()
	conn, _, err := websocket.Dial(ctx, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", wsURL, err)
	}
	// API Gateway messages are at most 128 KB; anything bigger is a bug
	// the read error will show.
	conn.SetReadLimit(128 << 10)
	c := &wsClient{conn: conn, replies: map[string]*Reply{}, closed: make(chan struct{})}
	go c.read()
	return c, nil
}

func (c *wsClient) read() {
	defer close(c.closed)
	// Ends when the connection closes: Close or the server going away.
	for {
		_, b, err := c.conn.Read(context.Background())
		at := time.Now()
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		r := c.replies[requestIDOf(b)]
		if r == nil {
			c.unmatched++
		}
		c.mu.Unlock()
		if r != nil {
			r.Add(b, at)
		}
	}
}

// send starts a reply to text; the Reply's Sent is taken just before the
// frame is written. onFirst, when not nil, runs when the first delta
// arrives.
func (c *wsClient) send(ctx context.Context, requestID, text string, onFirst func()) (*Reply, error) {
	b, err := json.Marshal(map[string]string{"action": "sendMessage", "requestId": requestID, "text": text})
	if err != nil {
		return nil, err
	}
	r := NewReply(time.Now())
	r.onFirst = onFirst
	c.mu.Lock()
	c.replies[requestID] = r
	c.mu.Unlock()
	r.mu.Lock()
	r.s.Sent = time.Now()
	r.mu.Unlock()
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		return nil, fmt.Errorf("send %s: %w", requestID, err)
	}
	return r, nil
}

// wait blocks until r ends, the connection fails, or timeout passes.
func (c *wsClient) wait(ctx context.Context, r *Reply) error {
	select {
	case <-r.Ended():
		return nil
	case <-c.closed:
		c.mu.Lock()
		defer c.mu.Unlock()
		return fmt.Errorf("connection closed during a reply: %w", c.readErr)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close says goodbye as a browser tab does and waits for the reader.
func (c *wsClient) close() {
	_ = c.conn.Close(websocket.StatusNormalClosure, "")
	<-c.closed
}
