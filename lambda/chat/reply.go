package chat

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/obs"
	"github.com/p2/buddy/lambda/pricing"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/tokens"
	"github.com/p2/buddy/lambda/wsapi"
)

// deadlineMargin is kept free before the invocation's deadline to store a
// cut-short reply instead of being killed mid-write.
const deadlineMargin = 5 * time.Second

// Why a reply's model call ended early.
var (
	ErrDeadline = errors.New("chat: invocation deadline reached")
	ErrStopped  = errors.New("chat: stopped by the user")
	ErrOrphaned = errors.New("chat: nobody resumed the reply")
	ErrDeleted  = errors.New("chat: the conversation was deleted")
)

// DefaultPoll is how often a running reply reads its live record: a stop
// or a resume from any connection, on any instance, reaches it within this
// (a small strongly consistent read; no write).
const DefaultPoll = 500 * time.Millisecond

// checkpointEvery spaces the writes of a running reply's text so far: at
// most one a second of streaming, none per delta.
const checkpointEvery = time.Second

// keepEnded is how long an ended reply stays resumable (its live record
// expires then; the message stays).
const keepEnded = 7 * 24 * time.Hour

// finishPatience is how long a finish is retried against contention when
// the invocation has no deadline (local runs); in Lambda it is retried
// until just before the deadline: a reply must not be lost to contention.
const finishPatience = time.Minute

// Run streams the reply of job and stores it. It fills sum with what the
// summary line needs and returns an error only for failures of our own
// (the client has been told about the rest).
func (s *Service) Run(ctx context.Context, job Job, sum *obs.Summary) error {
	describe(sum, job)
	poster := s.poster(job.Endpoint)
	req, sent, err := s.prepare(ctx, &job)
	switch {
	case errors.Is(err, store.ErrClaimed):
		// A second delivery of the job: the first one streams it.
		sum.Outcome = obs.OutcomeDuplicate
		return nil
	case errors.Is(err, store.ErrNotFound):
		// The conversation was deleted before the reply began: give back
		// what the acceptance took.
		if ferr := s.Store.FailUnstarted(context.WithoutCancel(ctx), job.reply(), errcode.NotFound); ferr != nil && !errors.Is(ferr, store.ErrNotFound) && !errors.Is(ferr, store.ErrClaimed) {
			sum.Err = ferr
		}
		postError(ctx, job, poster, job.ConnectionID, job.RequestID, errcode.NotFound, "conversation not found")
		sum.Outcome = obs.OutcomeRejected
		return nil
	case errors.Is(err, store.ErrQuotaExceeded):
		s.failClaimed(ctx, job, poster, errcode.QuotaExceeded,
			fmt.Sprintf("this request turned out larger than reserved and the daily token limit of %d has no room for it; it resets at 00:00 UTC", s.Config.DailyTokenLimit))
		sum.Outcome = obs.OutcomeRejected
		return nil
	case err != nil:
		s.failClaimed(ctx, job, poster, errcode.Internal, "could not load the conversation")
		sum.Outcome, sum.Err = obs.OutcomeServerError, err
		return fmt.Errorf("prepare reply: %w", err)
	}
	out := s.stream(ctx, job, req, poster)
	out.summarize(sum)
	return s.finish(ctx, job, out, sent, sum)
}

// describe fills the summary fields known before the model is called.
func describe(sum *obs.Summary, job Job) {
	sum.Route = "reply"
	sum.ClientRequestID = job.RequestID
	sum.ConnectionID = job.ConnectionID
	sum.User = job.UserID
	sum.ModelCall = true
	sum.Model = job.Model
}

// poster is the connection's poster with a deadline on every post.
func (s *Service) poster(endpoint string) wsapi.Poster {
	return wsapi.WithPostTimeout(s.Posters(endpoint), s.PostTimeout)
}

