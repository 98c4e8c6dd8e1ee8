package wshandler_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/p2/buddy/lambda/auth"
	"github.com/p2/buddy/lambda/chat"
	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/apigwfixtures"
	"github.com/p2/buddy/lambda/dev/contention"
	"github.com/p2/buddy/lambda/dev/dynamodblocal"
	"github.com/p2/buddy/lambda/dev/fakemodel"
	"github.com/p2/buddy/lambda/dev/localissuer"
	"github.com/p2/buddy/lambda/dev/s3local"
	"github.com/p2/buddy/lambda/httpapi"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/uploads"
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

// close makes conn answer ErrGone from now on, as a dropped socket does.
func (p *postBox) close(conn string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed[conn] = true
}

// peek returns the frames posted to conn so far, keeping them.
func (p *postBox) peek(conn string) []wsapi.Frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]wsapi.Frame(nil), p.frames[conn]...)
}

// waitFor polls conn's frames until ok accepts them and returns them. A
// test that never gets there is ended by go test's -timeout.
func (p *postBox) waitFor(t testing.TB, conn string, ok func([]wsapi.Frame) bool) []wsapi.Frame {
	t.Helper()
	for {
		if f := p.peek(conn); ok(f) {
			return f
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("gave up waiting for %s's frames: %+v", conn, p.peek(conn))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ended reports whether frames hold a reply's last frame.
func ended(frames []wsapi.Frame) bool {
	return len(frames) > 0 && (frames[len(frames)-1].Type == wsapi.TypeEnd || frames[len(frames)-1].Type == wsapi.TypeError)
}

// deltas counts the delta frames.
func deltas(frames []wsapi.Frame) int {
	n := 0
	for _, f := range frames {
		if f.Type == wsapi.TypeDelta {
			n++
		}
	}
	return n
}

// take returns and forgets the frames posted to conn so far.
func (p *postBox) take(conn string) []wsapi.Frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.frames[conn]
	delete(p.frames, conn)
	return f
}

// dispatcher runs a reply job through the function's JSON entry point, as
// Lambda's asynchronous invocation does: before Dispatch returns (inline),
// so a test sees the whole reply when the route handler returns, or on
// its own goroutine (async), so a test can act while the reply runs.
type dispatcher struct {
	ws    *wshandler.WebSocket
	async bool
	jobs  sync.WaitGroup
	// fail, when set, refuses every dispatch (Lambda throttling the
	// invoke call).
	fail error

	mu   sync.Mutex
	sent [][]byte // every payload dispatched
}

// payloads returns the payloads dispatched so far.
func (d *dispatcher) payloads() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.sent)
}

func (d *dispatcher) Dispatch(ctx context.Context, job chat.Job) error {
	if d.fail != nil {
		return d.fail
	}
	// The job travels as JSON in AWS: do the same round trip.
	b, err := job.Payload()
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.sent = append(d.sent, b)
	d.mu.Unlock()
	run := func() { _, _ = d.ws.Message(context.WithoutCancel(ctx), b) }
	if d.async {
		d.jobs.Go(run)
		return nil
	}
	run()
	return nil
}

type harness struct {
	t      testing.TB
	store  *store.Dynamo
	db     *contention.API // the store's DynamoDB
	tables config.Tables
	bucket uploads.Bucket // the uploads, in the S3 emulator
	model  *fakemodel.Server
	posts  *postBox
	issuer *localissuer.Issuer
	ws     *wshandler.WebSocket
	routes map[string]*httpapi.Router
	disp   *dispatcher
	nextID atomic.Int64
}

