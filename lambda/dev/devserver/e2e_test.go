package devserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/localissuer"
	"github.com/p2/buddy/lambda/dev/wsclient"
	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/wsapi"
)

// connectedUser is a fresh user of the shared server, connected, with the
// server and the test's context.
func connectedUser(t *testing.T, name string) (*Server, context.Context, *user) {
	t.Helper()
	srv := sharedServer(t)
	ctx := testCtx(t)
	u := newUser(t, srv, name)
	u.connect(ctx)
	return srv, ctx, u
}

func TestChatStreamsAndStoresTheReply(t *testing.T) {
	srv, ctx, alice := connectedUser(t, "alice")

	first := alice.chat(ctx, sendMessage{RequestID: "r1", Text: "[[tokens=60]] Hello there"})
	if first.Err != nil {
		t.Fatalf("error frame: %+v", *first.Err)
	}
	conv := first.Start.ConversationID
	sameMessage := true
	for _, d := range first.Deltas {
		sameMessage = sameMessage && d.MessageID == first.Start.MessageID && d.ConversationID == conv
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"start names the conversation", conv != ""},
		{"start names the assistant message", first.Start.MessageID != ""},
		// start goes out at acceptance, before the model is called: it
		// names the model that will answer, as configured.
		{"start names the configured model", first.Start.Model == srv.Model},
		{"deltas arrived", len(first.Deltas) > 0},
		{"every delta names the message", sameMessage},
		{"end closes the same message", first.End.MessageID == first.Start.MessageID && first.End.ConversationID == conv},
		// end names the model as the upstream reported it.
		{"end reports the stand-in's model", first.End.Model == StandInModelPrefix+srv.Model},
		{"end reports the output tokens", first.End.Usage != nil && first.End.Usage.OutputTokens > 0},
		{"end reports the stop reason", first.End.StopReason == "end_turn"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: start %+v end %+v", c.name, first.Start, first.End)
		}
	}

	stored := alice.conversation(ctx, conv)
	if len(stored.Messages) != 2 || stored.Messages[0].Role != "user" || stored.Messages[1].Role != "assistant" {
		t.Fatalf("stored messages: %+v", stored.Messages)
	}
	if got, want := stored.Messages[1].Text, first.Text(); got != want {
		t.Errorf("stored reply differs from the concatenated deltas:\nstored %q\ndeltas %q", got, want)
	}
	if a := stored.Messages[1]; a.Model != first.End.Model || a.Incomplete || a.Status != "complete" || a.ID != first.Start.MessageID {
		t.Errorf("stored reply: %+v", stored.Messages[1])
	}
	if stored.Messages[0].Text != "[[tokens=60]] Hello there" {
		t.Errorf("stored user message %q", stored.Messages[0].Text)
	}

	// A follow-up in the same conversation carries the history upstream.
	second := alice.chat(ctx, sendMessage{RequestID: "r2", ConversationID: conv, Text: "[[tokens=5]] And again"})
	if second.Err != nil || second.Start.ConversationID != conv {
		t.Fatalf("follow-up: %+v", second)
	}
	if got := len(alice.conversation(ctx, conv).Messages); got != 4 {
		t.Errorf("after a follow-up the conversation has %d messages, want 4", got)
	}
	var turns int
	for _, r := range srv.StandIn.Requests() {
		if n := len(r.Messages); n > 0 && strings.Contains(r.Messages[n-1].Content.Text(), "And again") {
			turns = n
		}
	}
	if turns != 3 {
		t.Errorf("the follow-up sent %d turns upstream, want 3 (user, assistant, user)", turns)
	}

	var list struct {
		Conversations []apiConversation `json:"conversations"`
	}
	if st := alice.api(ctx, http.MethodGet, "/conversations", nil, &list); st != 200 || len(list.Conversations) != 1 || list.Conversations[0].ID != conv {
		t.Errorf("GET /conversations: %d %+v", st, list)
	}

	var usage apiUsage
	if st := alice.api(ctx, http.MethodGet, "/usage", nil, &usage); st != 200 {
		t.Fatalf("GET /usage: %d", st)
	}
	wantOut := first.End.Usage.OutputTokens + second.End.Usage.OutputTokens
	if usage.Totals.OutputTokens != wantOut || usage.Totals.InputTokens == 0 {
		t.Errorf("usage totals %+v, want %d output tokens", usage.Totals, wantOut)
	}
	if len(usage.Days) != 1 || usage.Days[0].Model != first.End.Model || usage.Days[0].Day != time.Now().UTC().Format(time.DateOnly) {
		t.Errorf("usage rows %+v, want one row for today and %s", usage.Days, first.End.Model)
	}
	alice.ping(ctx)
}

