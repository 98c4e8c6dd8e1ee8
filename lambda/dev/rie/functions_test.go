package rie_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2/buddy/infra/bundle"
	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/apigwfixtures"
	"github.com/p2/buddy/lambda/dev/fakeconnections"
	"github.com/p2/buddy/lambda/dev/fakemodel"
	"github.com/p2/buddy/lambda/dev/rie"
	"github.com/p2/buddy/lambda/dev/s3local"
	"github.com/p2/buddy/lambda/dev/seed"
	"github.com/p2/buddy/lambda/dev/standins"
	"github.com/p2/buddy/lambda/dev/testfiles"
	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/tokens"
	"github.com/p2/buddy/lambda/wsapi"
)

// What the six functions find around them, started once for the package
// (a JVM and six builds take seconds) and stopped by TestMain: the
// deployed bootstraps built for this machine, one DynamoDB Local with the
// tables, and the stand-ins of the services they call.
type world struct {
	*standins.Set
	root, rie string
	bins      map[string]string // function dir → bootstrap
	home      string
	store     store.Store
	model     *fakemodel.Server
}

const (
	tablePrefix = "rie-test-"
	audience    = "buddy-rie-test"
	apiKey      = "sk-ant-rie-test"
	stage       = "prod"
)

var (
	setupOnce sync.Once
	shared    *world
	setupErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		if err := shared.close(); err != nil {
			fmt.Fprintln(os.Stderr, "rie:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func setup(t *testing.T) *world {
	t.Helper()
	setupOnce.Do(func() {
		// No one test's context, and no deadline but go test's own: on a
		// cold, busy machine the builds alone take minutes.
		shared, setupErr = newWorld(context.Background())
	})
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	return shared
}

func newWorld(ctx context.Context) (w *world, err error) {
	w = &world{}
	defer func() {
		if err != nil {
			_ = w.close()
		}
	}()
	if w.root, err = bundle.FindModuleRoot("."); err != nil {
		return w, err
	}
	dirs, err := bundle.HostBundler(w.root).Bundle()
	if err != nil {
		return w, err
	}
	w.bins = map[string]string{}
	for dir, assets := range dirs {
		w.bins[dir] = filepath.Join(assets, "bootstrap")
	}
	if w.rie, err = rie.Binary(ctx, w.root); err != nil {
		return w, err
	}
	if w.home, err = os.MkdirTemp("", "rie-home-"); err != nil {
		return w, err
	}
	w.Set, err = standins.Start(ctx, standins.Options{DB: true, TablePrefix: tablePrefix, Audience: audience, Stage: stage, APIKey: apiKey})
	if err != nil {
		return w, err
	}
	w.store = store.NewDynamo(w.DB.Client, w.DB.Tables)
	// The model accepts only the key in the secret: a reply proves the
	// function read it from Secrets Manager.
	w.model = fakemodel.New(fakemodel.Options{APIKey: apiKey})
	w.Endpoints[config.AnthropicBaseURL] = w.Serve(w.model).URL
	return w, nil
}

func (w *world) close() error {
	if w.model != nil {
		w.model.Close()
	}
	var err error
	if w.Set != nil {
		err = w.Set.Close()
	}
	if w.home != "" {
		os.RemoveAll(w.home)
	}
	return err
}

// harness is one function under the emulator, for one test.
type harness struct {
	*world
	t  *testing.T
	fn manifest.Function
	f  *rie.Function
}

func (w *world) start(t *testing.T, fn manifest.Function, overrides map[string]string) *harness {
	t.Helper()
	bin := w.bins[fn.Dir]
	env := w.FunctionEnv(fn, standins.Code{Home: w.home, TaskRoot: filepath.Dir(bin), Handler: "bootstrap", Vars: overrides})
	f, err := rie.Start(t.Context(), rie.Options{RIE: w.rie, Bootstrap: bin, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	w.Route(fn.Name, f)
	t.Cleanup(func() {
		w.Route(fn.Name, nil)
		if err := f.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("%s under the emulator wrote:\n%s", fn.Name, f.Output())
		}
	})
	return &harness{world: w, t: t, fn: fn, f: f}
}

// invoke sends ev and decodes the function's answer into out; a function
// error or a failed init fails the test.
func (h *harness) invoke(ev apigwfixtures.Event, out any) {
	h.t.Helper()
	resp, err := h.f.Invoke(h.t.Context(), ev.JSON())
	if err != nil {
		h.t.Fatal(err)
	}
	if typ, msg, ok := resp.FunctionError(); ok || resp.Status != http.StatusOK {
		h.t.Fatalf("%s answered %d %s %s: %s", h.fn.Name, resp.Status, typ, msg, resp.Body)
	}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		h.t.Fatalf("%s answered %s: %v", h.fn.Name, resp.Body, err)
	}
}

// response is the part of either API Gateway response the tests read.
type response struct {
	StatusCode int    `json:"statusCode"`
	Body       string `json:"body"`
}

// http invokes an HTTP API route as user and decodes the JSON body into out.
func (h *harness) http(route, path string, params map[string]string, body, user string, out any) int {
	h.t.Helper()
	var resp response
	h.invoke(apigwfixtures.HTTP{RouteKey: route, Path: path, PathParams: params, Body: body, Claims: map[string]string{"sub": user}}.Event(), &resp)
	if resp.StatusCode >= 400 {
		h.t.Logf("%s %s as %s answered %d %s", route, path, user, resp.StatusCode, resp.Body)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(resp.Body), out); err != nil {
			h.t.Fatalf("%s %s answered %d %q: %v", route, path, resp.StatusCode, resp.Body, err)
		}
	}
	return resp.StatusCode
}

// ownerOnly sends route on the item at path first as other, with
// otherBody, which must be answered 404, then as its owner me, with
// myBody, which must be answered want.
func (h *harness) ownerOnly(route, path string, params map[string]string, other, otherBody, me, myBody string, want int) {
	h.t.Helper()
	method, _, _ := strings.Cut(route, " ")
	if st := h.http(route, path, params, otherBody, other, nil); st != http.StatusNotFound {
		h.t.Errorf("another user's %s: %d, want 404", method, st)
	}
	if st := h.http(route, path, params, myBody, me, nil); st != want {
		h.t.Errorf("the owner's %s: %d, want %d", method, st, want)
	}
}

// unique makes ids no other test (or earlier run against a persistent
// store) uses.
func unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

// connect stores an open connection of user, as $connect would have.
func (h *harness) connect(user string) string {
	h.t.Helper()
	id := unique("conn") + "="
	now := time.Now()
	if err := h.store.PutConnection(h.t.Context(), store.Connection{ConnectionID: id, UserID: user, ConnectedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		h.t.Fatal(err)
	}
	return id
}

// frames decodes the posts to connectionID.
func frames(posts []fakeconnections.Post) []wsapi.Frame {
	out := make([]wsapi.Frame, len(posts))
	for i, p := range posts {
		_ = json.Unmarshal(p.Data, &out[i])
	}
	return out
}

func TestFunctionsRunUnderTheEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the six functions and starts DynamoDB Local")
	}
	tests := []struct {
		name string
		fn   manifest.Function
		run  func(h *harness)
	}{
		{"$connect without a token answers 401 and stores nothing", manifest.WebSocketConnect, func(h *harness) {
			id := unique("anon") + "="
			var resp response
			h.invoke(apigwfixtures.Connect(id, ""), &resp)
			if resp.StatusCode != http.StatusUnauthorized {
				h.t.Errorf("status %d, want 401", resp.StatusCode)
			}
			if _, err := h.store.GetConnection(h.t.Context(), id); !errors.Is(err, store.ErrNotFound) {
				h.t.Errorf("connection stored anyway: %v", err)
			}
		}},
		{"$connect with a dev token answers 200 and stores the connection", manifest.WebSocketConnect, func(h *harness) {
			user, id := unique("alice"), unique("conn")+"="
			token, err := h.Issuer.Sign(user, time.Hour)
			if err != nil {
				h.t.Fatal(err)
			}
			var resp response
			h.invoke(apigwfixtures.Connect(id, token), &resp)
			if resp.StatusCode != http.StatusOK {
				h.t.Fatalf("status %d (%q), want 200", resp.StatusCode, resp.Body)
			}
			c, err := h.store.GetConnection(h.t.Context(), id)
			if err != nil || c.UserID != user {
				h.t.Errorf("stored connection %+v, %v; want one of %s", c, err, user)
			}
		}},
		{"$disconnect forgets the connection", manifest.WebSocketDisconnect, func(h *harness) {
			id := h.connect(unique("bob"))
			var resp response
			h.invoke(apigwfixtures.Disconnect(id), &resp)
			if resp.StatusCode != http.StatusOK {
				h.t.Errorf("status %d, want 200", resp.StatusCode)
			}
			if _, err := h.store.GetConnection(h.t.Context(), id); !errors.Is(err, store.ErrNotFound) {
				h.t.Errorf("connection still stored: %v", err)
			}
		}},
		{"ping answers pong through @connections", manifest.WebSocketMessage, func(h *harness) {
			id := h.connect(unique("carol"))
			var resp response
			h.invoke(apigwfixtures.Message(id, manifest.RoutePing, `{"action":"ping"}`), &resp)
			if got := frames(h.Posts.PostsTo(id)); len(got) != 1 || got[0].Type != wsapi.TypePong {
				h.t.Errorf("posted %+v, want one pong", got)
			}
		}},
		{"$default answers a frame of no action with a bad_request error frame", manifest.WebSocketMessage, func(h *harness) {
			id := h.connect(unique("cleo"))
			// Upstream's own MESSAGE event: {"a": 1} on $default.
			ev := apigwfixtures.Load(apigwfixtures.WebSocketMessage).Set("requestContext.connectionId", id)
			var resp response
			h.invoke(ev, &resp)
			if got := frames(h.Posts.PostsTo(id)); len(got) != 1 || got[0].Type != wsapi.TypeError || got[0].Code != errcode.BadRequest {
				h.t.Errorf("posted %+v, want one bad_request error", got)
			}
		}},
		{"sendMessage streams the reply its self-invoked job produces", manifest.WebSocketMessage, func(h *harness) {
			user := unique("dave")
			id := h.connect(user)
			body := `{"action":"sendMessage","requestId":"r1","text":"[[tokens=12]] Hello from the emulator"}`
			var resp response
			before := h.ForwardedSoFar()
			h.invoke(apigwfixtures.Message(id, manifest.RouteSendMessage, body), &resp)
			if resp.StatusCode != http.StatusOK {
				h.t.Fatalf("sendMessage answered %d", resp.StatusCode)
			}
			// The reply job reached the Lambda API as an Event
			// invocation of this same function, which ran it.
			jobs, err := h.WaitForwarded(h.t.Context(), before, 1, nil)
			if err != nil {
				h.t.Fatalf("the reply job never ran: %v", err)
			}
			if job := jobs[0]; job.Err != nil || job.Resp.Status != http.StatusOK {
				h.t.Fatalf("reply job: %+v, %v", job.Resp, job.Err)
			}
			if _, msg, ok := jobs[0].Resp.FunctionError(); ok {
				h.t.Fatalf("reply job failed: %s", msg)
			}
			got := frames(h.Posts.PostsTo(id))
			if len(got) < 3 || got[0].Type != wsapi.TypeStart || got[len(got)-1].Type != wsapi.TypeEnd {
				h.t.Fatalf("posted %+v, want start, deltas, end", got)
			}
			var text strings.Builder
			for i, f := range got[1 : len(got)-1] {
				if f.Type != wsapi.TypeDelta || f.Seq == nil || *f.Seq != i || f.RequestID != "r1" {
					h.t.Fatalf("frame %d: %+v, want delta seq %d", i+1, f, i)
				}
				text.WriteString(f.Text)
			}
			msgs, err := h.store.ListMessages(h.t.Context(), got[0].ConversationID)
			if err != nil || len(msgs) != 2 || msgs[1].Text != text.String() || msgs[1].UserID != user {
				h.t.Errorf("stored %+v, %v; want the user's message and the streamed reply", msgs, err)
			}
			if n := len(h.Lambda.Invocations()); n == 0 || h.Lambda.Invocations()[n-1].Function != manifest.WebSocketMessage.Name {
				h.t.Errorf("the Lambda API saw %+v, want the message function's own Event invocation", h.Lambda.Invocations())
			}
		}},
	}
	w := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(w.start(t, tt.fn, nil))
		})
	}
}

