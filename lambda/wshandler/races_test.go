package wshandler_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p2/buddy/lambda/chat"
	"github.com/p2/buddy/lambda/dev/contention"
	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/wsapi"
	"github.com/p2/buddy/lambda/wshandler"
)

// The reply's promises under races (DESIGN §4 v3): end means stored and
// counted, whatever else arrives meanwhile; everything a reply took is
// given back whatever ends it; contention is never an internal error;
// resume is bounded; a reply's request is its own conversation up to its
// own message.

// Resumes from several sockets while the reply finishes cannot keep it
// from being stored and counted, nor make it end before it is.
func TestResumesDuringTheFinishCannotSkipIt(t *testing.T) {
	h := newHarness(t, harnessOpts{async: true, resumesPerMinute: 1000})
	first := h.connect("alice")
	h.deliver(h.ws, first, sendFrame("r1", "", "", "quick [[tokens=40]] [[rate=400]]"))
	start := h.posts.waitFor(t, first, func(f []wsapi.Frame) bool { return len(f) > 0 })[0]
	var (
		wg      sync.WaitGroup
		done    atomic.Bool
		resumes atomic.Int64
	)
	for i := range 3 {
		conn := h.connect("alice")
		ws := h.instance()
		wg.Go(func() {
			// The same resume again and again, as the review's attack
			// sent it: it used to bump the record's version every time.
			for !done.Load() {
				h.deliver(ws, conn, resumeFrame(fmt.Sprintf("x%d", i), start.MessageID, -1))
				resumes.Add(1)
			}
		})
	}
	frames := h.posts.waitFor(t, first, ended)
	// Some more resumes land after the end, then stop.
	time.Sleep(20 * time.Millisecond)
	done.Store(true)
	wg.Wait()
	h.wait()

	last := frames[len(frames)-1]
	if last.Type != wsapi.TypeEnd {
		t.Fatalf("the reply ended with %+v", last)
	}
	m := h.storedReply("alice", start.ConversationID, start.MessageID)
	if m.Status != store.StatusComplete || m.Usage.OutputTokens == 0 {
		t.Errorf("stored %q with %+v after %d resumes, want complete and counted", m.Status, m.Usage, resumes.Load())
	}
	rows, err := h.store.ListUsage(context.Background(), "alice", chat.Day(time.Now()), chat.Day(time.Now()))
	if err != nil || len(rows) != 1 || rows[0].Usage.OutputTokens != m.Usage.OutputTokens {
		t.Errorf("usage rows %+v (%v), want the reply's %+v", rows, err, m.Usage)
	}
	h.checkNothingHeld(t, "alice")
}

// A conversation deleted between the acceptance and the job (or the job
// never running at all) gives back the reservation and the running entry:
// the user is not left rate_limited.
func TestADeleteBeforeTheJobRunsGivesBackWhatTheReplyTook(t *testing.T) {
	tests := []struct {
		name string
		run  func(h *harness, job chat.Job)
	}{
		{"the job runs after the delete", func(h *harness, job chat.Job) {
			payload, err := job.Payload()
			if err != nil {
				h.t.Fatal(err)
			}
			if _, err := h.instance().Message(context.Background(), payload); err != nil {
				h.t.Fatal(err)
			}
		}},
		{"the failure queue delivers the job after the delete", (*harness).abandon},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{limit: 100_000, maxInflight: 2})
			var jobs []chat.Job
			h.ws.Chat.Dispatch = dispatchFunc(func(_ context.Context, job chat.Job) error { jobs = append(jobs, job); return nil })
			conn := h.connect("alice")
			for i := range 2 {
				frames := h.send(conn, sendFrame(fmt.Sprint("r", i), "", "", "hi"))
				if len(frames) != 1 || frames[0].Type != wsapi.TypeStart {
					t.Fatalf("send %d: %+v", i, frames)
				}
				if status, _ := h.http("conversations", "alice", "DELETE /conversations/{id}", map[string]string{"id": frames[0].ConversationID}, nil, ""); status != 204 {
					t.Fatalf("delete: %d", status)
				}
			}
			for _, job := range jobs {
				tt.run(h, job)
			}
			h.checkNothingHeld(t, "alice")
			h.ws.Chat.Dispatch = h.disp
			frames := h.send(conn, sendFrame("r3", "", "", "hello again"))
			if len(frames) == 0 || frames[len(frames)-1].Type != wsapi.TypeEnd {
				t.Errorf("a send after both deletes: %+v", frames)
			}
		})
	}
}

