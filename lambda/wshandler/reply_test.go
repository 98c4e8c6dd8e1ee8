package wshandler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/p2/buddy/lambda/chat"
	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/wsapi"
	"github.com/p2/buddy/lambda/wshandler"
)

func stopFrame(requestID, messageID string) string {
	return fmt.Sprintf(`{"action":"stop","requestId":%q,"messageId":%q}`, requestID, messageID)
}

func resumeFrame(requestID, messageID string, afterSeq int) string {
	return fmt.Sprintf(`{"action":"resume","requestId":%q,"messageId":%q,"afterSeq":%d}`, requestID, messageID, afterSeq)
}

// longReply asks the stand-in for a reply long and slow enough to act on
// while it streams.
const longReply = "tell me a long story [[tokens=400]] [[rate=400]]"

// replyFrames is a reply as one connection received it: its delta frames
// by seq (checked contiguous from first), and its last frame.
func replyFrames(t *testing.T, frames []wsapi.Frame, requestID, messageID string) (seqs map[int]string, first int, last wsapi.Frame) {
	t.Helper()
	seqs = map[int]string{}
	first = -1
	for _, f := range frames {
		if f.RequestID != requestID || f.MessageID != messageID {
			t.Fatalf("frame %+v does not carry requestId %s and messageId %s", f, requestID, messageID)
		}
		switch f.Type {
		case wsapi.TypeDelta:
			if first < 0 {
				first = *f.Seq
			}
			if *f.Seq != first+len(seqs) {
				t.Fatalf("delta seq %d after %d deltas from %d: not contiguous", *f.Seq, len(seqs), first)
			}
			seqs[*f.Seq] = f.Text
		case wsapi.TypeStart:
		default:
			last = f
		}
	}
	return seqs, first, last
}

// storedReply reads the reply's message.
func (h *harness) storedReply(user, conversationID, messageID string) store.Message {
	h.t.Helper()
	m, err := h.store.GetMessage(context.Background(), user, conversationID, messageID)
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

// Resume: from another connection (after a reconnect) and from another
// handler instance, while the reply runs or after it ended, the frames
// after afterSeq come again with the same seq and text, then the rest.
func TestResumeGivesTheRestOfTheReplyGapFree(t *testing.T) {
	tests := []struct {
		name          string
		otherInstance bool
		afterEnd      bool
	}{
		{"mid-reply from a new connection", false, false},
		{"mid-reply on another handler instance", true, false},
		{"after the reply ended", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{async: true})
			first := h.connect("alice")
			h.deliver(h.ws, first, sendFrame("r1", "", "", longReply))
			got := h.posts.waitFor(t, first, func(f []wsapi.Frame) bool { return deltas(f) >= 5 })
			start := got[0]
			h.posts.close(first) // the socket drops
			if tt.afterEnd {
				h.wait()
			}

			// The client saw some frames; it resumes two before its last,
			// so the overlap shows the same seq carries the same text.
			seen, _, _ := replyFrames(t, h.posts.peek(first), "r1", start.MessageID)
			afterSeq := len(seen) - 3
			ws := h.ws
			if tt.otherInstance {
				ws = h.instance()
			}
			second := h.connect("alice")
			h.deliver(ws, second, resumeFrame("r2", start.MessageID, afterSeq))
			resumed := h.posts.waitFor(t, second, ended)
			h.wait()

			seqs, from, last := replyFrames(t, resumed, "r2", start.MessageID)
			if from != afterSeq+1 {
				t.Errorf("resume began at seq %d, want %d", from, afterSeq+1)
			}
			for seq, text := range seen {
				if r, ok := seqs[seq]; ok && r != text {
					t.Errorf("seq %d was %q, resumed as %q", seq, text, r)
				}
			}
			if last.Type != wsapi.TypeEnd || last.StopReason != "end_turn" {
				t.Fatalf("resume ended with %+v", last)
			}
			var text strings.Builder
			for seq := range from + len(seqs) {
				if seq < from {
					text.WriteString(seen[seq])
				} else {
					text.WriteString(seqs[seq])
				}
			}
			m := h.storedReply("alice", start.ConversationID, start.MessageID)
			if m.Text != text.String() || m.Status != store.StatusComplete {
				t.Errorf("stored %q (%s); the client assembled %q", m.Text, m.Status, text.String())
			}
			if n := h.model.Calls(); n != 1 {
				t.Errorf("the model was called %d times", n)
			}
		})
	}
}

