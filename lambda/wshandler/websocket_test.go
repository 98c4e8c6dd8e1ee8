package wshandler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/p2/buddy/lambda/chat"
	"github.com/p2/buddy/lambda/dev/fakemodel"
	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/wsapi"
)

// checkReply asserts the start / delta... / end shape and returns the
// concatenated text and the end frame.
func checkReply(t *testing.T, frames []wsapi.Frame, requestID string) (string, wsapi.Frame) {
	t.Helper()
	if len(frames) < 3 {
		t.Fatalf("got %d frames, want start, deltas, end: %+v", len(frames), frames)
	}
	start, end := frames[0], frames[len(frames)-1]
	if start.Type != wsapi.TypeStart || start.RequestID != requestID || start.ConversationID == "" || start.MessageID == "" || start.Model == "" {
		t.Fatalf("bad start frame %+v", start)
	}
	if end.Type != wsapi.TypeEnd || end.RequestID != requestID || end.MessageID != start.MessageID || end.ConversationID != start.ConversationID || end.Usage == nil || end.StopReason == "" || end.Model == "" {
		t.Fatalf("bad end frame %+v", end)
	}
	var text strings.Builder
	for i, f := range frames[1 : len(frames)-1] {
		if f.Type != wsapi.TypeDelta || f.Seq == nil || *f.Seq != i || f.RequestID != requestID || f.ConversationID != start.ConversationID || f.MessageID != start.MessageID {
			t.Fatalf("frame %d is not delta seq %d: %+v", i+1, i, f)
		}
		text.WriteString(f.Text)
	}
	return text.String(), end
}

func TestSendMessageStreamsTheReplyAndStoresIt(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	conn := h.connect("alice")

	frames := h.send(conn, sendFrame("r1", "", "", "Hello Buddy, how are you?"))
	text, end := checkReply(t, frames, "r1")
	if !strings.Contains(text, "stand-in") {
		t.Errorf("reply %q is not the stand-in's", text)
	}
	// start names the model that will answer before it is called; end
	// names the one the upstream reported.
	if frames[0].Model != "claude-opus-4-5-20251101" || end.Model != "standin/claude-opus-4-5-20251101" {
		t.Errorf("start model = %q, end model = %q", frames[0].Model, end.Model)
	}
	if end.Usage.InputTokens == 0 || end.Usage.OutputTokens == 0 {
		t.Errorf("end usage empty: %+v", end.Usage)
	}

	convID := frames[0].ConversationID
	status, body := h.http("conversations", "alice", "GET /conversations/{id}", map[string]string{"id": convID}, nil, "")
	if status != 200 {
		t.Fatalf("GET conversation: %d %v", status, body)
	}
	msgs := body["messages"].([]any)
	if len(msgs) != 2 {
		t.Fatalf("stored %d messages, want 2", len(msgs))
	}
	user, asst := msgs[0].(map[string]any), msgs[1].(map[string]any)
	if user["role"] != "user" || user["text"] != "Hello Buddy, how are you?" {
		t.Errorf("user message stored as %v", user)
	}
	if asst["role"] != "assistant" || asst["text"] != text || asst["messageId"] != frames[0].MessageID || asst["incomplete"] == true {
		t.Errorf("assistant message stored as %v, streamed %q", asst, text)
	}
	if body["title"] != "Hello Buddy, how are you?" {
		t.Errorf("title = %v", body["title"])
	}

	// The request sent upstream follows the configuration, and a new
	// conversation's history is its first message.
	req, _ := h.model.LastRequest()
	if len(req.Messages) != 1 || req.Messages[0].Role != "user" || req.Messages[0].Content.Text() != "Hello Buddy, how are you?" {
		t.Errorf("first turn sent upstream: %+v", req.Messages)
	}
	if !req.Has("temperature") || req.Has("top_p") || req.TopK == nil || *req.TopK != 40 || req.MaxTokens != 4096 || req.Model != "claude-opus-4-5-20251101" {
		t.Errorf("upstream request: temperature %v top_p %v top_k %v max %d model %s", req.Temperature, req.TopP, req.TopK, req.MaxTokens, req.Model)
	}

	// A follow-up in the same conversation carries the history.
	frames = h.send(conn, sendFrame("r2", convID, "", "And a follow-up"))
	checkReply(t, frames, "r2")
	req, _ = h.model.LastRequest()
	if len(req.Messages) != 3 || req.Messages[0].Role != "user" || req.Messages[1].Role != "assistant" || req.Messages[2].Content.Text() != "And a follow-up" {
		t.Errorf("history sent upstream: %+v", req.Messages)
	}

	// Usage is counted for the day and model.
	status, body = h.http("usage", "alice", "GET /usage", nil, nil, "")
	if status != 200 {
		t.Fatalf("usage: %d %v", status, body)
	}
	days := body["days"].([]any)
	if len(days) != 1 || days[0].(map[string]any)["model"] != "standin/claude-opus-4-5-20251101" || days[0].(map[string]any)["costUsd"] == nil {
		t.Errorf("usage rows: %v", days)
	}
}