// httpRouteCases check each HTTP API route, under the function that serves
// it, with the caller me and another user: the answer carries me's data
// and never the other's.
var httpRouteCases = map[string]func(h *harness, me, other string){
	manifest.RouteListConversations: func(h *harness, me, other string) {
		h.conversation(me)
		h.conversation(other)
		var list struct {
			Conversations []struct{ Title string } `json:"conversations"`
		}
		if st := h.http(manifest.RouteListConversations, "/conversations", nil, "", me, &list); st != http.StatusOK || len(list.Conversations) != 1 || list.Conversations[0].Title != "of "+me {
			h.t.Errorf("listed %d %+v, want only the caller's", st, list.Conversations)
		}
	},
	manifest.RouteGetConversation: func(h *harness, me, other string) {
		id := h.conversation(me)
		path, params := "/conversations/"+id, map[string]string{"id": id}
		var got struct {
			Title    string
			Messages []struct{ Text string } `json:"messages"`
		}
		if st := h.http(manifest.RouteGetConversation, path, params, "", me, &got); st != http.StatusOK || got.Title != "of "+me || len(got.Messages) != 1 || got.Messages[0].Text != "hello" {
			h.t.Errorf("the owner's GET: %d %+v", st, got)
		}
		if st := h.http(manifest.RouteGetConversation, path, params, "", other, nil); st != http.StatusNotFound {
			h.t.Errorf("another user's GET: %d, want 404", st)
		}
	},
	manifest.RouteRenameConversation: func(h *harness, me, other string) {
		id := h.conversation(me)
		h.ownerOnly(manifest.RouteRenameConversation, "/conversations/"+id, map[string]string{"id": id},
			other, `{"title":"stolen"}`, me, `{"title":"renamed"}`, http.StatusOK)
		if c, err := h.store.GetConversation(h.t.Context(), me, id); err != nil || c.Title != "renamed" {
			h.t.Errorf("stored %+v, %v; want the new title", c, err)
		}
	},
	manifest.RouteDeleteConversation: func(h *harness, me, other string) {
		id := h.conversation(me)
		h.ownerOnly(manifest.RouteDeleteConversation, "/conversations/"+id, map[string]string{"id": id}, other, "", me, "", http.StatusNoContent)
		if _, err := h.store.GetConversation(h.t.Context(), me, id); !errors.Is(err, store.ErrNotFound) {
			h.t.Errorf("still stored: %v", err)
		}
	},
	manifest.RouteCreateUpload: func(h *harness, me, _ string) {
		id := h.upload(me)
		if u, err := h.store.GetUpload(h.t.Context(), me, id); err != nil || u.Status != store.UploadPending || u.Name != "cat.png" {
			h.t.Errorf("stored %+v, %v", u, err)
		}
	},
	manifest.RouteCompleteUpload: func(h *harness, me, other string) {
		id := h.upload(me)
		path, params := "/uploads/"+id+"/complete", map[string]string{"id": id}
		if st := h.http(manifest.RouteCompleteUpload, path, params, "", other, nil); st != http.StatusNotFound {
			h.t.Errorf("another user's complete: %d, want 404", st)
		}
		var done struct {
			Upload struct {
				Status        string
				Width, Height int
			}
		}
		if st := h.http(manifest.RouteCompleteUpload, path, params, "", me, &done); st != http.StatusOK || done.Upload.Status != store.UploadReady || done.Upload.Width != 30 {
			h.t.Errorf("the owner's complete: %d %+v", st, done.Upload)
		}
	},
	manifest.RouteGetUpload: func(h *harness, me, other string) {
		id := h.upload(me)
		path, params := "/uploads/"+id, map[string]string{"id": id}
		var got struct{ Upload struct{ Name string } }
		if st := h.http(manifest.RouteGetUpload, path, params, "", me, &got); st != http.StatusOK || got.Upload.Name != "cat.png" {
			h.t.Errorf("the owner's GET: %d %+v", st, got)
		}
		if st := h.http(manifest.RouteGetUpload, path, params, "", other, nil); st != http.StatusNotFound {
			h.t.Errorf("another user's GET: %d, want 404", st)
		}
	},
	manifest.RouteDeleteUpload: func(h *harness, me, other string) {
		id := h.upload(me)
		h.ownerOnly(manifest.RouteDeleteUpload, "/uploads/"+id, map[string]string{"id": id}, other, "", me, "", http.StatusNoContent)
		if _, err := h.store.GetUpload(h.t.Context(), me, id); !errors.Is(err, store.ErrNotFound) {
			h.t.Errorf("still stored: %v", err)
		}
	},
	manifest.RouteListPrompts: func(h *harness, me, other string) {
		h.prompt(me)
		h.prompt(other)
		var list struct {
			Prompts []struct{ Name string } `json:"prompts"`
		}
		if st := h.http(manifest.RouteListPrompts, "/prompts", nil, "", me, &list); st != http.StatusOK || len(list.Prompts) != 1 || list.Prompts[0].Name != "of "+me {
			h.t.Errorf("listed %d %+v, want only the caller's", st, list.Prompts)
		}
	},
	manifest.RouteCreatePrompt: func(h *harness, me, _ string) {
		var created struct{ ID string }
		if st := h.http(manifest.RouteCreatePrompt, "/prompts", nil, `{"name":"Pirate","text":"Arr."}`, me, &created); st != http.StatusCreated || created.ID == "" {
			h.t.Fatalf("POST /prompts: %d %+v", st, created)
		}
		if p, err := h.store.GetPrompt(h.t.Context(), me, created.ID); err != nil || p.Text != "Arr." {
			h.t.Errorf("stored %+v, %v", p, err)
		}
	},
	manifest.RouteGetPrompt: func(h *harness, me, other string) {
		id := h.prompt(me)
		path, params := "/prompts/"+id, map[string]string{"id": id}
		var got struct{ Text string }
		if st := h.http(manifest.RouteGetPrompt, path, params, "", me, &got); st != http.StatusOK || got.Text != "text of "+me {
			h.t.Errorf("the owner's GET: %d %+v", st, got)
		}
		if st := h.http(manifest.RouteGetPrompt, path, params, "", other, nil); st != http.StatusNotFound {
			h.t.Errorf("another user's GET: %d, want 404", st)
		}
	},
	manifest.RouteUpdatePrompt: func(h *harness, me, other string) {
		id := h.prompt(me)
		h.ownerOnly(manifest.RouteUpdatePrompt, "/prompts/"+id, map[string]string{"id": id},
			other, `{"name":"x","text":"stolen"}`, me, `{"name":"Pirate","text":"Arr!"}`, http.StatusOK)
		if p, err := h.store.GetPrompt(h.t.Context(), me, id); err != nil || p.Text != "Arr!" {
			h.t.Errorf("stored %+v, %v; want the new text", p, err)
		}
	},
	manifest.RouteDeletePrompt: func(h *harness, me, other string) {
		id := h.prompt(me)
		h.ownerOnly(manifest.RouteDeletePrompt, "/prompts/"+id, map[string]string{"id": id}, other, "", me, "", http.StatusNoContent)
		if _, err := h.store.GetPrompt(h.t.Context(), me, id); !errors.Is(err, store.ErrNotFound) {
			h.t.Errorf("still stored: %v", err)
		}
	},
	manifest.RouteGetUsage: func(h *harness, me, other string) {
		day := time.Now().UTC().Format(time.DateOnly)
		for u, n := range map[string]int64{me: 7, other: 1000} {
			if _, err := seed.Reply(h.t.Context(), h.store, u, day, config.DefaultModelID, "answer", tokens.Usage{InputTokens: n, OutputTokens: n + 4}); err != nil {
				h.t.Fatal(err)
			}
		}
		var usage struct {
			Totals struct {
				InputTokens, OutputTokens int64
			} `json:"totals"`
		}
		if st := h.http(manifest.RouteGetUsage, "/usage", nil, "", me, &usage); st != http.StatusOK || usage.Totals.InputTokens != 7 || usage.Totals.OutputTokens != 11 {
			h.t.Errorf("answered %d, totals %+v; want the caller's 7 in, 11 out", st, usage.Totals)
		}
	},
	manifest.RouteListModels: func(h *harness, me, _ string) {
		var list struct {
			Models []struct {
				ID      string `json:"id"`
				Default bool   `json:"default"`
			} `json:"models"`
		}
		if st := h.http(manifest.RouteListModels, "/models", nil, "", me, &list); st != http.StatusOK || len(list.Models) != 3 || list.Models[0].ID != config.DefaultModelID || !list.Models[0].Default {
			h.t.Errorf("answered %d, %+v; want the three allowed models, the default first", st, list.Models)
		}
	},
}