func TestSavedPromptsAndAReplyUsingOne(t *testing.T) {
	srv, ctx, bob := connectedUser(t, "bob")

	var p apiPrompt
	if st := bob.api(ctx, http.MethodPost, "/prompts", map[string]string{"name": "Pirate", "text": "Answer like a pirate."}, &p); st != http.StatusCreated || p.ID == "" {
		t.Fatalf("POST /prompts: %d %+v", st, p)
	}
	var got apiPrompt
	steps := []struct {
		name       string
		method     string
		path       string
		body       any
		wantStatus int
	}{
		{"the prompt can be read back", http.MethodGet, "/prompts/" + p.ID, nil, http.StatusOK},
		{"the prompt can be changed", http.MethodPut, "/prompts/" + p.ID, map[string]string{"name": "Pirate", "text": "Answer like a pirate, briefly."}, http.StatusOK},
		{"the change is kept", http.MethodGet, "/prompts/" + p.ID, nil, http.StatusOK},
	}
	for _, s := range steps {
		if st := bob.api(ctx, s.method, s.path, s.body, &got); st != s.wantStatus {
			t.Errorf("%s: %s %s answered %d, want %d", s.name, s.method, s.path, st, s.wantStatus)
		}
	}
	if got.Text != "Answer like a pirate, briefly." {
		t.Errorf("prompt after PUT: %+v", got)
	}
	var list struct {
		Prompts []apiPrompt `json:"prompts"`
	}
	if st := bob.api(ctx, http.MethodGet, "/prompts", nil, &list); st != 200 || len(list.Prompts) != 1 {
		t.Errorf("GET /prompts: %d %+v", st, list)
	}

	marker := fmt.Sprintf("prompted-%d", time.Now().UnixNano())
	r := bob.chat(ctx, sendMessage{RequestID: "p1", PromptID: p.ID, Text: "[[tokens=5]] " + marker})
	if r.Err != nil {
		t.Fatalf("reply with a saved prompt: %+v", *r.Err)
	}
	system := ""
	for _, req := range srv.StandIn.Requests() {
		if n := len(req.Messages); n > 0 && strings.Contains(req.Messages[n-1].Content.Text(), marker) {
			system = req.System.Text()
		}
	}
	if system != "Answer like a pirate, briefly." {
		t.Errorf("the model received the system prompt %q, want the saved one", system)
	}
	if c := bob.conversation(ctx, r.Start.ConversationID); c.PromptID != p.ID {
		t.Errorf("the conversation records prompt %q, want %q", c.PromptID, p.ID)
	}

	if st := bob.api(ctx, http.MethodDelete, "/prompts/"+p.ID, nil, nil); st != http.StatusNoContent {
		t.Errorf("DELETE /prompts/{id}: %d", st)
	}
	if st := bob.api(ctx, http.MethodGet, "/prompts/"+p.ID, nil, nil); st != http.StatusNotFound {
		t.Errorf("GET a deleted prompt: %d, want 404", st)
	}
	r = bob.chat(ctx, sendMessage{RequestID: "p2", PromptID: p.ID, Text: "hi"})
	if r.Err == nil || r.Err.Code != errcode.NotFound {
		t.Errorf("sendMessage with a deleted prompt: %+v, want not_found", r)
	}
}