// Stop: from another connection on another instance, the running reply
// ends with stopReason stopped; what was produced is stored and counted.
func TestStopEndsTheReplyAndKeepsWhatWasProduced(t *testing.T) {
	h := newHarness(t, harnessOpts{async: true})
	conn := h.connect("alice")
	h.deliver(h.ws, conn, sendFrame("r1", "", "", "tell me a long story [[tokens=100000]] [[rate=200]]"))
	got := h.posts.waitFor(t, conn, func(f []wsapi.Frame) bool { return deltas(f) >= 3 })
	start := got[0]

	other := h.connect("alice")
	h.deliver(h.instance(), other, stopFrame("s1", start.MessageID))
	frames := h.posts.waitFor(t, conn, ended)
	if err := h.model.WaitClientGone(t.Context(), 1); err != nil {
		t.Fatalf("upstream not cancelled: %v", err)
	}
	h.wait()
	seqs, _, last := replyFrames(t, frames, "r1", start.MessageID)
	if last.Type != wsapi.TypeEnd || last.StopReason != wsapi.StopReasonStopped || last.Usage == nil {
		t.Fatalf("reply ended with %+v", last)
	}
	var text strings.Builder
	for seq := range len(seqs) {
		text.WriteString(seqs[seq])
	}
	m := h.storedReply("alice", start.ConversationID, start.MessageID)
	if m.Status != store.StatusStopped || m.Text != text.String() || m.StopReason != wsapi.StopReasonStopped {
		t.Errorf("stored %q (%s, %s), streamed %q", m.Text, m.Status, m.StopReason, text.String())
	}
	// A reply cut short counts what it produced, not the one token the
	// upstream reported at its start.
	if words := int64(len(strings.Fields(m.Text))); m.Usage.OutputTokens < words || !m.Usage.Estimated || last.Usage.OutputTokens != m.Usage.OutputTokens {
		t.Errorf("counted %+v (end said %+v) for %d words", m.Usage, last.Usage, words)
	}
	// A stop after the end leaves the reply as it is.
	if f := h.send(other, stopFrame("s2", start.MessageID)); len(f) != 0 {
		t.Errorf("stop after the end answered %+v", f)
	}
	if m2 := h.storedReply("alice", start.ConversationID, start.MessageID); m2.Text != m.Text || m2.Status != m.Status {
		t.Errorf("stop after the end changed the reply to %+v", m2)
	}
}

// Another user's (or an unknown) messageId is not found, for stop and
// resume alike; a malformed one too.
func TestStopAndResumeOfAnotherUsersReplyAreNotFound(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	alice := h.connect("alice")
	start := h.send(alice, sendFrame("r1", "", "", "hi"))[0]
	bob := h.connect("bob")
	tests := []struct {
		name, frame string
	}{
		{"stop of another user's reply", stopFrame("x1", start.MessageID)},
		{"resume of another user's reply", resumeFrame("x1", start.MessageID, -1)},
		{"stop of an unknown reply", stopFrame("x1", "01JD0000000000000000000000")},
		{"resume of an unknown reply", resumeFrame("x1", "01JD0000000000000000000000", -1)},
		{"resume of a junk id", resumeFrame("x1", "../x", -1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := h.send(bob, tt.frame)
			if len(f) != 1 || f[0].Type != wsapi.TypeError || f[0].Code != errcode.NotFound || f[0].RequestID != "x1" {
				t.Errorf("answered %+v, want not_found", f)
			}
		})
	}
}