// DynamoDB cancels a user's writes that meet on the same items (the day's
// counter, the running set); after retries a send answers rate_limited
// with a retry hint, never internal, and stores nothing; a finish that
// meets conflicts is retried until it lands.
func TestContentionIsNeverAnInternalError(t *testing.T) {
	t.Run("a send that keeps meeting others is refused as rate_limited", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		usage := h.tables.Usage
		h.db.Conflict = func(w contention.Write) bool { return w.Op == "TransactWriteItems" && w.Has("Update", usage) }
		conn := h.connect("alice")
		frames := h.send(conn, sendFrame("r1", "", "", "hi"))
		if len(frames) != 1 || frames[0].Code != errcode.RateLimited || frames[0].RetryAfterMs <= 0 {
			t.Fatalf("frames %+v, want rate_limited with retryAfterMs", frames)
		}
		if c, m := h.counts("alice"); c != 0 || m != 0 {
			t.Errorf("stored %d conversations, %d messages", c, m)
		}
	})
	t.Run("a finish that meets conflicts again and again lands", func(t *testing.T) {
		h := newHarness(t, harnessOpts{})
		tb := h.tables
		// The finish is the one transaction that updates a live record
		// and puts a message; it meets more conflicts than one round of
		// retries absorbs.
		var n atomic.Int64
		h.db.Conflict = func(w contention.Write) bool {
			return w.Op == "TransactWriteItems" && w.Has("Update", tb.Replies) && w.Has("Put", tb.Messages) && n.Add(1) <= 12
		}
		conn := h.connect("alice")
		frames := h.send(conn, sendFrame("r1", "", "", "hi [[tokens=5]]"))
		if last := frames[len(frames)-1]; last.Type != wsapi.TypeEnd {
			t.Fatalf("last frame %+v, want end", last)
		}
		if m := h.storedReply("alice", frames[0].ConversationID, frames[0].MessageID); m.Status != store.StatusComplete {
			t.Errorf("stored %q", m.Status)
		}
		if n.Load() <= 12 {
			t.Errorf("only %d finishes tried: the conflicts never ran out", n.Load())
		}
		h.checkNothingHeld(t, "alice")
	})
}