// prepare claims the reply (a second delivery of the job stops here) and
// builds the model request. The claim, the history and the prompt are
// read side by side: one round trip. The claim also checks that the
// conversation is the job's user's, and the turns and prompt are used
// only once it has: the history query itself returns only the user's own
// messages, so nothing of another user's is ever read.
//
// It returns the request's size in bytes (requestBytes), an upper bound of
// its input tokens. When that and the max tokens are more than the
// acceptance reserved (its estimate could not know a prompt that grew or
// the size of a conversation stored before sizes were kept), it reserves
// the difference first: ErrQuotaExceeded when the day has no room.
func (s *Service) prepare(ctx context.Context, job *Job) (claude.Request, int64, error) {
	var (
		msgs   []store.Message
		system string
	)
	claimErr, readErr := both(func() error {
		return s.Store.ClaimReply(ctx, job.reply())
	}, func() error {
		m, sys, err := s.inputs(ctx, *job)
		msgs, system = m, sys
		return err
	})
	if claimErr != nil {
		return claude.Request{}, 0, claimErr
	}
	if readErr != nil {
		return claude.Request{}, 0, readErr
	}
	m := s.Config.Model
	msgs = fit(msgs, historyBudget(len(system), m.MaxTokens), s.requestLimit()-int64(len(system)))
	sent := requestBytes(system, msgs)
	if need := sent + m.MaxTokens; need > job.Reserved {
		if err := s.Store.ExtendReservation(ctx, job.reply(), need-job.Reserved, s.Config.DailyTokenLimit); err != nil {
			return claude.Request{}, 0, err
		}
		job.Reserved = need
	}
	var turns []claude.Turn
	_, err := both(func() error {
		// Its own message's uploads are kept from now on (the bucket's
		// lifecycle expires those no message carries), marked while the
		// attachments are read.
		if n := len(msgs); n > 0 && msgs[n-1].MessageID == job.UserMessageID && len(msgs[n-1].Attachments) > 0 {
			s.markAttached(ctx, msgs[n-1].Attachments)
		}
		return nil
	}, func() (err error) {
		turns, err = s.turnsOf(ctx, msgs)
		return err
	})
	if err != nil {
		return claude.Request{}, 0, fmt.Errorf("read attachments: %w", err)
	}
	return claude.Request{
		Model:          job.Model,
		System:         system,
		Turns:          turns,
		MaxTokens:      m.MaxTokens,
		Temperature:    m.Temperature,
		TopP:           m.TopP,
		TopK:           m.TopK,
		ThinkingBudget: job.ThinkingBudget,
		Effort:         job.Effort,
		CacheTTL:       s.cacheTTL(),
	}, sent, nil
}

// cacheTTL is the lifetime of the request's cache breakpoints; "" for
// none. Caching is on by default: the next turn of a conversation then
// reads the whole earlier prefix at a tenth of the input price.
func (s *Service) cacheTTL() string {
	switch s.Config.PromptCache {
	case config.PromptCacheOff:
		return ""
	case "":
		return config.PromptCache5m
	}
	return s.Config.PromptCache
}

// inputs reads the history and the system prompt side by side.
func (s *Service) inputs(ctx context.Context, job Job) ([]store.Message, string, error) {
	var (
		turns  []store.Message
		system string
	)
	turnsErr, promptErr := both(func() error {
		t, err := s.turns(ctx, job)
		turns = t
		return err
	}, func() error {
		if job.PromptID == "" {
			return nil
		}
		p, err := s.Store.GetPrompt(ctx, job.UserID, job.PromptID)
		if errors.Is(err, store.ErrNotFound) {
			return nil // deleted since: the reply goes on without it
		}
		system = p.Text
		return err
	})
	return turns, system, errors.Join(turnsErr, promptErr)
}

// turns is the conversation up to and including the job's own user
// message (nothing sent after it belongs to this reply): the newest turns
// that fit the request (historyBudget), read back from the store; never
// the whole of a long conversation.
func (s *Service) turns(ctx context.Context, job Job) ([]store.Message, error) {
	if job.Opens {
		m, err := s.Store.GetMessage(ctx, job.UserID, job.ConversationID, job.UserMessageID)
		if err != nil {
			return nil, err
		}
		return history([]store.Message{m}), nil
	}
	bound := store.MessageBound{
		Limit: maxHistoryTurns,
		// The system prompt is read beside the history, so the page is
		// bounded as if there were none; fit then leaves out what the
		// prompt needs.
		Bytes:   historyBudget(0, s.Config.Model.MaxTokens),
		Size:    turnBytes,
		Through: job.UserMessageID,
	}
	page, err := s.Store.ListMessagesPage(ctx, job.UserID, job.ConversationID, bound, "")
	if err != nil {
		return nil, err
	}
	return history(page.Items), nil
}

// streamed is how a model call went and what reached the listeners.
type streamed struct {
	res   claude.Result
	model string // as the upstream reported it, else the job's
	err   error  // the model call's
	cause error  // why the call's context ended, if it did
	start time.Time
	sent  broadcasted
	b     *broadcast
	// maxTokens is the request's: the most output the model can produce.
	maxTokens int64
}