type harnessOpts struct {
	limit       int64
	idleTimeout time.Duration
	topP        bool
	// async runs reply jobs on their own goroutines (wait with h.wait).
	async bool
	// grace is the orphan grace (10 s when zero); maxInflight the running
	// replies a user may have (the default when zero).
	grace       time.Duration
	maxInflight int
	// promptCache is PROMPT_CACHE ("": the default).
	promptCache string
	// maxTokens is MAX_TOKENS (the default when zero); resumesPerMinute
	// RESUMES_PER_MINUTE (likewise).
	maxTokens        int64
	resumesPerMinute int
	// conflict, when set, makes the store's DynamoDB answer the writes it
	// picks with a transaction conflict, as DynamoDB does under contention.
	conflict func(contention.Write) bool
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	client, tables := dynamodblocal.TestTables(t)
	h := &harness{t: t, posts: newPostBox(), db: contention.Wrap(client, o.conflict), tables: tables}
	h.store = store.NewDynamo(h.db, tables)
	s3c, bucket := s3local.TestBucket(t)
	h.bucket = uploads.Bucket{Client: s3c, Name: bucket}
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
	env[config.PromptCache] = o.promptCache
	if o.topP {
		env[config.Temperature] = ""
		env[config.TopP] = "0.8"
	}
	cfg, err := config.ParseRuntime(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	cfg.DailyTokenLimit = o.limit
	cfg.OrphanGrace = cmp.Or(o.grace, 10*time.Second)
	cfg.MaxInflightReplies = cmp.Or(o.maxInflight, cfg.MaxInflightReplies)
	cfg.Model.MaxTokens = cmp.Or(o.maxTokens, cfg.Model.MaxTokens)
	cfg.ResumesPerMinute = cmp.Or(o.resumesPerMinute, cfg.ResumesPerMinute)
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
	h.disp = &dispatcher{ws: h.ws, async: o.async}
	t.Cleanup(h.wait)
	h.ws.Chat = &chat.Service{
		Store:    h.store,
		Model:    claude.NewAnthropic(claude.AnthropicOptions{Keys: staticKey("sk-ant-test"), BaseURL: modelSrv.URL, MaxRetries: 1, IdleTimeout: idle}),
		Posters:  func(string) wsapi.Poster { return h.posts },
		Dispatch: h.disp,
		Config:   cfg,
		Log:      log,
		Window:   time.Millisecond,
		// Stops and resumes reach a running reply within a poll: short
		// here so the tests run fast.
		Poll:    5 * time.Millisecond,
		Objects: h.bucket,
	}
	// The conversation function serves the uploads too, as in AWS.
	conversationRoutes := (&httpapi.Conversations{Store: h.store, Objects: h.bucket}).Routes()
	maps.Copy(conversationRoutes, (&httpapi.Uploads{Store: h.store, Bucket: h.bucket, PerDay: 1000,
		Limits: uploads.Limits{ImageBytes: cfg.MaxImageBytes, PDFBytes: cfg.MaxPDFBytes, PDFPages: cfg.MaxPDFPages}}).Routes())
	h.routes = map[string]*httpapi.Router{
		"conversations": {Function: "conversation-api", Log: log, Routes: conversationRoutes},
		"prompts":       {Function: "prompt-crud", Log: log, Routes: (&httpapi.Prompts{Store: h.store}).Routes()},
		"usage":         {Function: "usage-handler", Log: log, Routes: (&httpapi.Usage{Store: h.store, DailyTokenLimit: o.limit}).Routes()},
	}
	return h
}

// wait waits for the reply jobs dispatched so far.
func (h *harness) wait() { h.disp.jobs.Wait() }

// instance is a second handler instance of the message function: the same
// store, model and @connections, none of the first one's memory (its
// connection cache), as another Lambda execution environment.
func (h *harness) instance() *wshandler.WebSocket {
	chat := *h.ws.Chat
	return &wshandler.WebSocket{
		Function: h.ws.Function, Store: h.ws.Store, Verifier: h.ws.Verifier, Chat: &chat,
		Posters: h.ws.Posters, ConnectionTTL: h.ws.ConnectionTTL, Log: h.ws.Log,
	}
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
	conn := fmt.Sprintf("conn-%s-%d=", sub, h.nextID.Add(1))
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
	h.deliver(h.ws, conn, body)
	return h.posts.take(conn)
}

// deliver hands a frame to an instance of the message function.
func (h *harness) deliver(ws *wshandler.WebSocket, conn, body string) {
	h.t.Helper()
	ev := wsEvent(conn, "sendMessage", body)
	raw, _ := json.Marshal(ev)
	out, err := ws.Message(context.Background(), raw)
	if err != nil {
		h.t.Fatalf("Message returned error: %v", err)
	}
	if r, ok := out.(events.APIGatewayProxyResponse); !ok || r.StatusCode != 200 {
		h.t.Fatalf("Message answered %#v, want 200", out)
	}
}

func sendFrame(requestID, conversationID, promptID, text string) string {
	b, _ := json.Marshal(wsapi.ClientFrame{Action: "sendMessage", RequestID: requestID, ConversationID: conversationID, PromptID: promptID, Text: text})
	return string(b)
}

// http calls one of the HTTP functions on routeKey, with params put in
// its path, as API Gateway's JWT authorizer would after verifying the
// token of sub (from the real payload, apigwfixtures).
func (h *harness) http(fn, sub, routeKey string, params map[string]string, query map[string]string, body string) (int, map[string]any) {
	h.t.Helper()
	ev := apigwfixtures.HTTP{RouteKey: routeKey, PathParams: params, Query: query, Body: body, Claims: map[string]string{"sub": sub}}.Request()
	resp, err := h.routes[fn].Handle(context.Background(), ev)
	if err != nil {
		h.t.Fatalf("%s %s: %v", routeKey, ev.RawPath, err)
	}
	var out map[string]any
	if resp.Body != "" {
		if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
			h.t.Fatalf("%s %s: body is not JSON: %q", routeKey, ev.RawPath, resp.Body)
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