func TestUsersSeeOnlyTheirOwnData(t *testing.T) {
	srv, ctx, carol := connectedUser(t, "carol")
	var p apiPrompt
	if st := carol.api(ctx, http.MethodPost, "/prompts", map[string]string{"name": "Mine", "text": "private"}, &p); st != http.StatusCreated {
		t.Fatalf("POST /prompts: %d", st)
	}
	r := carol.chat(ctx, sendMessage{RequestID: "c1", Text: "[[tokens=5]] secret"})
	if r.Err != nil {
		t.Fatal(*r.Err)
	}
	conv := r.Start.ConversationID

	dave := newUser(t, srv, "dave")
	dave.connect(ctx)
	requests := []struct {
		name, method, path string
		body               any
		want               int
	}{
		{"another user's conversation is not found", http.MethodGet, "/conversations/" + conv, nil, 404},
		{"another user's conversation cannot be renamed", http.MethodPatch, "/conversations/" + conv, map[string]string{"title": "mine now"}, 404},
		{"another user's conversation cannot be deleted", http.MethodDelete, "/conversations/" + conv, nil, 404},
		{"another user's prompt is not found", http.MethodGet, "/prompts/" + p.ID, nil, 404},
		{"another user's prompt cannot be changed", http.MethodPut, "/prompts/" + p.ID, map[string]string{"name": "x", "text": "y"}, 404},
		{"another user's prompt cannot be deleted", http.MethodDelete, "/prompts/" + p.ID, nil, 404},
	}
	for _, rq := range requests {
		if st := dave.api(ctx, rq.method, rq.path, rq.body, nil); st != rq.want {
			t.Errorf("%s: %s %s answered %d, want %d", rq.name, rq.method, rq.path, st, rq.want)
		}
	}
	var convs struct {
		Conversations []apiConversation `json:"conversations"`
	}
	var prompts struct {
		Prompts []apiPrompt `json:"prompts"`
	}
	var usage apiUsage
	dave.api(ctx, http.MethodGet, "/conversations", nil, &convs)
	dave.api(ctx, http.MethodGet, "/prompts", nil, &prompts)
	dave.api(ctx, http.MethodGet, "/usage", nil, &usage)
	if len(convs.Conversations) != 0 || len(prompts.Prompts) != 0 || len(usage.Days) != 0 || usage.Totals.OutputTokens != 0 {
		t.Errorf("a new user's lists are not empty: %+v %+v %+v", convs, prompts, usage)
	}

	frames := []struct {
		name string
		msg  sendMessage
	}{
		{"replying in another user's conversation is not found", sendMessage{RequestID: "d1", ConversationID: conv, Text: "hi"}},
		{"using another user's prompt is not found", sendMessage{RequestID: "d2", PromptID: p.ID, Text: "hi"}},
	}
	for _, f := range frames {
		r := dave.chat(ctx, f.msg)
		if r.Err == nil || r.Err.Code != errcode.NotFound || r.Err.RequestID != f.msg.RequestID {
			t.Errorf("%s: %+v", f.name, r)
		}
	}
	if c := carol.conversation(ctx, conv); len(c.Messages) != 2 {
		t.Errorf("the owner's conversation changed: %+v", c.Messages)
	}
	if st := carol.api(ctx, http.MethodGet, "/prompts/"+p.ID, nil, nil); st != 200 {
		t.Errorf("the owner's prompt: %d", st)
	}
}

