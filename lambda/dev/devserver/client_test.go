package devserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/p2/buddy/lambda/dev/dynamodblocal"
	"github.com/p2/buddy/lambda/dev/s3local"
	"github.com/p2/buddy/lambda/dev/wsclient"
	"github.com/p2/buddy/lambda/wsapi"
)

// Every dev server of the tests uses one DynamoDB Local, started on first
// use and stopped by TestMain, since its JVM takes seconds to start; the
// end-to-end tests also share one dev server. Each test uses its own
// users, so they cannot see each other's data.
var (
	dbOnce sync.Once
	db     *dynamodblocal.Local
	dbErr  error

	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
	sharedDir  string
)

func TestMain(m *testing.M) {
	code := s3local.RunTests(m)
	if shared != nil {
		if err := shared.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "devserver: close:", err)
			code = 1
		}
	}
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	if db != nil {
		if err := db.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "devserver:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// withDB is cfg on the tests' DynamoDB Local.
func withDB(t *testing.T, cfg Config) Config {
	t.Helper()
	dbOnce.Do(func() {
		// No one test's context, and no deadline but go test's own (a
		// busy machine starts a JVM slowly).
		db, dbErr = dynamodblocal.StartWithTables(context.Background(), dynamodblocal.Options{}, TablePrefix)
	})
	if dbErr != nil {
		t.Fatal(dbErr) // says what to install when java or the jar is missing
	}
	cfg.DynamoDB = db
	cfg.S3 = s3local.TestServer(t)
	return cfg
}

func sharedServer(t *testing.T) *Server {
	t.Helper()
	cfg := withDB(t, Config{})
	sharedOnce.Do(func() {
		sharedDir, sharedErr = os.MkdirTemp("", "buddy-devserver-")
		if sharedErr != nil {
			return
		}
		cfg.StateDir = sharedDir
		shared, sharedErr = Start(context.Background(), cfg)
	})
	if sharedErr != nil {
		t.Fatalf("start the dev server: %v", sharedErr)
	}
	return shared
}

// user is one person using the API: a token from POST /dev/token and, once
// connected, a socket of the protocol's client (lambda/dev/wsclient, which
// the benchmark drives the API with too).
type user struct {
	t     *testing.T
	srv   *Server
	sub   string
	token string
	conn  *wsclient.Conn
	ws    *websocket.Conn // conn's socket, for raw writes and close codes
}

// testCtx is the context of every wait of a test: it ends with the test,
// and a hang is bounded by go test's -timeout, which prints every
// goroutine, rather than by a guess at how slow a busy machine can be.
func testCtx(t *testing.T) context.Context { return t.Context() }

// newUser gets a token for a fresh user name through the dev token
// endpoint.
func newUser(t *testing.T, srv *Server, name string) *user {
	t.Helper()
	sub := fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	resp, err := http.Post(srv.HTTPURL+"/dev/token", "application/json", strings.NewReader(`{"sub":"`+sub+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expiresIn"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.Token == "" || out.ExpiresIn <= 0 {
		t.Fatalf("POST /dev/token: status %d, %+v, %v", resp.StatusCode, out, err)
	}
	return &user{t: t, srv: srv, sub: sub, token: out.Token}
}

func (u *user) connect(ctx context.Context) {
	u.t.Helper()
	c, resp, err := wsclient.Dial(ctx, u.srv.WebSocketURL, u.token)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		u.t.Fatalf("%s: connect: status %d: %v", u.sub, status, err)
	}
	u.conn, u.ws = c, c.WS
	u.t.Cleanup(func() { _ = c.WS.CloseNow() })
}

func (u *user) sendRaw(ctx context.Context, b []byte) {
	u.t.Helper()
	if err := u.conn.SendRaw(ctx, b); err != nil {
		u.t.Fatalf("%s: %v", u.sub, err)
	}
}

func (u *user) send(ctx context.Context, v any) {
	u.t.Helper()
	if err := u.conn.Send(ctx, v); err != nil {
		u.t.Fatalf("%s: %v", u.sub, err)
	}
}

// read reads one server frame; no server frame may exceed 32 KB.
func (u *user) read(ctx context.Context) wsclient.Frame {
	u.t.Helper()
	f, err := u.conn.Read(ctx)
	if err != nil {
		u.t.Fatalf("%s: %v", u.sub, err)
	}
	if len(f.Raw) > wsapi.MaxFrameBytes {
		u.t.Errorf("%s: a server frame of %d bytes exceeds 32 KB", u.sub, len(f.Raw))
	}
	return f
}

// sendMessage is a sendMessage frame.
type sendMessage = wsclient.SendMessage

// chat sends text and collects the reply's frames until end or error,
// checking the order the protocol promises: start, deltas with seq
// 0..n-1 in arrival order, end.
func (u *user) chat(ctx context.Context, m sendMessage) wsclient.Reply {
	u.t.Helper()
	r, err := u.conn.Chat(ctx, m)
	if err != nil {
		u.t.Fatalf("%s: %v", u.sub, err)
	}
	return r
}

// ping checks that the socket still answers.
func (u *user) ping(ctx context.Context) {
	u.t.Helper()
	if err := u.conn.Ping(ctx); err != nil {
		u.t.Fatalf("%s: %v", u.sub, err)
	}
}

// api calls the HTTP API as u and decodes a JSON answer into out (when
// not nil); it returns the status.
func (u *user) api(ctx context.Context, method, path string, body, out any) int {
	u.t.Helper()
	return callAPI(ctx, u.t, u.srv, "Bearer "+u.token, method, path, body, out)
}

func callAPI(ctx context.Context, t *testing.T, srv *Server, authorization, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, srv.HTTPURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: status %d, body %q: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// Wire shapes of the HTTP API answers the tests read.
type (
	apiMessage struct {
		ID         string `json:"id"`
		Role       string `json:"role"`
		Text       string `json:"text"`
		Model      string `json:"model"`
		Incomplete bool   `json:"incomplete"`
		Status     string `json:"status"`
		RequestID  string `json:"requestId"`
	}
	apiConversation struct {
		ID       string       `json:"id"`
		Title    string       `json:"title"`
		PromptID string       `json:"promptId"`
		Messages []apiMessage `json:"messages"`
	}
	apiPrompt struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Text string `json:"text"`
	}
	apiUsage struct {
		Days []struct {
			Day          string `json:"day"`
			Model        string `json:"model"`
			InputTokens  int64  `json:"inputTokens"`
			OutputTokens int64  `json:"outputTokens"`
		} `json:"days"`
		Totals struct {
			InputTokens  int64 `json:"inputTokens"`
			OutputTokens int64 `json:"outputTokens"`
		} `json:"totals"`
	}
)

func (u *user) conversation(ctx context.Context, id string) apiConversation {
	u.t.Helper()
	var c apiConversation
	if st := u.api(ctx, http.MethodGet, "/conversations/"+id, nil, &c); st != http.StatusOK {
		u.t.Fatalf("%s: GET /conversations/%s: %d", u.sub, id, st)
	}
	return c
}

// eventually polls check until it returns "" (done) or ctx ends; the last
// complaint is the failure. For effects that happen after the client was
// answered (a reply stored after its socket closed).
func eventually(ctx context.Context, t *testing.T, check func() string) {
	t.Helper()
	for {
		msg := check()
		if msg == "" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting: %s", msg)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
