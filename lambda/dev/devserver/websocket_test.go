package devserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/coder/websocket"

	"github.com/p2/buddy/lambda/manifest"
)

type wsHandler func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)

// recorder keeps every event the fake functions received.
type recorder struct {
	mu     sync.Mutex
	events []events.APIGatewayWebsocketProxyRequest
	seen   chan events.APIGatewayWebsocketProxyRequest
}

func (r *recorder) wrap(h wsHandler) wsHandler {
	return func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
		select {
		case r.seen <- ev:
		default:
		}
		return h(ctx, ev)
	}
}

// next waits for the next event of routeKey; only go test's -timeout
// bounds the wait.
func (r *recorder) next(t *testing.T, routeKey string) events.APIGatewayWebsocketProxyRequest {
	t.Helper()
	for {
		select {
		case ev := <-r.seen:
			if ev.RequestContext.RouteKey == routeKey {
				return ev
			}
		case <-t.Context().Done():
			t.Fatalf("no %s event before the test ended", routeKey)
		}
	}
}

func okHandler(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	return events.APIGatewayProxyResponse{StatusCode: 200}, nil
}

type testGateway struct {
	g        *wsGateway
	srv      *httptest.Server
	rec      *recorder
	wsURL    string
	endpoint string
	mgmt     *apigatewaymanagementapi.Client
}

// newTestGateway runs the WebSocket gateway with fake functions; routes
// not given answer 200.
func newTestGateway(t *testing.T, handlers map[string]wsHandler, limits wsLimits) *testGateway {
	t.Helper()
	rec := &recorder{seen: make(chan events.APIGatewayWebsocketProxyRequest, 64)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	iv := newInvoker(log)
	routes := map[string]*function{}
	for _, r := range manifest.WebSocketRoutes {
		h := handlers[r.RouteKey]
		if h == nil {
			h = okHandler
		}
		routes[r.RouteKey] = &function{name: r.Function.Name, timeout: time.Minute, handler: typed(rec.wrap(h))}
	}
	if limits.maxMessage == 0 {
		limits = wsLimits{maxMessage: 128 * 1024, maxFrame: 32 * 1024, idle: 10 * time.Minute, maxAge: 2 * time.Hour, integration: 29 * time.Second}
	}
	g := newWSGateway("dev", newAPIID(), iv, routes, limits, log)
	srv := httptest.NewServer(g.handler())
	tg := &testGateway{g: g, srv: srv, rec: rec,
		wsURL:    "ws" + strings.TrimPrefix(srv.URL, "http") + "/dev",
		endpoint: srv.URL + "/dev",
	}
	tg.mgmt = apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
		BaseEndpoint: aws.String(tg.endpoint),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
	})
	t.Cleanup(func() {
		if err := g.close(10 * time.Second); err != nil {
			t.Error(err)
		}
		srv.Close()
		if err := iv.close(10 * time.Second); err != nil {
			t.Error(err)
		}
	})
	return tg
}

func (tg *testGateway) dial(t *testing.T, query string) (*websocket.Conn, events.APIGatewayWebsocketProxyRequest) {
	t.Helper()
	ctx := t.Context()
	c, _, err := websocket.Dial(ctx, tg.wsURL+query, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c, tg.rec.next(t, manifest.RouteConnect)
}

func (tg *testGateway) post(ctx context.Context, id string, data []byte) error {
	_, err := tg.mgmt.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: data})
	return err
}

func readText(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx := t.Context()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("got a %v message, want text", typ)
	}
	return string(b)
}