// resume is bounded: a connection counts once however often it resumes, a
// reply keeps at most 32 connections, a user's resumes are limited a
// minute, connections that are gone give up their places, and a replay
// never holds the invocation beyond its budget.
func TestResumeIsBounded(t *testing.T) {
	t.Run("a connection that resumes again and again gets each frame once", func(t *testing.T) {
		h := newHarness(t, harnessOpts{async: true, resumesPerMinute: 1000})
		first := h.connect("alice")
		h.deliver(h.ws, first, sendFrame("r1", "", "", "a long one [[tokens=4000]] [[rate=400]]"))
		start := h.posts.waitFor(t, first, func(f []wsapi.Frame) bool { return deltas(f) >= 2 })[0]
		second := h.connect("alice")
		for i := range 100 {
			h.deliver(h.ws, second, resumeFrame(fmt.Sprint("x", i), start.MessageID, -1))
		}
		h.deliver(h.ws, first, resumeFrame("own", start.MessageID, -1))
		h.deliver(h.ws, first, stopFrame("s", start.MessageID))
		resumed := h.posts.waitFor(t, second, ended)
		h.wait()
		seqs, from, last := replyFrames(t, resumed, "x0", start.MessageID)
		if from != 0 || last.Type != wsapi.TypeEnd || len(seqs) != deltas(resumed) {
			t.Errorf("second connection: %d deltas from %d, %d frames in all, last %+v", len(seqs), from, len(resumed), last)
		}
		if own := h.posts.peek(first); deltas(own) != len(seqs) {
			t.Errorf("the asking connection got %d deltas, the reply has %d", deltas(own), len(seqs))
		}
	})
	t.Run("a user's resumes are limited a minute", func(t *testing.T) {
		h := newHarness(t, harnessOpts{resumesPerMinute: 3})
		conn := h.connect("alice")
		start := h.send(conn, sendFrame("r1", "", "", "hi [[tokens=3]]"))[0]
		for i := range 3 {
			if frames := h.send(conn, resumeFrame(fmt.Sprint("x", i), start.MessageID, -1)); !ended(frames) || frames[len(frames)-1].Type != wsapi.TypeEnd {
				t.Fatalf("resume %d: %+v", i, frames)
			}
		}
		frames := h.send(conn, resumeFrame("x3", start.MessageID, -1))
		if len(frames) != 1 || frames[0].Code != errcode.RateLimited || frames[0].RetryAfterMs <= 0 {
			t.Errorf("fourth resume: %+v, want rate_limited with a retry hint", frames)
		}
	})
	t.Run("at most 32 connections follow a reply; gone ones give up their places", func(t *testing.T) {
		h := newHarness(t, harnessOpts{async: true, resumesPerMinute: 1000})
		first := h.connect("alice")
		h.deliver(h.ws, first, sendFrame("r1", "", "", "a long one [[tokens=2000]] [[rate=400]]"))
		start := h.posts.waitFor(t, first, func(f []wsapi.Frame) bool { return len(f) > 0 })[0]
		conns := make([]string, store.MaxListeners)
		for i := range conns {
			conns[i] = h.connect("alice")
			h.deliver(h.ws, conns[i], resumeFrame("x", start.MessageID, -1))
		}
		extra := h.connect("alice")
		if frames := h.send(extra, resumeFrame("y", start.MessageID, -1)); len(frames) != 1 || frames[0].Code != errcode.RateLimited {
			t.Fatalf("the 33rd connection: %+v, want rate_limited", frames)
		}
		for _, c := range conns {
			h.posts.close(c) // the sockets drop
		}
		// Once the reply's job finds them gone (at its next frame) and
		// gives up their places, a new connection can follow it.
		for {
			h.deliver(h.ws, extra, resumeFrame("y", start.MessageID, -1))
			if f := h.posts.take(extra); len(f) == 0 || f[0].Code != errcode.RateLimited {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		h.deliver(h.ws, first, stopFrame("s", start.MessageID))
		if frames := h.posts.waitFor(t, extra, ended); frames[len(frames)-1].Type != wsapi.TypeEnd {
			t.Errorf("the new connection's frames end with %+v", frames[len(frames)-1])
		}
		h.wait()
	})
	t.Run("a replay stops at its budget and says where to resume", func(t *testing.T) {
		h := newHarness(t, harnessOpts{resumesPerMinute: 1000})
		conn := h.connect("alice")
		frames := h.send(conn, sendFrame("r1", "", "", "many frames [[tokens=60]] [[rate=600]]"))
		start, total := frames[0], deltas(frames)
		h.ws.Chat.ReplayBudget = 30 * time.Millisecond
		h.ws.Chat.Posters = func(string) wsapi.Poster { return slowPoster{h.posts, 5 * time.Millisecond} }
		var got []wsapi.Frame
		after := -1
		for round := 0; ; round++ {
			part := h.send(conn, resumeFrame(fmt.Sprint("x", round), start.MessageID, after))
			got = append(got, part...)
			last := part[len(part)-1]
			if last.Type == wsapi.TypeEnd {
				break
			}
			if last.Code != errcode.RateLimited || deltas(part) == 0 || round > total {
				t.Fatalf("round %d ended with %+v after %d deltas", round, last, deltas(part))
			}
			if _, err := fmt.Sscanf(last.Message[strings.Index(last.Message, "afterSeq "):], "afterSeq %d", &after); err != nil {
				t.Fatalf("no afterSeq in %q", last.Message)
			}
		}
		if deltas(got) != total || after < 0 {
			t.Errorf("replayed %d deltas (the last cut after seq %d), the reply has %d: want it cut at least once and whole in the end", deltas(got), after, total)
		}
	})
}

// slowPoster posts after a delay, as a slow @connections endpoint would.
type slowPoster struct {
	next  wsapi.Poster
	delay time.Duration
}

func (p slowPoster) Post(ctx context.Context, conn string, data []byte) error {
	time.Sleep(p.delay)
	return p.next.Post(ctx, conn, data)
}

// A message into a conversation whose reply still streams is refused and
// stores nothing; a reply's request ends at its own user message, so with
// thinking on it never ends in an assistant turn (a prefill the API
// refuses).
func TestAReplyAnswersItsOwnMessage(t *testing.T) {
	h := newHarness(t, harnessOpts{async: true, maxTokens: 4096})
	conn := h.connect("alice")
	h.deliver(h.ws, conn, sendFrame("r1", "", "", longReply))
	start := h.posts.waitFor(t, conn, func(f []wsapi.Frame) bool { return len(f) > 0 })[0]
	_, before := h.counts("alice")
	h.deliver(h.ws, conn, sendFrame("r2", start.ConversationID, "", "and another thing"))
	refused := h.posts.waitFor(t, conn, func(f []wsapi.Frame) bool {
		for _, x := range f {
			if x.RequestID == "r2" {
				return true
			}
		}
		return false
	})
	for _, f := range refused {
		if f.RequestID == "r2" && (f.Code != errcode.BadRequest || !strings.Contains(f.Message, "still streaming")) {
			t.Errorf("a message behind a streaming reply: %+v", f)
		}
	}
	if _, after := h.counts("alice"); after != before {
		t.Errorf("messages %d -> %d: the refused one was stored", before, after)
	}
	h.deliver(h.ws, conn, stopFrame("s1", start.MessageID))
	h.posts.waitFor(t, conn, ended)
	h.wait()
	h.posts.take(conn)

	// The follow-up, with thinking: its request ends with its own message.
	h.deliver(h.ws, conn, frame("r3", start.ConversationID, "why? [[tokens=5]]", map[string]any{"thinking": map[string]any{"budgetTokens": 1024}}))
	frames := h.posts.waitFor(t, conn, ended)
	h.wait()
	if last := frames[len(frames)-1]; last.Type != wsapi.TypeEnd {
		t.Fatalf("the follow-up ended with %+v", last)
	}
	req, _ := h.model.LastRequest()
	if n := len(req.Messages); n == 0 || req.Messages[n-1].Role != "user" {
		t.Errorf("the request ends with %+v, want the user's message", req.Messages[n-1])
	}
}

// An error frame carries a code and a sentence for a person, never the
// upstream's URL, request id or body.
func TestErrorFramesCarryNoUpstreamDetail(t *testing.T) {
	tests := []struct{ name, text, code string }{
		{"a request the API refuses", "hi [[fault=400]]", errcode.BadRequest},
		{"an upstream failure", "hi [[fault=500]]", errcode.UpstreamError},
		{"an overloaded upstream", "hi [[fault=529]]", errcode.RateLimited},
		{"a stream that breaks (the API's overloaded_error event)", "hi [[tokens=20]] [[fault=midstream]] [[after=3]]", errcode.RateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			frames := h.send(h.connect("alice"), sendFrame("r1", "", "", tt.text))
			last := frames[len(frames)-1]
			if last.Type != wsapi.TypeError || last.Code != tt.code {
				t.Fatalf("last frame %+v, want %s", last, tt.code)
			}
			for _, leak := range []string{"http", "req_", "request_id", "{", "claude:", "status"} {
				if strings.Contains(strings.ToLower(last.Message), leak) {
					t.Errorf("message %q carries %q", last.Message, leak)
				}
			}
		})
	}
}

// The soak: replies of a few users at once, each ending its own way
// (finished, stopped, resumed after a dropped socket, its conversation
// deleted mid-reply, resumed from several sockets over and over), on
// three handler instances, while DynamoDB answers some writes with
// transaction conflicts. Then the store must say: every reply that ended
// is stored (or gone with its conversation) and counted once, no
// reservation or running entry outlives its reply, and the day's usage is
// the sum of its replies. -soak=N sizes it (replies).
func TestSoakTheReplyPromisesHold(t *testing.T) {
	n := *soakReplies
	h := newHarness(t, harnessOpts{async: true, maxInflight: 2, resumesPerMinute: 1000, conflict: contention.Rate(0.15, 11, nil)})
	instances := []*wshandler.WebSocket{h.ws, h.instance(), h.instance()}
	scenarios := []string{"finish", "stop", "drop and resume", "delete", "resume storm"}
	type outcome struct {
		user, scenario string
		start, end     wsapi.Frame
	}
	results := make([]outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 13))
			o := &results[i]
			o.user, o.scenario = fmt.Sprint("soak-", i/2), scenarios[i%len(scenarios)]
			ws := func() *wshandler.WebSocket { return instances[rng.IntN(len(instances))] }
			conn := h.connect(o.user)
			h.deliver(ws(), conn, sendFrame("r", "", "", fmt.Sprintf("story [[tokens=%d]] [[rate=600]]", 50+rng.IntN(150))))
			o.start = h.posts.waitFor(t, conn, func(f []wsapi.Frame) bool { return len(f) > 0 })[0]
			if o.start.Type != wsapi.TypeStart {
				t.Errorf("%s: refused %+v", o.user, o.start)
				return
			}
			id := o.start.MessageID
			streaming := func(f []wsapi.Frame) bool { return deltas(f) > 0 || ended(f) }
			switch o.scenario {
			case "stop":
				h.posts.waitFor(t, conn, streaming)
				h.deliver(ws(), conn, stopFrame("s", id))
			case "drop and resume":
				h.posts.waitFor(t, conn, streaming)
				h.posts.close(conn)
				conn = h.connect(o.user)
				h.deliver(ws(), conn, resumeFrame("res", id, -1))
			case "delete":
				h.posts.waitFor(t, conn, streaming)
				h.http("conversations", o.user, "DELETE /conversations/{id}", map[string]string{"id": o.start.ConversationID}, nil, "")
			case "resume storm":
				var storm sync.WaitGroup
				var done atomic.Bool
				for k := range 3 {
					c := h.connect(o.user)
					storm.Go(func() {
						for r := 0; !done.Load(); r++ {
							h.deliver(instances[k], c, resumeFrame(fmt.Sprintf("x%d-%d", k, r), id, -1))
						}
					})
				}
				defer storm.Wait()
				defer done.Store(true)
			}
			frames := h.posts.waitFor(t, conn, ended)
			o.end = frames[len(frames)-1]
		})
	}
	wg.Wait()
	h.wait()

	ctx := context.Background()
	today := chat.Day(time.Now())
	stored := map[string]int64{} // per user: the tokens of the replies still stored
	deleted := map[string]bool{}
	for _, o := range results {
		if o.start.Type != wsapi.TypeStart {
			continue
		}
		if o.scenario == "delete" {
			deleted[o.user] = true
			if o.end.Type != wsapi.TypeEnd && o.end.Code != errcode.NotFound {
				t.Errorf("%s (%s): ended with %+v", o.user, o.scenario, o.end)
			}
			continue
		}
		m := h.storedReply(o.user, o.start.ConversationID, o.start.MessageID)
		if o.end.Type != wsapi.TypeEnd || m.Status == store.StatusStreaming || m.Status == store.StatusFailed || *o.end.Usage != m.Usage {
			t.Errorf("%s (%s): ended with %+v, stored %s with %+v", o.user, o.scenario, o.end, m.Status, m.Usage)
		}
		stored[o.user] += m.Usage.Total()
	}
	for user, sum := range stored {
		used, reserved, err := h.store.Today(ctx, user, today)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := h.store.ListUsage(ctx, user, today, today)
		if err != nil {
			t.Fatal(err)
		}
		var counted int64
		for _, r := range rows {
			counted += r.Total()
		}
		if counted != used || reserved != 0 || sum > used || (!deleted[user] && sum != used) {
			t.Errorf("%s: used %d, reserved %d, usage rows %d, stored replies %d", user, used, reserved, counted, sum)
		}
		h.checkNothingHeld(t, user)
	}
	if h.db.Injected() == 0 {
		t.Error("no conflict was injected")
	}
}