// Deleting the conversation while its reply streams stops the reply and
// leaves no row behind; the tokens spent are still counted.
func TestDeleteDuringAReplyStopsItAndLeavesNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{async: true})
	conn := h.connect("alice")
	h.deliver(h.ws, conn, sendFrame("r1", "", "", "tell me a long story [[tokens=100000]] [[rate=200]]"))
	start := h.posts.waitFor(t, conn, func(f []wsapi.Frame) bool { return deltas(f) >= 3 })[0]
	if st, _ := h.http("conversations", "alice", "DELETE /conversations/{id}", map[string]string{"id": start.ConversationID}, nil, ""); st != 204 {
		t.Fatalf("DELETE answered %d", st)
	}
	frames := h.posts.waitFor(t, conn, ended)
	if err := h.model.WaitClientGone(t.Context(), 1); err != nil {
		t.Fatalf("upstream not cancelled: %v", err)
	}
	h.wait()
	if last := frames[len(frames)-1]; last.Type != wsapi.TypeError || last.Code != errcode.NotFound {
		t.Errorf("reply ended with %+v", last)
	}
	if msgs, _ := h.store.ListMessages(context.Background(), start.ConversationID); len(msgs) != 0 {
		t.Errorf("rows left behind: %+v", msgs)
	}
	if _, err := h.store.GetReply(context.Background(), start.MessageID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("reply record left behind: %v", err)
	}
	if used, reserved, _ := h.store.Today(context.Background(), "alice", chat.Day(time.Now())); used == 0 || reserved != 0 {
		t.Errorf("today used %d reserved %d: want the spent tokens counted, nothing reserved", used, reserved)
	}
}

// A job delivered twice streams, stores and bills once.
func TestAJobDeliveredTwiceRunsOnce(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	var jobs []chat.Job
	h.ws.Chat.Dispatch = dispatchFunc(func(_ context.Context, job chat.Job) error { jobs = append(jobs, job); return nil })
	conn := h.connect("alice")
	start := h.send(conn, sendFrame("r1", "", "", "hi"))[0]
	payload, err := jobs[0].Payload()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { _, _ = h.ws.Message(context.Background(), payload) })
	}
	wg.Wait()
	if n := h.model.Calls(); n != 1 {
		t.Errorf("the model was called %d times", n)
	}
	frames := h.posts.take(conn)
	ends := 0
	for _, f := range frames {
		if f.Type == wsapi.TypeEnd {
			ends++
		}
	}
	if ends != 1 {
		t.Errorf("%d end frames: %+v", ends, frames)
	}
	m := h.storedReply("alice", start.ConversationID, start.MessageID)
	rows, err := h.store.ListUsage(context.Background(), "alice", chat.Day(time.Now()), chat.Day(time.Now()))
	if err != nil || len(rows) != 1 || rows[0].Usage.OutputTokens != m.Usage.OutputTokens {
		t.Errorf("usage rows %+v (%v), want the one reply's %+v", rows, err, m.Usage)
	}
}