// closeCode reads until the gateway closes the socket and returns its code.
func closeCode(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx := t.Context()
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func TestConnectRefusalKeepsTheFunctionStatus(t *testing.T) {
	tests := []struct {
		name   string
		status int
	}{
		{"unauthorized token answers 401", http.StatusUnauthorized},
		{"forbidden answers 403", http.StatusForbidden},
		{"function failure answers 500", http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := newTestGateway(t, map[string]wsHandler{
				manifest.RouteConnect: func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
					if tt.status == http.StatusInternalServerError {
						return events.APIGatewayProxyResponse{}, errors.New("boom")
					}
					return events.APIGatewayProxyResponse{StatusCode: tt.status, Body: "no"}, nil
				},
			}, wsLimits{})
			ctx := t.Context()
			c, resp, err := websocket.Dial(ctx, tg.wsURL+"?token=x", nil)
			if err == nil {
				c.CloseNow()
				t.Fatal("upgrade accepted")
			}
			if resp == nil || resp.StatusCode != tt.status {
				t.Fatalf("status = %v, want %d (err %v)", resp, tt.status, err)
			}
			if n := tg.g.stats.disconnects.Load(); n != 0 {
				t.Errorf("$disconnect fired %d times for a refused connection", n)
			}
		})
	}
}

func TestEventsAreShapedLikeAPIGateway(t *testing.T) {
	tg := newTestGateway(t, nil, wsLimits{})
	c, conn := tg.dial(t, "?token=abc&x=1&x=2")
	rc := conn.RequestContext
	id := rc.ConnectionID
	checks := []struct {
		name      string
		got, want any
	}{
		{"connect event type", rc.EventType, "CONNECT"},
		{"connect stage", rc.Stage, "dev"},
		{"connect token in the query string", conn.QueryStringParameters["token"], "abc"},
		{"last value of a repeated parameter", conn.QueryStringParameters["x"], "2"},
		{"all values of a repeated parameter", fmt.Sprint(conn.MultiValueQueryStringParameters["x"]), "[1 2]"},
		{"domain name is the host the client used", rc.DomainName, strings.TrimPrefix(tg.srv.URL, "http://")},
		{"message direction", rc.MessageDirection, "IN"},
		{"connection id looks like API Gateway's", len(id) == 16 && strings.HasSuffix(id, "="), true},
		{"request id set", rc.RequestID != "", true},
		{"source ip set", rc.Identity.SourceIP, "127.0.0.1"},
		{"handshake headers passed", conn.Headers["Sec-Websocket-Version"], "13"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %v, want %v", ck.name, ck.got, ck.want)
		}
	}

	messages := []struct {
		name, body, route string
	}{
		{"action picks its route", `{"action":"sendMessage","text":"hi"}`, manifest.RouteSendMessage},
		{"ping action picks ping", `{"action":"ping"}`, manifest.RoutePing},
		{"unknown action goes to $default", `{"action":"dance"}`, manifest.RouteDefault},
		{"non-JSON goes to $default", `hello`, manifest.RouteDefault},
		{"a reserved route name is not selectable", `{"action":"$connect"}`, manifest.RouteDefault},
		{"a non-string action goes to $default", `{"action":7}`, manifest.RouteDefault},
	}
	ctx := t.Context()
	for _, m := range messages {
		if err := c.Write(ctx, websocket.MessageText, []byte(m.body)); err != nil {
			t.Fatal(err)
		}
		ev := tg.rec.next(t, m.route)
		if ev.Body != m.body || ev.RequestContext.EventType != "MESSAGE" || ev.RequestContext.ConnectionID != id || ev.RequestContext.MessageID == nil {
			t.Errorf("%s: event %+v", m.name, ev.RequestContext)
		}
		if ev.QueryStringParameters != nil || ev.Headers != nil {
			t.Errorf("%s: a MESSAGE event carries no query string or headers", m.name)
		}
	}

	c.Close(websocket.StatusNormalClosure, "bye")
	dis := tg.rec.next(t, manifest.RouteDisconnect)
	if dis.RequestContext.EventType != "DISCONNECT" || dis.RequestContext.DisconnectStatusCode != 1000 || dis.RequestContext.ConnectionID != id {
		t.Errorf("disconnect event: %+v", dis.RequestContext)
	}
}