// stream calls the model and broadcasts its text to the reply's listeners
// as it arrives, while a watcher follows the live record.
func (s *Service) stream(ctx context.Context, job Job, req claude.Request, poster wsapi.Poster) streamed {
	ctx, cancel := streamContext(ctx)
	defer cancel(nil)
	b := newBroadcast(ctx, poster.Post, frameFor(job), s.window(), s.now)
	b.Follow(job.ConnectionID, job.RequestID, -1)
	w := s.watch(ctx, job, b, cancel)
	out := streamed{model: req.Model, start: s.now(), b: b, maxTokens: req.MaxTokens}
	out.res, out.err = s.Model.Stream(ctx, req, &replyHandler{b: b})
	out.cause = context.Cause(ctx)
	w.stop()
	b.Close()
	out.sent = b.result()
	if out.res.Model != "" {
		out.model = out.res.Model
	}
	return out
}

// frameFor numbers a reply's frames for a listener.
func frameFor(job Job) func(*listener, int, store.Frame, string) wsapi.Frame {
	return func(l *listener, seq int, f store.Frame, text string) wsapi.Frame {
		t := wsapi.TypeDelta
		if f.Thinking {
			t = wsapi.TypeThinking
		}
		return wsapi.Frame{Type: t, RequestID: l.requestID, ConversationID: job.ConversationID, MessageID: job.AssistantMessageID, Seq: &seq, Text: text}
	}
}

// streamContext ends the model call deadlineMargin before the invocation
// would be killed, so that a cut-short reply is still stored; its cancel
// takes the cause (a stop, an orphan, a delete).
func streamContext(ctx context.Context) (context.Context, context.CancelCauseFunc) {
	if dl, ok := ctx.Deadline(); ok {
		var cancelDeadline context.CancelFunc
		ctx, cancelDeadline = context.WithDeadlineCause(ctx, dl.Add(-deadlineMargin), ErrDeadline)
		inner, cancel := context.WithCancelCause(ctx)
		return inner, func(cause error) { cancel(cause); cancelDeadline() }
	}
	return context.WithCancelCause(ctx)
}

func (s *Service) window() time.Duration {
	if s.Window <= 0 {
		return DefaultWindow
	}
	return s.Window
}

// replyHandler adapts the model stream to the broadcast.
type replyHandler struct{ b *broadcast }

// OnStart has nothing to do: the start frame went out at acceptance.
func (h *replyHandler) OnStart(context.Context, string) error { return nil }

// OnText queues the text; the broadcast posts it on its own goroutine.
func (h *replyHandler) OnText(_ context.Context, text string) error {
	h.b.Text(false, text)
	return nil
}

// OnThinking queues thinking text: thinking frames, on the same seq.
func (h *replyHandler) OnThinking(_ context.Context, text string) error {
	h.b.Text(true, text)
	return nil
}

// summarize fills the summary fields the stream decided.
func (out streamed) summarize(sum *obs.Summary) {
	if !out.sent.firstPost.IsZero() {
		sum.TTFT = out.sent.firstPost.Sub(out.start)
	}
	sum.Deltas = len(out.sent.frames)
	sum.Model = out.model
	sum.Usage = out.usage()
	sum.StopReason = out.stopReason()
	sum.Dropped = out.res.Dropped
}

// ended is how a reply ended, as stored and told.
type ended struct {
	status     string
	stopReason string
	code, msg  string // the error that ended it, if one did
}

func (out streamed) ending() ended {
	switch {
	case out.err == nil:
		return ended{status: store.StatusComplete, stopReason: out.res.StopReason}
	case errors.Is(out.cause, ErrStopped):
		return ended{status: store.StatusStopped, stopReason: wsapi.StopReasonStopped}
	case errors.Is(out.cause, ErrOrphaned):
		return ended{status: store.StatusIncomplete, stopReason: wsapi.StopReasonStopped}
	case errors.Is(out.cause, ErrDeleted):
		return ended{status: store.StatusIncomplete, code: errcode.NotFound, msg: "the conversation was deleted"}
	}
	code, msg := modelErrorFrame(out.err, out.cause)
	status := store.StatusIncomplete
	if out.sent.answer == "" {
		status = store.StatusFailed
	}
	return ended{status: status, code: code, msg: msg}
}

func (out streamed) stopReason() string { return out.ending().stopReason }