// abandon delivers job to the message function as its failure
// destination's queue does: Lambda's invocation record with the job as its
// requestPayload.
func (h *harness) abandon(job chat.Job) {
	h.t.Helper()
	body, _ := json.Marshal(map[string]any{
		"version":         "1.0",
		"requestContext":  map[string]any{"condition": "EventAgeExceeded", "approximateInvokeCount": 0},
		"requestPayload":  job,
		"responseContext": map[string]any{"statusCode": 200},
	})
	ev, _ := json.Marshal(events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-1", EventSource: "aws:sqs", Body: string(body)}}})
	out, err := h.instance().Message(context.Background(), ev)
	if err != nil {
		h.t.Fatal(err)
	}
	if r, ok := out.(events.SQSEventResponse); !ok || len(r.BatchItemFailures) != 0 {
		h.t.Errorf("queue batch answered %#v", out)
	}
}

type dispatchFunc func(context.Context, chat.Job) error

func (f dispatchFunc) Dispatch(ctx context.Context, job chat.Job) error { return f(ctx, job) }

// A job that never runs is not silent: the client gets an error for its
// messageId and the message says failed; the reservation is given back.
func TestAJobThatNeverRunsFailsTheReply(t *testing.T) {
	tests := []struct {
		name string
		// lose takes the job out of the client's hands the way it is lost.
		lose func(h *harness, job chat.Job)
	}{
		{"the dispatch is refused", nil},
		{"Lambda gives up on the invocation", (*harness).abandon},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{limit: 100_000})
			var jobs []chat.Job
			if tt.lose == nil {
				h.ws.Chat.Dispatch = dispatchFunc(func(context.Context, chat.Job) error { return errors.New("throttled") })
			} else {
				h.ws.Chat.Dispatch = dispatchFunc(func(_ context.Context, job chat.Job) error { jobs = append(jobs, job); return nil })
			}
			conn := h.connect("alice")
			frames := h.send(conn, sendFrame("r1", "", "", "hi"))
			if tt.lose != nil {
				tt.lose(h, jobs[0])
				frames = append(frames, h.posts.take(conn)...)
			}
			if len(frames) != 2 || frames[0].Type != wsapi.TypeStart || frames[1].Type != wsapi.TypeError || frames[1].MessageID != frames[0].MessageID || frames[1].RequestID != "r1" {
				t.Fatalf("frames %+v, want start then an error for its messageId", frames)
			}
			_, body := h.http("conversations", "alice", "GET /conversations/{id}", map[string]string{"id": frames[0].ConversationID}, nil, "")
			msgs := body["messages"].([]any)
			if len(msgs) != 2 || msgs[1].(map[string]any)["status"] != store.StatusFailed || msgs[0].(map[string]any)["text"] != "hi" {
				t.Errorf("stored %v", msgs)
			}
			if used, reserved, _ := h.store.Today(context.Background(), "alice", chat.Day(time.Now())); used != 0 || reserved != 0 {
				t.Errorf("today used %d reserved %d, want nothing", used, reserved)
			}
			if h.model.Calls() != 0 {
				t.Error("the model was called")
			}
		})
	}
}

// failingFinish is the store with every finish failing, as when DynamoDB
// keeps refusing the write.
type failingFinish struct{ store.Store }

func (failingFinish) FinishReply(context.Context, store.Finish) error {
	return errors.New("dynamodb: throttled after retries")
}

// end is sent only once the reply is stored; a store failure ends the
// reply with an internal error and the message says failed.
func TestAReplyThatCannotBeStoredEndsWithAnError(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.ws.Chat.Store = failingFinish{h.store}
	conn := h.connect("alice")
	frames := h.send(conn, sendFrame("r1", "", "", "hi"))
	last := frames[len(frames)-1]
	for _, f := range frames {
		if f.Type == wsapi.TypeEnd {
			t.Fatalf("end sent although the reply was not stored: %+v", frames)
		}
	}
	if last.Type != wsapi.TypeError || last.Code != errcode.Internal || last.MessageID != frames[0].MessageID {
		t.Fatalf("last frame %+v, want an internal error for the reply", last)
	}
	if m := h.storedReply("alice", frames[0].ConversationID, frames[0].MessageID); m.Status != store.StatusFailed {
		t.Errorf("stored status %q, want failed", m.Status)
	}
	h.checkNothingHeld(t, "alice")
}

// checkNothingHeld checks that no reply of user's holds a reservation or a
// running entry.
func (h *harness) checkNothingHeld(t *testing.T, user string) {
	t.Helper()
	_, reserved, err := h.store.Today(context.Background(), user, chat.Day(time.Now()))
	if err != nil || reserved != 0 {
		t.Errorf("reserved %d (%v), want 0", reserved, err)
	}
	if n, err := h.store.Running(context.Background(), user); err != nil || n != 0 {
		t.Errorf("%d replies running (%v), want 0", n, err)
	}
}