func TestBadFramesAnswerAnErrorAndKeepTheSocket(t *testing.T) {
	srv, ctx, erin := connectedUser(t, "erin")
	long := strings.Repeat("a", wsapi.MaxTextBytes+1)
	tests := []struct {
		name      string
		frame     string
		code      string
		requestID string
	}{
		{"invalid JSON", `{"action":`, errcode.BadRequest, ""},
		{"plain text", `hello`, errcode.BadRequest, ""},
		{"unknown action", `{"action":"dance","requestId":"b1"}`, errcode.BadRequest, "b1"},
		{"missing text", `{"action":"sendMessage","requestId":"b2"}`, errcode.BadRequest, "b2"},
		{"missing requestId", `{"action":"sendMessage","text":"hi"}`, errcode.BadRequest, ""},
		{"unknown field", `{"action":"sendMessage","requestId":"b3","text":"hi","extra":1}`, errcode.BadRequest, "b3"},
		{"text over the limit", `{"action":"sendMessage","requestId":"b4","text":"` + long + `"}`, errcode.TooLarge, "b4"},
		{"unknown conversation", `{"action":"sendMessage","requestId":"b5","conversationId":"nope","text":"hi"}`, errcode.NotFound, "b5"},
	}
	for _, tt := range tests {
		// A frame over 32 KB would close the socket (1009), as in AWS:
		// send large messages in frames a browser-independent client
		// may use.
		w, err := erin.ws.Writer(ctx, websocket.MessageText)
		if err != nil {
			t.Fatal(err)
		}
		for b := []byte(tt.frame); len(b) > 0; {
			n := min(len(b), wsapi.MaxFrameBytes)
			if _, err := w.Write(b[:n]); err != nil {
				t.Fatal(err)
			}
			b = b[n:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		f := erin.read(ctx)
		if f.Type != wsapi.TypeError || f.Code != tt.code || f.RequestID != tt.requestID || f.Message == "" {
			t.Errorf("%s: answered %s, want an error %s for %q", tt.name, f.Raw, tt.code, tt.requestID)
		}
		erin.ping(ctx)
	}
	if st := srv.Stats(); st.IntegrationTimeouts != 0 {
		t.Errorf("integration timeouts: %+v", st)
	}
}

func TestOversizeMessageClosesTheSocketLikeAPIGateway(t *testing.T) {
	_, ctx, frank := connectedUser(t, "frank")
	frank.sendRaw(ctx, []byte(`{"action":"sendMessage","requestId":"x","text":"`+strings.Repeat("a", 40*1024)+`"}`))
	_, _, err := frank.ws.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
		t.Errorf("a 40 KB frame: close status %v (%v), want 1009", got, err)
	}
}

func TestTokensAreVerifiedOnConnectAndOnTheHTTPAPI(t *testing.T) {
	srv := sharedServer(t)
	ctx := testCtx(t)
	other, err := localissuer.New(srv.Issuer().Issuer(), srv.Issuer().Audience(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(li *localissuer.Issuer, c jwt.RegisteredClaims) string {
		s, err := li.SignClaims(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	claims := func(mut func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
		c := jwt.RegisteredClaims{
			Issuer: srv.Issuer().Issuer(), Subject: "mallory", Audience: jwt.ClaimStrings{srv.Issuer().Audience()},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		}
		mut(&c)
		return c
	}
	valid, _ := srv.Token("mallory")
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"a token from /dev/token is accepted", valid, true},
		{"no token is refused", "", false},
		{"garbage is refused", "not-a-jwt", false},
		{"an expired token is refused", sign(srv.Issuer(), claims(func(c *jwt.RegisteredClaims) {
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour))
		})), false},
		{"another audience is refused", sign(srv.Issuer(), claims(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"someone-else"} })), false},
		{"another issuer is refused", sign(srv.Issuer(), claims(func(c *jwt.RegisteredClaims) { c.Issuer = "https://evil.example" })), false},
		{"a token signed by another key is refused", sign(other, claims(func(*jwt.RegisteredClaims) {})), false},
	}
	for _, tt := range tests {
		c, resp, err := websocket.Dial(ctx, srv.WebSocketURL+"?token="+tt.token, nil)
		if tt.ok {
			if err != nil {
				t.Errorf("%s: connect failed: %v", tt.name, err)
			} else {
				c.Close(websocket.StatusNormalClosure, "")
			}
		} else if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			if c != nil {
				c.CloseNow()
			}
			t.Errorf("%s: connect answered %v (%v), want 401", tt.name, resp, err)
		}
		var body map[string]any
		authz := ""
		if tt.token != "" {
			authz = "Bearer " + tt.token
		}
		st := callAPI(ctx, t, srv, authz, http.MethodGet, "/conversations", nil, &body)
		switch {
		case tt.ok && st != http.StatusOK:
			t.Errorf("%s: GET /conversations answered %d", tt.name, st)
		case !tt.ok && (st != http.StatusUnauthorized || body["message"] != "Unauthorized"):
			t.Errorf("%s: GET /conversations answered %d %v, want 401 Unauthorized", tt.name, st, body)
		}
	}
}

// startLongReply sends text (directives asking for a long reply) and
// reads the reply's start and its first deltas: what a client has when its
// socket drops. received holds the delta texts by seq.
func (u *user) startLongReply(ctx context.Context, requestID, text string, deltas int) (start wsclient.Frame, received map[int]string, lastSeq int) {
	u.t.Helper()
	u.send(ctx, sendMessage{Action: wsapi.ActionSendMessage, RequestID: requestID, Text: text})
	start = u.read(ctx)
	if start.Type != wsapi.TypeStart || start.MessageID == "" {
		u.t.Fatalf("first frame %s, want start", start.Raw)
	}
	received = map[int]string{}
	for i := range deltas {
		f := u.read(ctx)
		if f.Type != wsapi.TypeDelta || f.Seq == nil || *f.Seq != i || f.MessageID != start.MessageID {
			u.t.Fatalf("frame %s, want delta %d of message %s", f.Raw, i, start.MessageID)
		}
		received[i], lastSeq = f.Text, i
	}
	return start, received, lastSeq
}

