package wshandler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/p2/buddy/lambda/auth"
	"github.com/p2/buddy/lambda/chat"
	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/fakemodel"
	"github.com/p2/buddy/lambda/dev/localissuer"
	"github.com/p2/buddy/lambda/httpapi"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/wsapi"
	"github.com/p2/buddy/lambda/wshandler"
)

// staticKey is a KeySource with a fixed key.
type staticKey string

func (k staticKey) Key(context.Context) (string, error) { return string(k), nil }
func (staticKey) Invalidate()                           {}

// postBox stands in for the @connections endpoint: it records frames per
// connection and answers ErrGone for closed ones (after goneAfter frames
// when set), like API Gateway's 410.
type postBox struct {
	mu        sync.Mutex
	frames    map[string][]wsapi.Frame
	closed    map[string]bool
	goneAfter map[string]int
}

func newPostBox() *postBox {
	return &postBox{frames: map[string][]wsapi.Frame{}, closed: map[string]bool{}, goneAfter: map[string]int{}}
}

func (p *postBox) Post(_ context.Context, conn string, data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n, ok := p.goneAfter[conn]; ok && len(p.frames[conn]) >= n {
		p.closed[conn] = true
	}
	if p.closed[conn] {
		return fmt.Errorf("post: %w", wsapi.ErrGone)
	}
	var f wsapi.Frame
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	p.frames[conn] = append(p.frames[conn], f)
	return nil
}

// take returns and forgets the frames posted to conn so far.
func (p *postBox) take(conn string) []wsapi.Frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.frames[conn]
	delete(p.frames, conn)
	return f
}

// inline runs a reply job before Dispatch returns, so a test sees the
// whole reply when the route handler returns.
type inline struct{ ws *wshandler.WebSocket }

func (d inline) Dispatch(ctx context.Context, job chat.Job) error {
	// The job travels as JSON in AWS: do the same round trip.
	b, err := job.Payload()
	if err != nil {
		return err
	}
	_, err = d.ws.Message(context.WithoutCancel(ctx), b)
	return err
}

type harness struct {
	t      testing.TB
	store  *store.Dynamo
	model  *fakemodel.Server
	posts  *postBox
	issuer *localissuer.Issuer
	ws     *wshandler.WebSocket
	routes map[string]*httpapi.Router
	nextID int
}