// The quota counts input and output, and a send reserves an upper bound
// of both: however many arrive at once, however long their histories, the
// day's counted tokens stay within the limit. The follow-ups carry 2,000
// bytes of history each; in conversations stored before their sizes were
// kept the acceptance cannot know it, and only the reply job's own measure
// keeps the bound (then a burst may well see every reply refused).
func TestConcurrentSendsStayWithinTheQuota(t *testing.T) {
	tests := []struct {
		name    string
		history int  // words of history in each conversation (0: new ones)
		sized   bool // whether the conversations keep their size
	}{
		{"new conversations", 0, true},
		{"follow-ups with long histories", 400, true},
		{"follow-ups in conversations stored before sizes were kept", 400, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const limit, sends, maxTokens = 10_000, 50, 500
			h := newHarness(t, harnessOpts{limit: limit, async: true, maxInflight: sends, maxTokens: maxTokens})
			conn := h.connect("alice")
			convs := make([]string, sends)
			if tt.history > 0 {
				for i := range convs {
					convs[i] = h.seedConversation("alice", tt.history, tt.sized)
				}
			}
			var wg sync.WaitGroup
			for i := range sends {
				wg.Go(func() {
					h.deliver(h.ws, conn, sendFrame(fmt.Sprint("r", i), convs[i], "", "write at length [[tokens=400]]"))
				})
			}
			wg.Wait()
			h.wait()
			used, reserved, err := h.store.Today(context.Background(), "alice", chat.Day(time.Now()))
			if err != nil {
				t.Fatal(err)
			}
			if used > limit || reserved != 0 || (tt.sized && used == 0) {
				t.Errorf("used %d (reserved %d) of a %d limit", used, reserved, limit)
			}
			refused := 0
			for _, f := range h.posts.take(conn) {
				if f.Type == wsapi.TypeError && f.Code == errcode.QuotaExceeded {
					refused++
				}
			}
			if refused == 0 {
				t.Error("no send was refused")
			}
			h.checkNothingHeld(t, "alice")
		})
	}
}

// seedConversation stores a conversation of user with two turns of words
// words each, keeping its size (InputBytes) when sized, else as one stored
// before conversations kept it.
func (h *harness) seedConversation(user string, words int, sized bool) string {
	h.t.Helper()
	ctx := context.Background()
	now := time.Now()
	text := strings.Repeat("word ", words/2)
	c := store.Conversation{UserID: user, ConversationID: ids.New(), Title: "old", CreatedAt: now, UpdatedAt: now}
	if sized {
		c.InputBytes = int64(2*len(text) + 100)
	}
	if err := h.store.CreateConversation(ctx, c); err != nil {
		h.t.Fatal(err)
	}
	for _, role := range []string{store.RoleUser, store.RoleAssistant} {
		m := store.Message{ConversationID: c.ConversationID, MessageID: ids.New(), UserID: user, Role: role, Text: text, CreatedAt: now, Status: store.StatusComplete}
		if err := h.store.PutMessage(ctx, m); err != nil {
			h.t.Fatal(err)
		}
	}
	return c.ConversationID
}

// A user has at most MAX_INFLIGHT_REPLIES_PER_USER replies running; one
// more answers rate_limited and stores nothing.
func TestInflightRepliesAreCapped(t *testing.T) {
	h := newHarness(t, harnessOpts{async: true, maxInflight: 2})
	conn := h.connect("alice")
	var starts []wsapi.Frame
	for i := range 2 {
		id := fmt.Sprint("r", i)
		h.deliver(h.ws, conn, sendFrame(id, "", "", "tell me a long story [[tokens=100000]] [[rate=100]]"))
		for _, f := range h.posts.take(conn) {
			if f.Type == wsapi.TypeStart && f.RequestID == id {
				starts = append(starts, f)
			}
		}
	}
	if len(starts) != 2 {
		t.Fatalf("started %+v, want two replies", starts)
	}
	_, before := h.counts("alice")
	// From another of the user's connections, whose frames are its own.
	if f := h.send(h.connect("alice"), sendFrame("r3", "", "", "one more")); len(f) != 1 || f[0].Code != errcode.RateLimited || f[0].RequestID != "r3" {
		t.Errorf("a third reply answered %+v, want rate_limited", f)
	}
	if _, after := h.counts("alice"); after != before {
		t.Errorf("stored %d messages for a refused send", after-before)
	}
	for _, s := range starts {
		h.send(conn, stopFrame("s-"+s.RequestID, s.MessageID))
	}
	h.wait()
	again := h.connect("alice")
	h.deliver(h.ws, again, sendFrame("r4", "", "", "now there is room"))
	h.wait()
	if f := h.posts.take(again); len(f) == 0 || f[len(f)-1].Type != wsapi.TypeEnd {
		t.Errorf("after the stops a send answered %+v", f)
	}
}