// A reply cut short counts its output from the text it produced, but never
// more than the request's max tokens: the model cannot have produced more,
// and its reservation holds no more, so 50 cut replies at once still keep
// the day within the limit.
func TestACutReplyCountsNoMoreThanItsMaxTokens(t *testing.T) {
	const maxTokens = 100
	h := newHarness(t, harnessOpts{maxTokens: maxTokens})
	// The stand-in's words average some six bytes: 99 of them estimate at
	// about 200 tokens.
	frames := h.send(h.connect("alice"), sendFrame("r1", "", "", "hi [[tokens=100]] [[fault=midstream]] [[after=99]]"))
	if last := frames[len(frames)-1]; last.Type != wsapi.TypeError {
		t.Fatalf("last frame %+v, want the cut's error", last)
	}
	m := h.storedReply("alice", frames[0].ConversationID, frames[0].MessageID)
	if !m.Usage.Estimated || m.Usage.OutputTokens != maxTokens || int64(len(m.Text)+2)/3 <= maxTokens {
		t.Errorf("counted %+v for %d bytes produced, want the estimate capped at %d", m.Usage, len(m.Text), maxTokens)
	}
}

// extensions counts the reply jobs that reserved more than their
// acceptance did (a store round trip before the model call).
type extensions struct {
	store.Store
	n atomic.Int64
}

