package httpapi_test

import (
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/apigwfixtures"
	"github.com/p2/buddy/lambda/dev/dynamodblocal"
	"github.com/p2/buddy/lambda/httpapi"
	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/tokens"
)

// api is the three HTTP functions on one set of tables, so that what one
// test seeds through the store is what the routers read.
type api struct {
	store         *store.Dynamo
	conversations *httpapi.Router
	prompts       *httpapi.Router
	usage         *httpapi.Router
}

// newAPI wires the routers as app.Deps.Router does for each function, on
// the real DynamoDB store over DynamoDB Local: ownership is enforced by the
// store's keys, so a stand-in store would not test it.
func newAPI(t testing.TB, dailyTokenLimit int64) *api {
	t.Helper()
	st := store.NewDynamo(dynamodblocal.TestTables(t))
	log := slog.New(slog.DiscardHandler)
	return &api{
		store:         st,
		conversations: &httpapi.Router{Function: manifest.ConversationAPI.Name, Log: log, Routes: (&httpapi.Conversations{Store: st}).Routes()},
		prompts:       &httpapi.Router{Function: manifest.PromptCRUD.Name, Log: log, Routes: (&httpapi.Prompts{Store: st}).Routes()},
		usage:         &httpapi.Router{Function: manifest.UsageHandler.Name, Log: log, Routes: (&httpapi.Usage{Store: st, DailyTokenLimit: dailyTokenLimit}).Routes()},
	}
}

// request is the event API Gateway's HTTP API delivers once its JWT
// authorizer has verified the token of sub, from the real payload
// (apigwfixtures); sub "" is a token without a subject, which the router
// must refuse on its own. The path is the route key's with params put in.
func request(sub, routeKey string, params, query map[string]string, body string) events.APIGatewayV2HTTPRequest {
	return apigwfixtures.HTTP{RouteKey: routeKey, PathParams: params, Query: query, Body: body, Claims: map[string]string{"sub": sub}}.Request()
}

// lambdaResponseLimit is Lambda's limit on what a synchronously invoked
// function returns: the API Gateway response envelope, in which the body
// is a JSON string, escaped once more.
const lambdaResponseLimit = 6_291_456

// envelopeSize is the size of what the function returns for resp, as
// json.Marshal writes it: it escapes <, > and & too (\u003c), the most any
// JSON encoder of the envelope writes (aws-lambda-go's leaves them as
// they are).
func envelopeSize(t testing.TB, resp events.APIGatewayV2HTTPResponse) int {
	t.Helper()
	b, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// call runs one request through rt and decodes its JSON body (nil when
// there is none, as for 204).
func call(t testing.TB, rt *httpapi.Router, ev events.APIGatewayV2HTTPRequest) (int, map[string]any) {
	t.Helper()
	resp, err := rt.Handle(t.Context(), ev)
	if err != nil {
		t.Fatalf("%s: %v", ev.RouteKey, err)
	}
	var out map[string]any
	if resp.Body != "" {
		if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
			t.Fatalf("%s: body is not JSON: %q", ev.RouteKey, resp.Body)
		}
	}
	return resp.StatusCode, out
}

// routeCase is one request of a route table and what it must answer: the
// status, for a failure the error code, and check of the body when set.
type routeCase struct {
	name     string
	user     string
	routeKey string
	params   map[string]string
	query    map[string]string
	body     string
	status   int
	code     string
	check    func(map[string]any) bool
}

// runRoutes sends the cases to rt in order, on the same data.
func runRoutes(t *testing.T, rt *httpapi.Router, cases []routeCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, rt, request(tt.user, tt.routeKey, tt.params, tt.query, tt.body))
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, body)
			}
			if tt.status >= 400 {
				checkError(t, body, tt.code)
			}
			if tt.check != nil && !tt.check(body) {
				t.Errorf("body %v", body)
			}
		})
	}
}

// checkError fails t unless body is the API's error body with code (any
// code when code is ""): clients branch on the code and show the message.
func checkError(t testing.TB, body map[string]any, code string) {
	t.Helper()
	e, _ := body["error"].(map[string]any)
	if e == nil || e["code"] == nil || e["code"] == "" || (code != "" && e["code"] != code) || e["message"] == nil || e["message"] == "" {
		t.Errorf("error body %v, want code %q and a message", body, code)
	}
}

// seedConversation stores a conversation of user last active at, holding
// one exchange as a finished reply leaves it, and returns its id.
func (a *api) seedConversation(t testing.TB, user, title string, at time.Time) string {
	t.Helper()
	ctx := t.Context()
	id := ids.New()
	if err := a.store.CreateConversation(ctx, store.Conversation{UserID: user, ConversationID: id, Title: title, CreatedAt: at, UpdatedAt: at}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []store.Message{
		{Role: store.RoleUser, Text: title},
		{Role: store.RoleAssistant, Text: "a reply", Model: config.DefaultModelID, StopReason: "end_turn", Usage: tokens.Usage{InputTokens: 10, OutputTokens: 20}},
	} {
		m.ConversationID, m.MessageID, m.UserID, m.CreatedAt, m.RequestID = id, ids.New(), user, at, "req-"+id
		if err := a.store.PutMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// seedPrompt stores a saved prompt of user and returns its id.
func (a *api) seedPrompt(t testing.TB, user, name, text string) string {
	t.Helper()
	now := time.Now()
	p := store.Prompt{UserID: user, PromptID: ids.New(), Name: name, Text: text, CreatedAt: now, UpdatedAt: now}
	if err := a.store.CreatePrompt(t.Context(), p, httpapi.MaxPromptsPerUser); err != nil {
		t.Fatal(err)
	}
	return p.PromptID
}

// counts is what a user has stored, to prove that requests of someone
// else changed nothing of theirs.
func (a *api) counts(t testing.TB, user string) (conversations, messages int) {
	t.Helper()
	page, err := a.store.ListConversations(t.Context(), user, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range page.Items {
		ms, err := a.store.ListMessages(t.Context(), c.ConversationID)
		if err != nil {
			t.Fatal(err)
		}
		messages += len(ms)
	}
	return len(page.Items), messages
}

// field is body[key] as a JSON object (nil when it is not one), so that a
// wrong body fails the assertion instead of panicking the test binary.
func field(body map[string]any, key string) map[string]any {
	m, _ := body[key].(map[string]any)
	return m
}

// list is body[key] as a list of JSON objects.
func list(body map[string]any, key string) []map[string]any {
	raw, _ := body[key].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, it := range raw {
		m, _ := it.(map[string]any)
		out = append(out, m)
	}
	return out
}