// A connection lives no longer than its token.
func TestAConnectionEndsWithItsToken(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	now := time.Now()
	clock := func() time.Time { return now }
	h.ws.Now = clock
	h.store.Now = clock
	tok, err := h.issuer.Sign("alice", 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	conn := "conn-short-token="
	ev := wsEvent(conn, "$connect", "")
	ev.QueryStringParameters = map[string]string{"token": tok}
	if resp, err := h.ws.Connect(context.Background(), ev); err != nil || resp.StatusCode != 200 {
		t.Fatalf("connect: %d %v", resp.StatusCode, err)
	}
	tests := []struct {
		name  string
		after time.Duration
		want  string
	}{
		{"before the token expires", time.Minute, wsapi.TypePong},
		{"after the token expired, though the TTL has not", 3 * time.Minute, wsapi.TypeError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = time.Now().Add(tt.after)
			f := h.send(conn, `{"action":"ping","requestId":"p"}`)
			if len(f) != 1 || f[0].Type != tt.want || (tt.want == wsapi.TypeError && f[0].Code != errcode.Unauthorized) {
				t.Errorf("answered %+v", f)
			}
		})
	}
}

// The soak: replies stream while their clients' sockets drop and resume at
// random, on random handler instances. Every reply is stored exactly once
// and every client's assembled text equals the stored text. Small by
// default; -soak=N runs N replies.
func TestSoakDroppedSocketsResume(t *testing.T) {
	n := *soakReplies
	h := newHarness(t, harnessOpts{async: true, maxInflight: n})
	instances := []*wshandler.WebSocket{h.ws, h.instance(), h.instance()}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			user := fmt.Sprint("soak-", i)
			conn := h.connect(user)
			h.deliver(instances[rng.IntN(len(instances))], conn, sendFrame("r", "", "", fmt.Sprintf("story [[tokens=%d]] [[rate=600]]", 50+rng.IntN(200))))
			start := h.posts.waitFor(t, conn, func(f []wsapi.Frame) bool { return len(f) > 0 })[0]
			text := map[int]string{}
			collect := func(frames []wsapi.Frame) (done bool) {
				for _, f := range frames {
					if f.Type == wsapi.TypeDelta {
						text[*f.Seq] = f.Text
					}
					done = done || f.Type == wsapi.TypeEnd
				}
				return done
			}
			for drops := 0; ; drops++ {
				wait := time.Duration(rng.IntN(150)) * time.Millisecond
				time.Sleep(wait)
				if collect(h.posts.peek(conn)) {
					break
				}
				if drops < 3 {
					h.posts.close(conn)
					conn = h.connect(user)
					h.deliver(instances[rng.IntN(len(instances))], conn, resumeFrame(fmt.Sprint("res", drops), start.MessageID, len(text)-1))
					continue
				}
				collect(h.posts.waitFor(t, conn, ended))
				break
			}
			var got strings.Builder
			for seq := range len(text) {
				got.WriteString(text[seq])
			}
			m := h.storedReply(user, start.ConversationID, start.MessageID)
			if m.Status != store.StatusComplete || m.Text != got.String() {
				t.Errorf("%s: stored %q (%s), assembled %q", user, m.Text, m.Status, got.String())
			}
		})
	}
	wg.Wait()
	h.wait()
	if calls := h.model.Calls(); calls != n {
		t.Errorf("%d model calls for %d replies", calls, n)
	}
}
