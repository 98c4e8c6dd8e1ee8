package devserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"

	"github.com/p2/buddy/lambda/schema"
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
// the @connections management API the handlers post their frames to.
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

	stats gatewayStats
}

// gatewayStats are counters a test or benchmark can read.
type gatewayStats struct {
	connects, refused, disconnects  atomic.Int64
	messages                        atomic.Int64
	posts, gone, tooLarge, fragment atomic.Int64
	functionErrors, timeouts        atomic.Int64
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
	mux.HandleFunc("POST "+base+"/@connections/{id}", g.postToConnection)
	mux.HandleFunc("GET "+base+"/@connections/{id}", g.getConnection)
	mux.HandleFunc("DELETE "+base+"/@connections/{id}", g.deleteConnection)
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

	resp, err := g.invokeRoute(schema.RouteConnect, g.connectEvent(r, c, now))
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
	opts := &websocket.AcceptOptions{InsecureSkipVerify: true} // API Gateway checks no Origin
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
	if _, err := g.invokeRoute(schema.RouteDisconnect, g.disconnectEvent(c, code, reason)); err != nil {
		g.log.Warn("$disconnect failed", "connectionId", c.id, "error", err.Error())
	}
}

// route invokes the route selected for one message. The route's answer is
// discarded (the routes have no route response); a failed or timed-out
// integration reaches the client as API Gateway's own error message.
func (g *wsGateway) route(c *wsConn, body []byte) {
	key := g.selectRoute(body)
	ev := g.messageEvent(c, key, body)
	if _, ok := g.routes[key]; !ok {
		g.sendGatewayError(c, "Forbidden", ev.RequestContext.RequestID)
		return
	}
	_, err := g.invokeRoute(key, ev)
	switch {
	case errors.Is(err, errIntegrationTimeout):
		g.sendGatewayError(c, "Endpoint request timed out", ev.RequestContext.RequestID)
	case err != nil:
		g.sendGatewayError(c, "Internal server error", ev.RequestContext.RequestID)
	}
}

func (g *wsGateway) sendGatewayError(c *wsConn, msg, requestID string) {
	b, _ := json.Marshal(map[string]string{"message": msg, "connectionId": c.id, "requestId": requestID})
	if g.state(c) == stateOpen {
		_ = c.send(context.Background(), b, g.limits.maxFrame)
	}
}

func (g *wsGateway) state(c *wsConn) connState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return c.state
}

// selectRoute applies the route selection expression $request.body.action:
// a JSON object whose action names a route picks it; anything else, non-JSON
// included, goes to $default.
func (g *wsGateway) selectRoute(body []byte) string {
	var probe struct {
		Action any `json:"action"`
	}
	if json.Unmarshal(body, &probe) == nil {
		if a, ok := probe.Action.(string); ok && !strings.HasPrefix(a, "$") {
			if _, ok := g.routes[a]; ok {
				return a
			}
		}
	}
	return schema.RouteDefault
}

func (g *wsGateway) invokeRoute(key string, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	var resp events.APIGatewayProxyResponse
	fn, ok := g.routes[key]
	if !ok {
		return resp, errors.New("no integration for route " + key)
	}
	out, err := integrate(g.iv, fn, ev, g.limits.integration)
	if errors.Is(err, errIntegrationTimeout) {
		g.stats.timeouts.Add(1)
		return resp, err
	}
	if err != nil {
		g.stats.functionErrors.Add(1)
		return resp, err
	}
	if len(out) > 0 && string(out) != "null" {
		if err := json.Unmarshal(out, &resp); err != nil {
			g.stats.functionErrors.Add(1)
			return resp, err
		}
	}
	if resp.StatusCode == 0 {
		resp.StatusCode = http.StatusOK
	}
	return resp, nil
}

func (g *wsGateway) baseContext(c *wsConn, routeKey, eventType string, now time.Time) events.APIGatewayWebsocketProxyRequestContext {
	id := newGatewayID()
	return events.APIGatewayWebsocketProxyRequestContext{
		RouteKey:          routeKey,
		EventType:         eventType,
		ExtendedRequestID: id,
		RequestID:         id,
		RequestTime:       requestTime(now),
		RequestTimeEpoch:  now.UnixMilli(),
		MessageDirection:  "IN",
		Stage:             g.stage,
		ConnectedAt:       c.connectedAt.UnixMilli(),
		Identity:          events.APIGatewayRequestIdentity{SourceIP: c.sourceIP, UserAgent: c.userAgent},
		DomainName:        c.host,
		ConnectionID:      c.id,
		APIID:             g.apiID,
	}
}

// connectEvent is the $connect event: the only one carrying the handshake's
// headers and query string (where the browser puts the token).
func (g *wsGateway) connectEvent(r *http.Request, c *wsConn, now time.Time) events.APIGatewayWebsocketProxyRequest {
	headers, multi := map[string]string{}, map[string][]string{}
	for k, vs := range r.Header {
		headers[k] = vs[len(vs)-1]
		multi[k] = vs
	}
	headers["Host"], multi["Host"] = r.Host, []string{r.Host}
	port := "80"
	if _, p, err := net.SplitHostPort(r.Host); err == nil {
		port = p
	}
	for k, v := range map[string]string{"X-Forwarded-For": c.sourceIP, "X-Forwarded-Port": port, "X-Forwarded-Proto": "http"} {
		headers[k], multi[k] = v, []string{v}
	}
	ev := events.APIGatewayWebsocketProxyRequest{
		Headers:           headers,
		MultiValueHeaders: multi,
		RequestContext:    g.baseContext(c, schema.RouteConnect, "CONNECT", now),
		IsBase64Encoded:   false,
	}
	if q := r.URL.Query(); len(q) > 0 {
		ev.QueryStringParameters, ev.MultiValueQueryStringParameters = flattenQuery(q)
	}
	return ev
}