type harnessOpts struct {
	limit       int64
	idleTimeout time.Duration
	topP        bool
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	h := &harness{t: t, store: newStore(t), posts: newPostBox()}
	h.model = fakemodel.New(fakemodel.Options{})
	modelSrv := httptest.NewServer(h.model)
	t.Cleanup(func() { h.model.Close(); modelSrv.Close() })

	iss, err := localissuer.New("https://issuer.test", "buddy-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.issuer = iss
	jwks := httptest.NewServer(iss.JWKSHandler())
	t.Cleanup(jwks.Close)

	env := maps.Clone(config.ModelDefaults)
	if o.topP {
		env[config.Temperature] = ""
		env[config.TopP] = "0.8"
	}
	cfg, err := config.ParseRuntime(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	cfg.DailyTokenLimit = o.limit
	idle := o.idleTimeout
	if idle == 0 {
		idle = 10 * time.Second
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	h.ws = &wshandler.WebSocket{
		Function:      "p2-two-websocket-message-two",
		Store:         h.store,
		Verifier:      auth.NewJWKSVerifier(auth.JWKSOptions{URL: jwks.URL, Issuer: iss.Issuer(), Audience: iss.Audience()}),
		Posters:       func(string) wsapi.Poster { return h.posts },
		ConnectionTTL: time.Hour,
		Log:           log,
	}
	h.ws.Chat = &chat.Service{
		Store:    h.store,
		Model:    claude.NewAnthropic(claude.AnthropicOptions{Keys: staticKey("sk-ant-test"), BaseURL: modelSrv.URL, MaxRetries: 1, IdleTimeout: idle}),
		Posters:  func(string) wsapi.Poster { return h.posts },
		Dispatch: inline{h.ws},
		Config:   cfg,
		Log:      log,
		Window:   time.Millisecond,
	}
	h.routes = map[string]*httpapi.Router{
		"conversations": {Function: "conversation-api", Log: log, Routes: (&httpapi.Conversations{Store: h.store}).Routes()},
		"prompts":       {Function: "prompt-crud", Log: log, Routes: (&httpapi.Prompts{Store: h.store}).Routes()},
		"usage":         {Function: "usage-handler", Log: log, Routes: (&httpapi.Usage{Store: h.store, DailyTokenLimit: o.limit}).Routes()},
	}
	return h
}

func (h *harness) token(sub string) string {
	tok, err := h.issuer.Sign(sub, time.Hour)
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

func wsEvent(conn, route, body string) events.APIGatewayWebsocketProxyRequest {
	return events.APIGatewayWebsocketProxyRequest{
		Body: body,
		RequestContext: events.APIGatewayWebsocketProxyRequestContext{
			ConnectionID: conn, RouteKey: route, DomainName: "abc.execute-api.us-east-1.amazonaws.com",
			Stage: "test", RequestID: "gw-" + conn,
		},
	}
}

// connect opens a connection for sub and returns its id.
func (h *harness) connect(sub string) string {
	h.t.Helper()
	h.nextID++
	conn := fmt.Sprintf("conn-%s-%d=", sub, h.nextID)
	ev := wsEvent(conn, "$connect", "")
	ev.QueryStringParameters = map[string]string{"token": h.token(sub)}
	resp, err := h.ws.Connect(context.Background(), ev)
	if err != nil || resp.StatusCode != 200 {
		h.t.Fatalf("connect %s: %d %v", sub, resp.StatusCode, err)
	}
	return conn
}

// send delivers a frame as API Gateway would (the function's JSON entry
// point) and returns the frames the connection received.
func (h *harness) send(conn, body string) []wsapi.Frame {
	h.t.Helper()
	ev := wsEvent(conn, "sendMessage", body)
	raw, _ := json.Marshal(ev)
	out, err := h.ws.Message(context.Background(), raw)
	if err != nil {
		h.t.Fatalf("Message returned error: %v", err)
	}
	if r, ok := out.(events.APIGatewayProxyResponse); !ok || r.StatusCode != 200 {
		h.t.Fatalf("Message answered %#v, want 200", out)
	}
	return h.posts.take(conn)
}

func sendFrame(requestID, conversationID, promptID, text string) string {
	b, _ := json.Marshal(wsapi.ClientFrame{Action: "sendMessage", RequestID: requestID, ConversationID: conversationID, PromptID: promptID, Text: text})
	return string(b)
}

// http calls one of the HTTP functions as API Gateway's JWT authorizer
// would after verifying the token of sub ("" = no token).
func (h *harness) http(fn, sub, method, path, routeKey string, params map[string]string, query map[string]string, body string) (int, map[string]any) {
	h.t.Helper()
	ev := events.APIGatewayV2HTTPRequest{
		RouteKey: routeKey, RawPath: path, Body: body, PathParameters: params, QueryStringParameters: query,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "http-req",
			HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path},
		},
	}
	if sub != "" {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": sub}},
		}
	}
	resp, err := h.routes[fn].Handle(context.Background(), ev)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	var out map[string]any
	if resp.Body != "" {
		if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
			h.t.Fatalf("%s %s: body is not JSON: %q", method, path, resp.Body)
		}
	}
	return resp.StatusCode, out
}

// counts is what a user has stored, to prove a rejected request stored
// nothing.
func (h *harness) counts(user string) (conversations, messages int) {
	ctx := context.Background()
	page, err := h.store.ListConversations(ctx, user, 100, "")
	if err != nil {
		h.t.Fatal(err)
	}
	for _, c := range page.Items {
		ms, err := h.store.ListMessages(ctx, c.ConversationID)
		if err != nil {
			h.t.Fatal(err)
		}
		messages += len(ms)
	}
	return len(page.Items), messages
}