func TestHTTPRoutesAnswerTheCallersDataUnderTheEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the six functions and starts DynamoDB Local")
	}
	w := setup(t)
	for _, r := range manifest.HTTPRoutes {
		t.Run(r.RouteKey+" answers the caller's data only", func(t *testing.T) {
			check, ok := httpRouteCases[r.RouteKey]
			if !ok {
				t.Fatalf("no case for %s: every route of the HTTP API has one", r.RouteKey)
			}
			check(w.start(t, r.Function, nil), unique("me"), unique("other"))
		})
	}
}

// conversation stores a conversation of user with one message.
func (h *harness) conversation(user string) string {
	h.t.Helper()
	id, now := ids.New(), time.Now()
	if err := h.store.CreateConversation(h.t.Context(), store.Conversation{UserID: user, ConversationID: id, Title: "of " + user, CreatedAt: now, UpdatedAt: now}); err != nil {
		h.t.Fatal(err)
	}
	if err := h.store.PutMessage(h.t.Context(), store.Message{ConversationID: id, MessageID: ids.New(), UserID: user, Role: store.RoleUser, Text: "hello", CreatedAt: now}); err != nil {
		h.t.Fatal(err)
	}
	return id
}

// prompt stores a saved prompt of user.
// upload declares a 30×20 PNG of user's through the function and sends
// it to the presigned POST it answered, as a browser does; it returns the
// upload's id.
func (h *harness) upload(user string) string {
	h.t.Helper()
	png := testfiles.Image("image/png", 30, 20)
	var c struct {
		Upload struct{ ID string }
		Post   struct {
			URL    string
			Fields map[string]string
		}
	}
	if st := h.http(manifest.RouteCreateUpload, "/uploads", nil, fmt.Sprintf(`{"name":"cat.png","contentType":"image/png","size":%d}`, len(png)), user, &c); st != http.StatusCreated {
		h.t.Fatalf("POST /uploads: %d", st)
	}
	if st, code, err := s3local.PostObject(h.t.Context(), c.Post.URL, c.Post.Fields, png); err != nil || st >= 300 {
		h.t.Fatalf("upload to S3: %d %s %v", st, code, err)
	}
	return c.Upload.ID
}