func TestOversizeAndBinaryFramesCloseTheSocket(t *testing.T) {
	big := func(n int) []byte { return bytes.Repeat([]byte("a"), n) }
	tests := []struct {
		name  string
		send  func(ctx context.Context, c *websocket.Conn) error
		want  websocket.StatusCode
		first bool // whether an earlier valid message is still routed
	}{
		{"frame over 32 KB closes with 1009", func(ctx context.Context, c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, big(32*1024+1))
		}, websocket.StatusMessageTooBig, false},
		{"message over 128 KB in small frames closes with 1009", func(ctx context.Context, c *websocket.Conn) error {
			w, err := c.Writer(ctx, websocket.MessageText)
			if err != nil {
				return err
			}
			for range 5 {
				if _, err := w.Write(big(30 * 1024)); err != nil {
					return err
				}
			}
			return w.Close()
		}, websocket.StatusMessageTooBig, false},
		{"binary frame closes with 1003", func(ctx context.Context, c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageBinary, []byte(`{"action":"ping"}`))
		}, websocket.StatusUnsupportedData, false},
		{"valid message before an oversize one is still routed", func(ctx context.Context, c *websocket.Conn) error {
			if err := c.Write(ctx, websocket.MessageText, []byte(`{"action":"ping"}`)); err != nil {
				return err
			}
			return c.Write(ctx, websocket.MessageText, big(40*1024))
		}, websocket.StatusMessageTooBig, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := newTestGateway(t, nil, wsLimits{})
			c, _ := tg.dial(t, "")
			ctx := t.Context()
			_ = tt.send(ctx, c)
			if got := closeCode(t, c); got != tt.want {
				t.Errorf("close code = %v, want %v", got, tt.want)
			}
			dis := tg.rec.next(t, manifest.RouteDisconnect)
			if got := websocket.StatusCode(dis.RequestContext.DisconnectStatusCode); got != tt.want {
				t.Errorf("$disconnect code = %v, want %v", got, tt.want)
			}
			routed := false
			tg.rec.mu.Lock()
			for _, ev := range tg.rec.events {
				routed = routed || ev.RequestContext.RouteKey == manifest.RoutePing
			}
			tg.rec.mu.Unlock()
			if routed != tt.first {
				t.Errorf("ping routed = %v, want %v", routed, tt.first)
			}
		})
	}
}

func TestConnectionsAPIAnswersLikeAPIGateway(t *testing.T) {
	var postDuringConnect error
	var tg *testGateway
	tg = newTestGateway(t, map[string]wsHandler{
		manifest.RouteConnect: func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			postDuringConnect = tg.post(ctx, ev.RequestContext.ConnectionID, []byte("too early"))
			return events.APIGatewayProxyResponse{StatusCode: 200}, nil
		},
	}, wsLimits{})
	c, conn := tg.dial(t, "")
	id := conn.RequestContext.ConnectionID
	var gone *types.GoneException
	if !errors.As(postDuringConnect, &gone) {
		t.Errorf("post during $connect: %v, want GoneException", postDuringConnect)
	}

	ctx := t.Context()
	fortyKB := bytes.Repeat([]byte("x"), 40*1024)
	posts := []struct {
		name    string
		id      string
		data    []byte
		wantErr any
	}{
		{"small post is delivered", id, []byte(`{"type":"pong"}`), nil},
		{"post over 32 KB is delivered as one message", id, fortyKB, nil},
		{"post over 128 KB is refused with 413", id, bytes.Repeat([]byte("x"), 128*1024+1), new(*types.PayloadTooLargeException)},
		{"post to an unknown connection is gone", "AAAAAAAAAAAAAAA=", []byte("x"), new(*types.GoneException)},
	}
	for _, p := range posts {
		err := tg.post(ctx, p.id, p.data)
		if p.wantErr == nil {
			if err != nil {
				t.Errorf("%s: %v", p.name, err)
				continue
			}
			if got := readText(t, c); got != string(p.data) {
				t.Errorf("%s: delivered %d bytes, want %d", p.name, len(got), len(p.data))
			}
			continue
		}
		if !errors.As(err, p.wantErr) {
			t.Errorf("%s: error %v, want %T", p.name, err, p.wantErr)
		}
	}

	// Sequential posts arrive in post order.
	const n = 200
	posted := make(chan error, 1)
	go func() {
		for i := range n {
			if err := tg.post(ctx, id, []byte(fmt.Sprint(i))); err != nil {
				posted <- fmt.Errorf("post %d: %w", i, err)
				return
			}
		}
		posted <- nil
	}()
	for i := range n {
		if got := readText(t, c); got != fmt.Sprint(i) {
			t.Fatalf("message %d arrived as %q", i, got)
		}
	}
	if err := <-posted; err != nil {
		t.Fatal(err)
	}

	out, err := tg.mgmt.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)})
	if err != nil || out.ConnectedAt == nil || out.Identity == nil || aws.ToString(out.Identity.SourceIp) != "127.0.0.1" {
		t.Errorf("GetConnection: %+v, %v", out, err)
	}

	c.Close(websocket.StatusNormalClosure, "")
	tg.rec.next(t, manifest.RouteDisconnect)
	if err := tg.post(ctx, id, []byte("late")); !errors.As(err, &gone) {
		t.Errorf("post after close: %v, want GoneException", err)
	}

	// An unsigned request is refused as in AWS.
	resp, err := http.Post(tg.endpoint+"/@connections/"+id, "application/json", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned post: status %d, want 403", resp.StatusCode)
	}
}