// assembled is the reply text from frames by seq, 0..n-1.
func assembled(frames map[int]string) string {
	var b strings.Builder
	for seq := range len(frames) {
		b.WriteString(frames[seq])
	}
	return b.String()
}

// takeResumed adds the frames a resume sent to what the client had,
// checking that a frame it had already came back with the same text.
func takeResumed(t *testing.T, have map[int]string, afterSeq int, r wsclient.Reply) {
	t.Helper()
	for i, d := range r.Deltas {
		seq := afterSeq + 1 + i
		if old, ok := have[seq]; ok && old != d.Text {
			t.Errorf("frame %d came back as %q, first sent as %q", seq, d.Text, old)
		}
		have[seq] = d.Text
	}
}

func TestSocketClosedMidReplyKeepsTheReplyRunningForAResume(t *testing.T) {
	srv, ctx, gina := connectedUser(t, "gina")
	postsGoneBefore := srv.Stats().GonePosts

	// About three seconds of reply; the socket closes after two deltas.
	const words = 300
	start, have, last := gina.startLongReply(ctx, "m1", fmt.Sprintf("[[tokens=%d]] [[rate=100]] tell me a long story", words), 2)
	if err := gina.ws.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	// The reply goes on posting to the closed connection (410) rather
	// than stopping.
	eventually(ctx, t, func() string {
		if srv.Stats().GonePosts == postsGoneBefore {
			return "no post to the closed connection answered 410"
		}
		return ""
	})

	// A new connection resumes from the last frame it showed, asking for
	// that frame again: it must come back as it was.
	gina.connect(ctx)
	if err := gina.conn.Resume(ctx, "m1-resume", start.MessageID, last-1); err != nil {
		t.Fatal(err)
	}
	rest, err := gina.conn.CollectResumed(ctx, "m1-resume", last-1)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if rest.Err != nil {
		t.Fatalf("resume answered %+v", *rest.Err)
	}
	takeResumed(t, have, last-1, rest)
	text := assembled(have)
	checks := []struct {
		name string
		ok   bool
	}{
		{"the resumed frames name the message", len(rest.Deltas) > 0 && rest.Deltas[0].MessageID == start.MessageID},
		{"the reply ran to its end", rest.End.StopReason == "end_turn" && rest.End.MessageID == start.MessageID},
		// All of it: the model call was never cut off.
		{"the whole reply reached the client", len(strings.Fields(text)) == words},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: end %+v, %d words assembled", c.name, rest.End, len(strings.Fields(text)))
		}
	}
	c := gina.conversation(ctx, start.ConversationID)
	if len(c.Messages) != 2 {
		t.Fatalf("stored %+v, want the message and its reply", c.Messages)
	}
	if a := c.Messages[1]; a.ID != start.MessageID || a.Status != "complete" || a.Text != text {
		t.Errorf("stored reply %s %q, want complete and exactly what the client assembled %q", a.Status, a.Text, text)
	}

	// After the end, a resume from the top replays the stored reply with
	// the same frames.
	if err := gina.conn.Resume(ctx, "m1-replay", start.MessageID, -1); err != nil {
		t.Fatal(err)
	}
	replay, err := gina.conn.CollectResumed(ctx, "m1-replay", -1)
	if err != nil || replay.Err != nil {
		t.Fatalf("replay: %v %+v", err, replay.Err)
	}
	if len(replay.Deltas) != len(have) || replay.End.StopReason != "end_turn" {
		t.Errorf("replay: %d frames ending %+v, want the %d the client has", len(replay.Deltas), replay.End, len(have))
	}
	takeResumed(t, have, -1, replay)
}

