package devserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/p2/buddy/lambda/dev/fakeconnections"
	"github.com/p2/buddy/lambda/manifest"
)

// Close codes API Gateway uses.
const (
	closeGoingAway   = websocket.StatusGoingAway       // idle timeout, connection age, shutdown
	closeUnsupported = websocket.StatusUnsupportedData // binary frame
	closeTooBig      = websocket.StatusMessageTooBig   // message > 128 KB or frame > 32 KB
	closeAbnormal    = websocket.StatusAbnormalClosure // no close frame
)

// postWriteTimeout bounds one delivery to a client that stopped reading;
// the connection is dropped after it, as API Gateway drops dead peers.
const postWriteTimeout = 10 * time.Second

// wsLimits are API Gateway's WebSocket quotas.
type wsLimits struct {
	maxMessage, maxFrame int64
	idle, maxAge         time.Duration
	integration          time.Duration
}

// wsGateway plays API Gateway's WebSocket API: it upgrades clients after a
// successful $connect, selects a route for every message by
// $request.body.action, invokes the route's function with the same event
// API Gateway builds, fires $disconnect when a socket closes, and serves
// the @connections management API the handlers post their frames to
// (fakeconnections, over this gateway's live sockets: wsconnections.go).
type wsGateway struct {
	stage  string
	apiID  string
	iv     *invoker
	routes map[string]*function // route key → function
	limits wsLimits
	log    *slog.Logger

	mu      sync.Mutex
	conns   map[string]*wsConn
	closing bool
	wg      sync.WaitGroup // connection loops and message integrations

	stats       gatewayStats
	connections *fakeconnections.Handler
}

// newWSGateway returns a gateway with no connection yet, serving routes.
func newWSGateway(stage, apiID string, iv *invoker, routes map[string]*function, limits wsLimits, log *slog.Logger) *wsGateway {
	g := &wsGateway{stage: stage, apiID: apiID, iv: iv, routes: routes, limits: limits, log: log, conns: map[string]*wsConn{}}
	g.connections = fakeconnections.NewHandler(g)
	return g
}

// gatewayStats are counters a test or benchmark can read; the
// @connections handler counts its posts itself.
type gatewayStats struct {
	connects, refused, disconnects atomic.Int64
	messages                       atomic.Int64
	fragment                       atomic.Int64
	functionErrors, timeouts       atomic.Int64
}

type connState int

const (
	statePending   connState = iota // $connect is running: posts answer 410
	stateUpgrading                  // $connect said yes, the 101 is being written
	stateOpen
	stateClosed
)

// wsConn is one client socket.
type wsConn struct {
	id          string
	connectedAt time.Time
	sourceIP    string
	userAgent   string
	host        string
	lastActive  atomic.Int64 // unix nanoseconds

	state connState // guarded by wsGateway.mu
	ws    *websocket.Conn
	// writeMu serialises deliveries: frames reach the client in the order
	// their posts were accepted.
	writeMu sync.Mutex
	// ready is closed once the upgrade is done or failed: a client may post
	// the moment it sees the 101, before Accept has returned here.
	ready chan struct{}
	done  chan struct{}

	closeOnce sync.Once
	closeCode websocket.StatusCode // set when this side closes
	closeText string
}

func (c *wsConn) touch() { c.lastActive.Store(time.Now().UnixNano()) }

// send delivers one message, split into frames of at most maxFrame bytes
// as API Gateway splits @connections posts.
func (c *wsConn) send(ctx context.Context, data []byte, maxFrame int64) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, postWriteTimeout)
	defer cancel()
	if int64(len(data)) <= maxFrame {
		return c.ws.Write(ctx, websocket.MessageText, data)
	}
	w, err := c.ws.Writer(ctx, websocket.MessageText)
	if err != nil {
		return err
	}
	for len(data) > 0 {
		n := min(int64(len(data)), maxFrame)
		if _, err := w.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return w.Close()
}

// closeWith closes the socket from the gateway's side; the read loop then
// reports code and reason in $disconnect.
func (c *wsConn) closeWith(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeText = code, reason
		_ = c.ws.Close(code, reason)
	})
}

func (g *wsGateway) handler() http.Handler {
	mux := http.NewServeMux()
	base := "/" + g.stage
	mux.HandleFunc("GET "+base, g.connect)
	mux.HandleFunc("GET "+base+"/{$}", g.connect)
	mux.Handle(base+"/@connections/", g.connections)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// What execute-api answers for a path no stage or route matches.
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden"})
	})
	return mux
}