func TestDeleteConnectionClosesTheSocket(t *testing.T) {
	tg := newTestGateway(t, nil, wsLimits{})
	c, conn := tg.dial(t, "")
	ctx := t.Context()
	if _, err := tg.mgmt.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(conn.RequestContext.ConnectionID)}); err != nil {
		t.Fatal(err)
	}
	if got := closeCode(t, c); got != websocket.StatusNormalClosure {
		t.Errorf("close code %v, want 1000", got)
	}
	tg.rec.next(t, manifest.RouteDisconnect)
}

func TestIntegrationFailuresReachTheClientAsGatewayMessages(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	tg := newTestGateway(t, map[string]wsHandler{
		manifest.RoutePing: func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			return events.APIGatewayProxyResponse{}, errors.New("handler failed")
		},
		manifest.RouteSendMessage: func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			<-release
			return events.APIGatewayProxyResponse{StatusCode: 200}, nil
		},
	}, wsLimits{maxMessage: 128 * 1024, maxFrame: 32 * 1024, idle: time.Hour, maxAge: time.Hour, integration: 200 * time.Millisecond})
	c, conn := tg.dial(t, "")
	tests := []struct {
		name, send, want string
	}{
		{"function error", `{"action":"ping"}`, "Internal server error"},
		{"integration timeout", `{"action":"sendMessage"}`, "Endpoint request timed out"},
	}
	ctx := t.Context()
	for _, tt := range tests {
		if err := c.Write(ctx, websocket.MessageText, []byte(tt.send)); err != nil {
			t.Fatal(err)
		}
		var got struct{ Message, ConnectionID, RequestID string }
		if err := json.Unmarshal([]byte(readText(t, c)), &got); err != nil {
			t.Fatal(err)
		}
		if got.Message != tt.want || got.ConnectionID != conn.RequestContext.ConnectionID || got.RequestID == "" {
			t.Errorf("%s: got %+v, want message %q", tt.name, got, tt.want)
		}
	}
}

func TestIdleConnectionsAreClosed(t *testing.T) {
	tg := newTestGateway(t, nil, wsLimits{maxMessage: 128 * 1024, maxFrame: 32 * 1024, idle: 300 * time.Millisecond, maxAge: time.Hour, integration: time.Second})
	c, _ := tg.dial(t, "")
	if got := closeCode(t, c); got != websocket.StatusGoingAway {
		t.Errorf("close code %v, want 1001", got)
	}
	dis := tg.rec.next(t, manifest.RouteDisconnect)
	if dis.RequestContext.DisconnectStatusCode != 1001 {
		t.Errorf("$disconnect code %d, want 1001", dis.RequestContext.DisconnectStatusCode)
	}
}