// usage is what the reply counts: the upstream's figures, except that a
// reply cut short before the upstream's final count is estimated from
// the text it produced (estimateTokens), marked estimated, and never
// above the request's max tokens: the model cannot have produced more, and
// the reservation holds no more, so a cut reply never takes the day past
// what it reserved.
func (out streamed) usage() tokens.Usage {
	u := out.res.Usage
	if out.err != nil {
		est := estimateTokens(out.sent.answer) + estimateTokens(out.sent.thinking)
		if out.maxTokens > 0 {
			est = min(est, out.maxTokens)
		}
		if est > u.OutputTokens {
			u.OutputTokens, u.Estimated = est, true
		}
	}
	return u
}

// estimateTokens is a count of tokens in text for a reply cut short: one
// per three bytes, rounded up. Claude's tokenizer averages some four bytes
// a token on English prose and fewer on code and other scripts; erring
// high keeps a cut reply from costing the user's quota less than it did.
func estimateTokens(text string) int64 { return int64(len(text)+2) / 3 }

// finish stores the reply, then tells its listeners how it ended: end
// only once the message and its usage are stored. Its transaction does
// not depend on anything a client can change, and contention is retried
// until it lands or the invocation runs out of time. sent is the size of
// the request (requestBytes), kept on the conversation for the next
// message's reservation.
func (s *Service) finish(ctx context.Context, job Job, out streamed, sent int64, sum *obs.Summary) error {
	deadline := finishDeadline(ctx)
	ctx = context.WithoutCancel(ctx)
	e := out.ending()
	msg := job.assistantMessage(s.now(), e.status)
	msg.Model = out.model
	msg.Text, msg.Frames = out.sent.answer, out.sent.frames
	msg.Thinking, msg.ThinkingSignature = out.sent.thinking, out.res.ThinkingSignature
	msg.StopReason, msg.ErrorCode = e.stopReason, e.code
	msg.Usage = out.usage()
	msg.CostUSD = cost(msg.Model, msg.Usage)
	next := sent
	if msg.Text != "" {
		next += int64(len(msg.Text) + turnOverhead)
	}
	err := s.storeEnd(ctx, deadline, store.Finish{Reply: job.reply(), Message: msg, Keep: keepEnded, InputBytes: next})
	sum.Outcome = outcomeOf(e, out)
	if out.err != nil {
		// The model's error in full, for the log; the client gets a code
		// and a sentence.
		sum.Err = out.err
	}
	switch {
	case err == nil:
		// The record is ended now, so no listener joins after this read:
		// whoever resumed since the watcher's last look is caught up
		// before the end.
		if r, rerr := s.Store.GetReply(ctx, job.AssistantMessageID); rerr == nil {
			follow(out.b, r)
			out.b.Flush()
		} else {
			sum.Err = errors.Join(sum.Err, fmt.Errorf("read listeners after the finish: %w", rerr))
		}
	case errors.Is(err, store.ErrNotFound):
		e = ended{code: errcode.NotFound, msg: "the conversation was deleted"}
		sum.Outcome = obs.OutcomeRejected
		err = nil
	default:
		if !errors.Is(err, store.ErrClaimed) {
			if ferr := s.Store.MarkFailed(ctx, job.reply(), errcode.Internal, msg.Model, msg.Usage); ferr != nil {
				err = errors.Join(err, ferr)
			}
		}
		e = ended{code: errcode.Internal, msg: "the reply could not be stored"}
		sum.Outcome, sum.Err = obs.OutcomeServerError, errors.Join(sum.Err, err)
	}
	out.b.Finish(func(l *listener) wsapi.Frame { return endFrame(job, l.requestID, msg, e) })
	if fails := out.b.result().failures; fails != nil {
		sum.Err = errors.Join(sum.Err, fails)
	}
	return err
}

// storeEnd runs FinishReply again while contention refuses it, until the
// deadline: losing the finish would leave the reply unstored and uncounted.
func (s *Service) storeEnd(ctx context.Context, deadline time.Time, f store.Finish) error {
	for {
		err := s.Store.FinishReply(ctx, f)
		if !errors.Is(err, store.ErrContention) || time.Now().After(deadline) {
			return err
		}
	}
}

// finishDeadline is when a finish stops retrying: a second before the
// invocation's deadline, or finishPatience from now without one.
func finishDeadline(ctx context.Context) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl.Add(-time.Second)
	}
	return time.Now().Add(finishPatience)
}