func (h *harness) prompt(user string) string {
	h.t.Helper()
	id, now := ids.New(), time.Now()
	if err := h.store.CreatePrompt(h.t.Context(), store.Prompt{UserID: user, PromptID: id, Name: "of " + user, Text: "text of " + user, CreatedAt: now, UpdatedAt: now}, 200); err != nil {
		h.t.Fatal(err)
	}
	return id
}

func TestABadEnvironmentValueFailsInitNamingTheVariable(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the six functions and starts DynamoDB Local")
	}
	w := setup(t)
	for _, fn := range manifest.Functions {
		t.Run(fn.Dir+" refuses TEMPERATURE=7", func(t *testing.T) {
			h := w.start(t, fn, map[string]string{config.Temperature: "7"})
			resp, err := h.f.Invoke(t.Context(), apigwfixtures.Disconnect("x=").JSON())
			if err != nil {
				t.Fatal(err)
			}
			// The emulator answers a failed init with 502, as Lambda
			// fails the invocation with Runtime.ExitError.
			if resp.Status != http.StatusBadGateway {
				t.Errorf("status %d (%s), want 502", resp.Status, resp.Body)
			}
			if _, err := h.f.InitDuration(t.Context()); err == nil {
				t.Error("the emulator reports a successful init")
			}
			if line := configError(h.f.Output(), config.Temperature); line == "" {
				t.Errorf("no log line names %s:\n%s", config.Temperature, h.f.Output())
			}
		})
	}
}

// configError finds the function's log line that names variable as
// invalid configuration.
func configError(output, variable string) string {
	for _, line := range strings.Split(output, "\n") {
		var l struct{ Msg, Variable, Problem string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "invalid configuration" && l.Variable == variable && l.Problem != "" {
			return line
		}
	}
	return ""
}