func (e *extensions) ExtendReservation(ctx context.Context, r store.Reply, extra, limit int64) error {
	e.n.Add(1)
	return e.Store.ExtendReservation(ctx, r, extra, limit)
}

// A message naming a saved prompt reserves for it without reading it
// first: the acceptance's transaction checks it fits the allowance (a
// larger one is accepted again with its size), so its reply job never
// waits for a reservation more.
func TestASavedPromptIsReservedWithoutARoundTripMore(t *testing.T) {
	tests := []struct {
		name  string
		bytes int
	}{
		{"a prompt within the allowance", 200},
		{"a prompt larger than the allowance", 12_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{limit: 1_000_000})
			ext := &extensions{Store: h.store}
			h.ws.Chat.Store = ext
			_, created := h.http("prompts", "alice", "POST /prompts", nil, nil, fmt.Sprintf(`{"name":"p","text":%q}`, strings.Repeat("x", tt.bytes)))
			promptID, _ := created["id"].(string)
			conn := h.connect("alice")
			frames := h.send(conn, sendFrame("r1", "", promptID, "hi [[tokens=3]]"))
			if last := frames[len(frames)-1]; last.Type != wsapi.TypeEnd {
				t.Fatalf("last frame %+v", last)
			}
			if n := ext.n.Load(); n != 0 {
				t.Errorf("the reply job reserved more %d times", n)
			}
			h.checkNothingHeld(t, "alice")
		})
	}
}