// outcomeOf is the summary's outcome of a stored reply.
func outcomeOf(e ended, out streamed) string {
	switch {
	case e.status == store.StatusStopped:
		return obs.OutcomeStopped
	case errors.Is(out.cause, ErrOrphaned):
		return obs.OutcomeClientGone
	case e.code != "":
		return obs.OutcomeModelError
	}
	return obs.OutcomeOK
}

// endFrame is the frame that ends a reply for one listener: end, or the
// error that ended it.
func endFrame(job Job, requestID string, m store.Message, e ended) wsapi.Frame {
	if e.code != "" {
		return wsapi.Frame{Type: wsapi.TypeError, RequestID: requestID, ConversationID: job.ConversationID, MessageID: job.AssistantMessageID, Code: e.code, Message: e.msg}
	}
	u, c := m.Usage, m.CostUSD
	return wsapi.Frame{
		Type:           wsapi.TypeEnd,
		RequestID:      requestID,
		ConversationID: job.ConversationID,
		MessageID:      job.AssistantMessageID,
		Model:          m.Model,
		StopReason:     e.stopReason,
		Usage:          &u,
		CostUSD:        &c,
	}
}

// cost is what usage u of model cost at list prices, to the micro-dollar;
// 0 for a model without a price.
func cost(model string, u tokens.Usage) float64 {
	p, ok := pricing.Lookup(model)
	if !ok {
		return 0
	}
	return math.Round(p.Cost(pricing.Of(u))*1e6) / 1e6
}

// failClaimed ends a claimed reply that could not start (its inputs could
// not be read, or its request outgrew the day's room): stored failed with
// code, what it took given back, everyone following it told.
func (s *Service) failClaimed(ctx context.Context, job Job, poster wsapi.Poster, code, text string) {
	ctx = context.WithoutCancel(ctx)
	msg := job.assistantMessage(s.now(), store.StatusFailed)
	msg.ErrorCode = code
	err := s.Store.FinishReply(ctx, store.Finish{Reply: job.reply(), Message: msg, Keep: keepEnded})
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrClaimed) {
		_ = s.Store.MarkFailed(ctx, job.reply(), code, "", tokens.Usage{})
	}
	r, err := s.Store.GetReply(ctx, job.AssistantMessageID)
	if err != nil {
		r = job.reply()
	}
	for _, l := range listenersOf(job, r) {
		postError(ctx, job, poster, l.ConnectionID, l.RequestID, code, text)
	}
}

// listenersOf is everyone following a reply: who asked, then who resumed.
func listenersOf(job Job, r store.Reply) []store.Listener {
	return append([]store.Listener{{ConnectionID: job.ConnectionID, RequestID: job.RequestID, AfterSeq: -1}}, r.Listeners...)
}

// modelErrorFrame maps a failed model call to the client's error code and
// a sentence for a person. Nothing of the upstream's answer (its URL,
// request id, body) reaches the client: the summary line logs it.
func modelErrorFrame(err, cause error) (code, msg string) {
	var unsupported *claude.UnsupportedError
	switch {
	case errors.Is(err, ErrDeadline) || errors.Is(cause, ErrDeadline):
		return errcode.UpstreamError, "the reply took too long and was cut short"
	case claude.KindOf(err) == claude.KindRateLimited:
		return errcode.RateLimited, "the model is busy; try again in a moment"
	case errors.As(err, &unsupported):
		// Our own refusal of what the provider cannot do: its words are
		// ours and say what.
		return errcode.BadRequest, unsupported.Error()
	case claude.KindOf(err) == claude.KindBadRequest && claude.StatusOf(err) == http.StatusRequestEntityTooLarge:
		return errcode.TooLarge, "the conversation is too large for the model; start a new one"
	case claude.KindOf(err) == claude.KindBadRequest:
		return errcode.BadRequest, "the model refused the request as invalid"
	default:
		return errcode.UpstreamError, "the model could not answer; try again"
	}
}

// postError tells a connection the reply failed. Best effort: if the
// client is gone there is no one to tell.
func postError(ctx context.Context, job Job, p wsapi.Poster, connectionID, requestID, code, msg string) {
	_ = p.Post(context.WithoutCancel(ctx), connectionID, wsapi.Encode(wsapi.Frame{
		Type: wsapi.TypeError, RequestID: requestID, ConversationID: job.ConversationID, MessageID: job.AssistantMessageID, Code: code, Message: msg,
	}))
}