func TestTopPIsSentInsteadOfTemperature(t *testing.T) {
	h := newHarness(t, harnessOpts{topP: true})
	conn := h.connect("alice")
	checkReply(t, h.send(conn, sendFrame("r1", "", "", "hi")), "r1")
	req, _ := h.model.LastRequest()
	if req.Has("temperature") || !req.Has("top_p") {
		t.Errorf("temperature sent: %v, top_p sent: %v", req.Has("temperature"), req.Has("top_p"))
	}
}

func TestPing(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	conn := h.connect("alice")
	frames := h.send(conn, `{"action":"ping"}`)
	if len(frames) != 1 || frames[0].Type != wsapi.TypePong {
		t.Fatalf("ping answered %+v", frames)
	}
}

func TestBadInputGetsAnErrorFrameAndStoresNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	alice := h.connect("alice")
	bob := h.connect("bob")
	// Bob owns a conversation and a prompt that Alice must not reach.
	bobReply := h.send(bob, sendFrame("b1", "", "", "bob's secret"))
	bobConv := bobReply[0].ConversationID
	_, p := h.http("prompts", "bob", "POST /prompts", nil, nil, `{"name":"pirate","text":"Talk like a pirate."}`)
	bobPrompt := p["id"].(string)

	tests := []struct {
		name      string
		body      string
		code      string
		requestID string
	}{
		{"invalid JSON", `{"action":"sendMessage",`, errcode.BadRequest, ""},
		{"not an object", `["sendMessage"]`, errcode.BadRequest, ""},
		{"plain text", `hello`, errcode.BadRequest, ""},
		{"unknown action", `{"action":"deleteEverything","requestId":"x1"}`, errcode.BadRequest, "x1"},
		{"missing action", `{"requestId":"x2","text":"hi"}`, errcode.BadRequest, "x2"},
		{"missing requestId", `{"action":"sendMessage","text":"hi"}`, errcode.BadRequest, ""},
		{"missing text", `{"action":"sendMessage","requestId":"x3"}`, errcode.BadRequest, "x3"},
		{"blank text", `{"action":"sendMessage","requestId":"x4","text":"   "}`, errcode.BadRequest, "x4"},
		{"text of the wrong type", `{"action":"sendMessage","requestId":"x5","text":42}`, errcode.BadRequest, "x5"},
		{"unknown field", `{"action":"sendMessage","requestId":"x6","text":"hi","conversationID":"typo"}`, errcode.BadRequest, "x6"},
		{"over-size text", sendFrame("x7", "", "", strings.Repeat("a", 100_001)), errcode.TooLarge, "x7"},
		// API Gateway never delivers such a frame; the parser refuses to read it.
		{"over-size frame", sendFrame("x8", "", "", strings.Repeat("a", wsapi.MaxMessageBytes)), errcode.TooLarge, ""},
		{"someone else's conversation", sendFrame("x9", bobConv, "", "let me in"), errcode.NotFound, "x9"},
		{"unknown conversation", sendFrame("x10", "01JD0000000000000000000000", "", "hi"), errcode.NotFound, "x10"},
		{"junk conversation id", sendFrame("x11", "../../etc", "", "hi"), errcode.NotFound, "x11"},
		{"someone else's prompt", sendFrame("x12", "", bobPrompt, "be a pirate"), errcode.NotFound, "x12"},
		{"junk prompt id", sendFrame("x13", "", "nope", "hi"), errcode.NotFound, "x13"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := h.model.Calls()
			frames := h.send(alice, tt.body)
			if len(frames) != 1 {
				t.Fatalf("got %d frames, want one error frame: %+v", len(frames), frames)
			}
			f := frames[0]
			if f.Type != wsapi.TypeError || f.Code != tt.code || f.RequestID != tt.requestID || f.Message == "" {
				t.Errorf("got %+v, want error %s for requestId %q", f, tt.code, tt.requestID)
			}
			if c, m := h.counts("alice"); c != 0 || m != 0 {
				t.Errorf("stored %d conversations and %d messages for a rejected frame", c, m)
			}
			if h.model.Calls() != calls {
				t.Error("the model was called for a rejected frame")
			}
			// The socket stays usable.
			if pong := h.send(alice, `{"action":"ping"}`); len(pong) != 1 || pong[0].Type != wsapi.TypePong {
				t.Errorf("ping after a bad frame answered %+v", pong)
			}
		})
	}
	if c, m := h.counts("bob"); c != 1 || m != 2 {
		t.Errorf("bob's data changed: %d conversations, %d messages", c, m)
	}
}