func TestAnOrphanedReplyStopsAfterTheGrace(t *testing.T) {
	ctx := testCtx(t)
	cfg := withDB(t, Config{StateDir: t.TempDir(), Getenv: func(k string) string {
		if k == config.OrphanReplyGraceSeconds {
			return "1" // the shortest the setting takes
		}
		return ""
	}})
	srv, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	}()
	hana := newUser(t, srv, "hana")
	hana.connect(ctx)
	goneBefore := srv.StandIn.ClientGone()

	// Twenty seconds of reply, far longer than the grace.
	const words = 2000
	start, have, _ := hana.startLongReply(ctx, "o1", fmt.Sprintf("[[tokens=%d]] [[rate=100]] tell me a long story", words), 2)
	if err := hana.ws.CloseNow(); err != nil { // a dropped network: no close frame
		t.Fatal(err)
	}
	// Nobody resumes: the reply cancels its model call.
	if err := srv.StandIn.WaitClientGone(ctx, goneBefore+1); err != nil {
		t.Fatal(err)
	}
	var stored apiMessage
	eventually(ctx, t, func() string {
		c := hana.conversation(ctx, start.ConversationID)
		if len(c.Messages) != 2 {
			return fmt.Sprintf("%d messages stored", len(c.Messages))
		}
		if u := c.Messages[0]; u.Role != "user" || !strings.Contains(u.Text, "long story") {
			return fmt.Sprintf("user message %+v", u)
		}
		stored = c.Messages[1]
		switch a := stored; {
		case a.Role != "assistant" || a.ID != start.MessageID:
			return fmt.Sprintf("assistant message %+v", a)
		case a.Status != "incomplete" || !a.Incomplete:
			return fmt.Sprintf("the orphaned reply is stored %q, want incomplete", a.Status)
		case !strings.HasPrefix(a.Text, assembled(have)):
			return fmt.Sprintf("stored %q does not start with what the client saw %q", a.Text, assembled(have))
		case len(strings.Fields(a.Text)) >= words:
			return "the whole reply was produced: the upstream stream did not stop"
		}
		return ""
	})

	// A late resume gets what was stored, then the end of a stopped reply.
	hana.connect(ctx)
	if err := hana.conn.Resume(ctx, "o1-late", start.MessageID, -1); err != nil {
		t.Fatal(err)
	}
	late, err := hana.conn.CollectResumed(ctx, "o1-late", -1)
	if err != nil || late.Err != nil {
		t.Fatalf("late resume: %v %+v", err, late.Err)
	}
	takeResumed(t, have, -1, late)
	if late.Text() != stored.Text || late.End.StopReason != wsapi.StopReasonStopped {
		t.Errorf("late resume: %q ending %+v, want the stored %q, stopReason stopped", late.Text(), late.End, stored.Text)
	}
}

func TestFiftyUsersStreamAtOnce(t *testing.T) {
	srv := sharedServer(t)
	ctx := testCtx(t)
	const users = 50
	var wg sync.WaitGroup
	errs := make(chan error, users)
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- streamOnce(ctx, srv, i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// streamOnce is one user's whole exchange in the concurrency test. It
// reports errors instead of failing, since it runs off the test goroutine.
func streamOnce(ctx context.Context, srv *Server, i int) error {
	sub := fmt.Sprintf("crowd-%d-%d", i, time.Now().UnixNano())
	token, err := srv.Token(sub)
	if err != nil {
		return err
	}
	c, _, err := wsclient.Dial(ctx, srv.WebSocketURL, token)
	if err != nil {
		return fmt.Errorf("%s: connect: %w", sub, err)
	}
	defer c.WS.CloseNow()
	r, err := c.Chat(ctx, wsclient.SendMessage{RequestID: fmt.Sprintf("req-%d", i), Text: fmt.Sprintf("[[tokens=300]] [[rate=600]] user %d", i)})
	switch {
	case err != nil:
		return fmt.Errorf("%s: after %d deltas: %w", sub, len(r.Deltas), err)
	case r.Err != nil:
		return fmt.Errorf("%s: error frame %+v", sub, *r.Err)
	case len(r.Deltas) == 0:
		return fmt.Errorf("%s: no deltas", sub)
	}
	conv := r.Start.ConversationID
	var stored apiConversation
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.HTTPURL+"/conversations/"+conv, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&stored); err != nil || resp.StatusCode != 200 {
		return fmt.Errorf("%s: GET conversation: %d %v", sub, resp.StatusCode, err)
	}
	if len(stored.Messages) != 2 || stored.Messages[1].Text != r.Text() {
		return fmt.Errorf("%s: stored reply differs from the %d deltas", sub, len(r.Deltas))
	}
	// The reply's frames were all posted before end: the next frame must
	// be the answer to a ping, not a late duplicate.
	if err := c.Ping(ctx); err != nil {
		return fmt.Errorf("%s: after end: %w", sub, err)
	}
	return nil
}