func (g *wsGateway) messageEvent(c *wsConn, routeKey string, body []byte) events.APIGatewayWebsocketProxyRequest {
	rc := g.baseContext(c, routeKey, "MESSAGE", time.Now())
	rc.MessageID = newGatewayID()
	return events.APIGatewayWebsocketProxyRequest{RequestContext: rc, Body: string(body)}
}

func (g *wsGateway) disconnectEvent(c *wsConn, code websocket.StatusCode, reason string) events.APIGatewayWebsocketProxyRequest {
	rc := g.baseContext(c, schema.RouteDisconnect, "DISCONNECT", time.Now())
	rc.DisconnectStatusCode = int64(code)
	rc.DisconnectReason = &reason
	headers := map[string]string{"Host": c.host, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
	multi := map[string][]string{}
	for k, v := range headers {
		multi[k] = []string{v}
	}
	return events.APIGatewayWebsocketProxyRequest{Headers: headers, MultiValueHeaders: multi, RequestContext: rc}
}

// flattenQuery gives the v1 payload's two views of a query string: the
// last value of each name, and all of them.
func flattenQuery(q url.Values) (map[string]string, map[string][]string) {
	single, multi := map[string]string{}, map[string][]string{}
	for k, vs := range q {
		single[k] = vs[len(vs)-1]
		multi[k] = vs
	}
	return single, multi
}

// postToConnection is PostToConnection: 200 once the data is on its way to
// the client, 410 for a connection that is not open, 413 past 128 KB. The
// SDK signs the request with SigV4; any signature is accepted here, an
// unsigned request is not, as in AWS.
func (g *wsGateway) postToConnection(w http.ResponseWriter, r *http.Request) {
	if !signed(r) {
		writeAWSError(w, http.StatusForbidden, "ForbiddenException", "Missing Authentication Token")
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, g.limits.maxMessage+1))
	if err != nil {
		writeAWSError(w, http.StatusBadRequest, "BadRequestException", "could not read the request body")
		return
	}
	if int64(len(data)) > g.limits.maxMessage {
		g.stats.tooLarge.Add(1)
		writeAWSError(w, http.StatusRequestEntityTooLarge, "PayloadTooLargeException", "Request entity too large")
		return
	}
	c := g.openConn(r.PathValue("id"))
	if c == nil {
		g.stats.gone.Add(1)
		writeAWSError(w, http.StatusGone, "GoneException", "")
		return
	}
	if int64(len(data)) > g.limits.maxFrame {
		g.stats.fragment.Add(1)
	}
	if err := c.send(r.Context(), data, g.limits.maxFrame); err != nil {
		// The socket died under the write: to the poster it is gone.
		g.stats.gone.Add(1)
		writeAWSError(w, http.StatusGone, "GoneException", "")
		return
	}
	c.touch()
	g.stats.posts.Add(1)
	w.WriteHeader(http.StatusOK)
}

func (g *wsGateway) getConnection(w http.ResponseWriter, r *http.Request) {
	if !signed(r) {
		writeAWSError(w, http.StatusForbidden, "ForbiddenException", "Missing Authentication Token")
		return
	}
	c := g.openConn(r.PathValue("id"))
	if c == nil {
		writeAWSError(w, http.StatusGone, "GoneException", "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"connectedAt":  c.connectedAt.UTC().Format(time.RFC3339Nano),
		"lastActiveAt": time.Unix(0, c.lastActive.Load()).UTC().Format(time.RFC3339Nano),
		"identity":     map[string]string{"sourceIp": c.sourceIP, "userAgent": c.userAgent},
	})
}

func (g *wsGateway) deleteConnection(w http.ResponseWriter, r *http.Request) {
	if !signed(r) {
		writeAWSError(w, http.StatusForbidden, "ForbiddenException", "Missing Authentication Token")
		return
	}
	c := g.openConn(r.PathValue("id"))
	if c == nil {
		writeAWSError(w, http.StatusGone, "GoneException", "")
		return
	}
	go c.closeWith(websocket.StatusNormalClosure, "")
	w.WriteHeader(http.StatusNoContent)
}

func (g *wsGateway) openConn(id string) *wsConn {
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
		case <-time.After(postWriteTimeout):
			return nil
		}
		if g.state(c) == stateOpen {
			return c
		}
	}
	return nil
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

func signed(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ")
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

// writeAWSError answers like an AWS REST-JSON service, so the SDK maps the
// error to its typed exception (GoneException, PayloadTooLargeException).
func writeAWSError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("X-Amzn-ErrorType", typ)
	body := map[string]any{"message": msg}
	if msg == "" {
		body["message"] = nil
	}
	writeJSON(w, status, body)
}