func TestBinaryFrameIsRejected(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	conn := h.connect("alice")
	ev := wsEvent(conn, "$default", "AAEC")
	ev.IsBase64Encoded = true
	if _, err := h.ws.Route(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if f := h.posts.take(conn); len(f) != 1 || f[0].Code != errcode.BadRequest {
		t.Errorf("binary frame answered %+v", f)
	}
}

func TestUnknownConnectionIsUnauthorized(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	frames := h.send("never-connected", sendFrame("r1", "", "", "hi"))
	if len(frames) != 1 || frames[0].Code != errcode.Unauthorized || frames[0].RequestID != "r1" {
		t.Errorf("got %+v", frames)
	}
}

func TestConnectVerifiesTheToken(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	other, err := newOtherIssuer(h.issuer.Issuer(), h.issuer.Audience())
	if err != nil {
		t.Fatal(err)
	}
	expired, err := h.issuer.SignClaims(jwt.RegisteredClaims{
		Issuer: h.issuer.Issuer(), Audience: jwt.ClaimStrings{h.issuer.Audience()}, Subject: "alice",
		IssuedAt: jwt.NewNumericDate(time.Now().Add(-2 * time.Hour)), ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Hour)),
	})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := other.Sign("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		query  map[string]string
		status int
	}{
		{"valid token", map[string]string{"token": h.token("alice")}, 200},
		{"missing token", nil, 401},
		{"empty token", map[string]string{"token": ""}, 401},
		{"expired token", map[string]string{"token": expired}, 401},
		{"wrongly signed token", map[string]string{"token": forged}, 401},
		{"garbage", map[string]string{"token": "not.a.jwt"}, 401},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := fmt.Sprintf("c%d", i)
			ev := wsEvent(conn, "$connect", "")
			ev.QueryStringParameters = tt.query
			resp, err := h.ws.Connect(context.Background(), ev)
			if err != nil || resp.StatusCode != tt.status {
				t.Fatalf("status %d err %v, want %d", resp.StatusCode, err, tt.status)
			}
			_, err = h.store.GetConnection(context.Background(), conn)
			if stored := err == nil; stored != (tt.status == 200) {
				t.Errorf("connection stored = %v", stored)
			}
		})
	}
}