func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func (g *wsGateway) connect(w http.ResponseWriter, r *http.Request) {
	if !isUpgrade(r) {
		w.Header().Set("Upgrade", "websocket")
		writeJSON(w, http.StatusUpgradeRequired, map[string]string{"message": "Upgrade Required"})
		return
	}
	now := time.Now()
	c := &wsConn{
		id:          newGatewayID(),
		connectedAt: now,
		sourceIP:    remoteIP(r),
		userAgent:   r.UserAgent(),
		host:        r.Host,
		ready:       make(chan struct{}),
		done:        make(chan struct{}),
	}
	c.touch()
	if !g.register(c) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"message": "Service Unavailable"})
		return
	}
	defer g.wg.Done()

	resp, err := g.invokeRoute(manifest.RouteConnect, g.connectEvent(r, c, now))
	status := resp.StatusCode
	switch {
	case errors.Is(err, errIntegrationTimeout):
		status = http.StatusGatewayTimeout
	case err != nil:
		status = http.StatusInternalServerError
	}
	if status < 200 || status > 299 {
		// API Gateway refuses the upgrade with the function's status; the
		// connection never existed, so no $disconnect follows.
		g.stats.refused.Add(1)
		g.unregister(c)
		for k, v := range resp.Headers {
			w.Header().Set(k, v)
		}
		if resp.Body == "" {
			resp.Body = http.StatusText(status)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, resp.Body)
		return
	}

	g.mu.Lock()
	c.state = stateUpgrading
	g.mu.Unlock()
	tap := newFrameTap(g.limits.maxFrame)
	// The listener's guard has already checked Origin against the server's
	// own pages; the library's check would refuse the chat page, whose
	// origin is the HTTP listener's port, not this one.
	opts := &websocket.AcceptOptions{InsecureSkipVerify: true}
	if p := headerValue(resp.Headers, "Sec-WebSocket-Protocol"); p != "" {
		opts.Subprotocols = []string{p}
	}
	ws, err := websocket.Accept(&tapWriter{ResponseWriter: w, tap: tap}, r, opts)
	if err != nil {
		g.log.Warn("websocket upgrade failed", "connectionId", c.id, "error", err.Error())
		close(c.ready)
		g.finish(c, closeAbnormal, "upgrade failed")
		return
	}
	ws.SetReadLimit(g.limits.maxMessage)
	g.mu.Lock()
	c.ws, c.state = ws, stateOpen
	closing := g.closing
	g.mu.Unlock()
	close(c.ready)
	g.stats.connects.Add(1)
	if closing {
		go c.closeWith(closeGoingAway, "Going away")
	}

	go g.watch(c)
	code, reason := g.readLoop(c, tap)
	g.finish(c, code, reason)
}

// readLoop routes the client's messages until the socket closes and
// returns the close code and reason $disconnect reports.
func (g *wsGateway) readLoop(c *wsConn, tap *frameTap) (websocket.StatusCode, string) {
	for n := int64(0); ; n++ {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			return closeStatus(c, err)
		}
		c.touch()
		if tap.violates(n) {
			c.closeWith(closeTooBig, "Message too big")
			return closeTooBig, "Message too big"
		}
		if typ == websocket.MessageBinary {
			c.closeWith(closeUnsupported, "Binary frames are not supported")
			return closeUnsupported, "Binary frames are not supported"
		}
		g.stats.messages.Add(1)
		g.wg.Add(1)
		// Like API Gateway, a message is routed without waiting for the
		// previous one's integration.
		go func() {
			defer g.wg.Done()
			g.route(c, data)
		}()
	}
}

func closeStatus(c *wsConn, err error) (websocket.StatusCode, string) {
	var code websocket.StatusCode = -1
	var reason string
	c.closeOnce.Do(func() {}) // the socket is gone: no later closeWith
	switch {
	case c.closeCode != 0:
		return c.closeCode, c.closeText
	case errors.Is(err, websocket.ErrMessageTooBig):
		return closeTooBig, "Message too big"
	}
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		code, reason = ce.Code, ce.Reason
	}
	if code < 0 || code == websocket.StatusNoStatusRcvd {
		return closeAbnormal, ""
	}
	return code, reason
}

// watch closes the connection when it idles or outlives API Gateway's
// connection limits.
func (g *wsGateway) watch(c *wsConn) {
	for {
		now := time.Now()
		idleLeft := time.Unix(0, c.lastActive.Load()).Add(g.limits.idle).Sub(now)
		ageLeft := c.connectedAt.Add(g.limits.maxAge).Sub(now)
		wait := min(idleLeft, ageLeft)
		if wait <= 0 {
			c.closeWith(closeGoingAway, "Going away")
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.done:
			t.Stop()
			return
		}
	}
}

// register records a new connection and counts its goroutine in g.wg
// (under the lock, so close never waits on a group still being added to).
func (g *wsGateway) register(c *wsConn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.conns[c.id] = c
	g.wg.Add(1)
	return true
}

func (g *wsGateway) unregister(c *wsConn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c.state != stateClosed {
		c.state = stateClosed
		delete(g.conns, c.id)
		close(c.done)
	}
}

// finish forgets the connection first, so posts answer 410 from now on,
// then fires $disconnect.
func (g *wsGateway) finish(c *wsConn, code websocket.StatusCode, reason string) {
	g.unregister(c)
	g.stats.disconnects.Add(1)
	if _, err := g.invokeRoute(manifest.RouteDisconnect, g.disconnectEvent(c, code, reason)); err != nil {
		g.log.Warn("$disconnect failed", "connectionId", c.id, "error", err.Error())
	}
}

func (g *wsGateway) state(c *wsConn) connState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return c.state
}

// close shuts every socket with 1001 (each fires $disconnect) and waits up
// to grace for the connection loops.
func (g *wsGateway) close(grace time.Duration) error {
	g.mu.Lock()
	g.closing = true
	var open []*wsConn
	for _, c := range g.conns {
		if c.state == stateOpen {
			open = append(open, c)
		}
	}
	g.mu.Unlock()
	for _, c := range open {
		go c.closeWith(closeGoingAway, "Going away")
	}
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(grace):
		return errors.New("devserver: WebSocket connections still open after shutdown")
	}
}

func remoteIP(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

func headerValue(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