func TestDisconnectForgetsTheConnection(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	conn := h.connect("alice")
	if _, err := h.ws.Disconnect(context.Background(), wsEvent(conn, "$disconnect", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.GetConnection(context.Background(), conn); err != store.ErrNotFound {
		t.Errorf("connection still there: %v", err)
	}
}

// The handler caches connections per environment, but never past the
// connection's expiry: a socket held beyond it must reconnect.
func TestCachedConnectionStillExpires(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	now := time.Now()
	clock := func() time.Time { return now }
	h.ws.Now, h.store.Now = clock, clock
	conn := h.connect("alice")

	if frames := h.send(conn, `{"action":"ping","requestId":"p1"}`); len(frames) != 1 || frames[0].Type != wsapi.TypePong {
		t.Fatalf("ping before expiry: %+v", frames)
	}
	now = now.Add(h.ws.ConnectionTTL)
	frames := h.send(conn, `{"action":"ping","requestId":"p2"}`)
	if len(frames) != 1 || frames[0].Code != errcode.Unauthorized {
		t.Errorf("ping after expiry: %+v, want unauthorized", frames)
	}
}

func TestSavedPromptBecomesTheSystemPrompt(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	conn := h.connect("alice")
	_, p := h.http("prompts", "alice", "POST /prompts", nil, nil, `{"name":"pirate","text":"Talk like a pirate."}`)
	promptID := p["id"].(string)

	frames := h.send(conn, sendFrame("r1", "", promptID, "hello"))
	checkReply(t, frames, "r1")
	req, _ := h.model.LastRequest()
	if req.System.Text() != "Talk like a pirate." {
		t.Errorf("system prompt sent: %q", req.System.Text())
	}
	// The conversation keeps its prompt for follow-ups.
	checkReply(t, h.send(conn, sendFrame("r2", frames[0].ConversationID, "", "again")), "r2")
	if req, _ = h.model.LastRequest(); req.System.Text() != "Talk like a pirate." {
		t.Errorf("follow-up lost the system prompt: %q", req.System.Text())
	}
}

func TestQuotaIsEnforcedBeforeTheModelIsCalled(t *testing.T) {
	// A send reserves its input's bound and its max tokens (250): the
	// first fits the 400 of the day, and uses some 200 of them.
	h := newHarness(t, harnessOpts{limit: 400, maxTokens: 250})
	conn := h.connect("alice")
	checkReply(t, h.send(conn, sendFrame("r1", "", "", "first [[tokens=200]]")), "r1")
	calls := h.model.Calls()
	_, before := h.counts("alice")
	frames := h.send(conn, sendFrame("r2", "", "", "second"))
	if len(frames) != 1 || frames[0].Code != errcode.QuotaExceeded || frames[0].RequestID != "r2" {
		t.Fatalf("got %+v, want quota_exceeded", frames)
	}
	if h.model.Calls() != calls {
		t.Error("the model was called past the quota")
	}
	if _, after := h.counts("alice"); after != before {
		t.Errorf("messages stored past the quota: %d -> %d", before, after)
	}
	// Another user is not affected.
	checkReply(t, h.send(h.connect("bob"), sendFrame("b1", "", "", "hi")), "b1")
}

func TestModelFaults(t *testing.T) {
	tests := []struct {
		name string
		text string
		// want: the error code, or "" for a complete reply
		code string
		// deltasBeforeError: the reply had streamed text before failing
		partial bool
	}{
		{"429 after retries", "[[fault=429]]", errcode.RateLimited, false},
		{"529 overloaded after retries", "[[fault=529]]", errcode.RateLimited, false},
		{"500 after retries", "[[fault=500]]", errcode.UpstreamError, false},
		{"529 once then success", "[[fault=529]] [[times=1]]", "", false},
		{"error event mid-stream", "[[fault=midstream]] [[after=5]]", errcode.RateLimited, true},
		{"model stops sending", "[[fault=hang]] [[after=3]]", errcode.UpstreamError, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Long enough that the text before a silence always arrives
			// first, even on a loaded machine under -race.
			h := newHarness(t, harnessOpts{idleTimeout: time.Second})
			conn := h.connect("alice")
			frames := h.send(conn, sendFrame("r1", "", "", "hi "+tt.text))
			last := frames[len(frames)-1]
			if tt.code == "" {
				checkReply(t, frames, "r1")
				return
			}
			if last.Type != wsapi.TypeError || last.Code != tt.code || last.RequestID != "r1" || last.MessageID != frames[0].MessageID {
				t.Fatalf("last frame %+v, want error %s", last, tt.code)
			}
			// The user's message stays stored; a partial reply is stored
			// incomplete and equals the deltas sent.
			var deltas strings.Builder
			for _, f := range frames {
				if f.Type == wsapi.TypeDelta {
					deltas.WriteString(f.Text)
				}
			}
			page, _ := h.store.ListConversations(context.Background(), "alice", 10, "")
			if len(page.Items) != 1 {
				t.Fatalf("%d conversations stored", len(page.Items))
			}
			msgs, _ := h.store.ListMessages(context.Background(), page.Items[0].ConversationID)
			if msgs[0].Role != store.RoleUser {
				t.Fatalf("user message not stored first: %+v", msgs)
			}
			// The reply's message says how it ended.
			if len(msgs) != 2 {
				t.Fatalf("stored %d messages, want the user's and the reply's", len(msgs))
			}
			if tt.partial {
				if deltas.Len() == 0 || msgs[1].Status != store.StatusIncomplete || msgs[1].Text != deltas.String() {
					t.Errorf("partial reply: deltas %q, stored %+v", deltas.String(), msgs[1])
				}
			} else if msgs[1].Status != store.StatusFailed || msgs[1].Text != "" || msgs[1].ErrorCode != tt.code {
				t.Errorf("failed reply stored as %+v", msgs[1])
			}
		})
	}
}

// A reply whose client left keeps running, waiting for a resume; when
// none comes within the orphan grace it stops upstream and is stored
// incomplete, with the tokens it produced counted.
func TestOrphanedReplyStopsAfterTheGrace(t *testing.T) {
	h := newHarness(t, harnessOpts{grace: 200 * time.Millisecond})
	conn := h.connect("alice")
	h.posts.goneAfter[conn] = 4 // start + 3 deltas, then 410
	frames := h.send(conn, sendFrame("r1", "", "", "tell me a long story [[tokens=5000]] [[rate=500]]"))
	if len(frames) != 4 {
		t.Fatalf("got %d frames before the client left", len(frames))
	}
	if err := h.model.WaitClientGone(t.Context(), 1); err != nil {
		t.Fatalf("upstream stream not stopped: %v", err)
	}
	page, _ := h.store.ListConversations(context.Background(), "alice", 10, "")
	msgs, _ := h.store.ListMessages(context.Background(), page.Items[0].ConversationID)
	if len(msgs) != 2 {
		t.Fatalf("stored %+v", msgs)
	}
	m := msgs[1]
	var sent strings.Builder
	for _, f := range frames[1:] {
		sent.WriteString(f.Text)
	}
	// What was produced after the client left is kept too.
	if m.Status != store.StatusIncomplete || !strings.HasPrefix(m.Text, sent.String()) || len(m.Text) <= sent.Len() {
		t.Errorf("stored %q (%s), want more than the %q sent", m.Text, m.Status, sent.String())
	}
	words := int64(len(strings.Fields(m.Text)))
	if m.Usage.OutputTokens < words || m.Usage.OutputTokens >= 5000 || !m.Usage.Estimated {
		t.Errorf("counted %+v for %d words produced", m.Usage, words)
	}
}

// A reply job travels as an async invocation's payload, and one Lambda
// gives up on waits in the failure queues for days: it carries ids and
// numbers, never what the user wrote.
func TestAReplyJobCarriesNoText(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	conn := h.connect("alice")
	const words = "the user's own words, not for a queue"
	tests := []struct {
		name     string
		followUp bool
	}{
		{"a new conversation's first message", false},
		{"a follow-up", true},
	}
	conversationID := ""
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.followUp {
				conversationID = ""
			}
			frames := h.send(conn, sendFrame(fmt.Sprint("r", i), conversationID, "", words))
			if len(frames) == 0 || frames[len(frames)-1].Type != wsapi.TypeEnd {
				t.Fatalf("reply: %+v", frames)
			}
			conversationID = frames[0].ConversationID
			payloads := h.disp.payloads()
			last := payloads[len(payloads)-1]
			if strings.Contains(string(last), "user's own words") {
				t.Errorf("the job carries the message's text: %s", last)
			}
			if len(last) > manifest.AsyncPayloadLimit {
				t.Errorf("payload %d bytes, limit %d", len(last), manifest.AsyncPayloadLimit)
			}
			var job chat.Job
			if err := json.Unmarshal(last, &job); err != nil || job.ConversationID != conversationID || job.Reserved <= 0 {
				t.Errorf("job %+v (%v): want the conversation's ids and the reservation", job, err)
			}
		})
	}
}

var _ = fakemodel.DefaultTokens
