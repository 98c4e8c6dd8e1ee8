package chat

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/obs"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/tokens"
	"github.com/p2/buddy/lambda/wsapi"
)

// deadlineMargin is kept free before the invocation's deadline to store a
// cut-short reply instead of being killed mid-write.
const deadlineMargin = 5 * time.Second

// ErrDeadline ends a reply that would outlive the invocation.
var ErrDeadline = errors.New("chat: invocation deadline reached")

// Run streams the reply of job to its connection and stores it. It fills
// sum with what the summary line needs and returns an error only for
// failures of our own (the client has been told about the rest).
func (s *Service) Run(ctx context.Context, job Job, sum *obs.Summary) error {
	describe(sum, job, s.Config.Model.ModelID)
	poster := s.poster(job.Endpoint)
	req, err := s.prepare(ctx, job)
	if err != nil {
		postError(ctx, job, poster, errcode.Internal, "could not load the conversation")
		sum.Outcome = obs.OutcomeServerError
		return fmt.Errorf("load history: %w", err)
	}
	out := s.stream(ctx, job, req, poster)
	out.summarize(sum)
	storeErr := s.persist(ctx, job, out)
	return s.finish(ctx, job, poster, out, storeErr, sum)
}

// describe fills the summary fields known before the model is called.
func describe(sum *obs.Summary, job Job, model string) {
	sum.Route = "reply"
	sum.ClientRequestID = job.RequestID
	sum.ConnectionID = job.ConnectionID
	sum.User = job.UserID
	sum.ModelCall = true
	sum.Model = model
}

// poster is the connection's poster with a deadline on every post.
func (s *Service) poster(endpoint string) wsapi.Poster {
	return wsapi.WithPostTimeout(s.Posters(endpoint), s.PostTimeout)
}

// prepare builds the model request from the configured model and the
// job's turns.
func (s *Service) prepare(ctx context.Context, job Job) (claude.Request, error) {
	turns, err := s.turns(ctx, job)
	if err != nil {
		return claude.Request{}, err
	}
	m := s.Config.Model
	return claude.Request{
		Model:       m.ModelID,
		System:      job.System,
		Turns:       turns,
		MaxTokens:   m.MaxTokens,
		Temperature: m.Temperature,
		TopP:        m.TopP,
		TopK:        m.TopK,
	}, nil
}

// turns is the conversation so far: the job's first turn when it carries
// one, else the newest turns that fit the request (historyBudget), read
// back from the store; never the whole of a long conversation.
func (s *Service) turns(ctx context.Context, job Job) ([]claude.Turn, error) {
	if job.FirstTurn != "" {
		return []claude.Turn{{Role: store.RoleUser, Text: job.FirstTurn}}, nil
	}
	bound := store.MessageBound{
		Limit: maxHistoryTurns,
		Bytes: historyBudget(job.System, s.Config.Model.MaxTokens),
		Size:  turnBytes,
	}
	page, err := s.Store.ListMessagesPage(ctx, job.UserID, job.ConversationID, bound, "")
	if err != nil {
		return nil, err
	}
	return history(page.Items), nil
}

// streamed is how a model call went and what reached the client.
type streamed struct {
	res   claude.Result
	model string // as the upstream reported it, else the configured one
	err   error  // the model call's
	cause error  // why the call's context ended, if it did
	start time.Time
	relay relayed
}

// stream calls the model and relays its text to the connection as it
// arrives.
func (s *Service) stream(ctx context.Context, job Job, req claude.Request, poster wsapi.Poster) streamed {
	ctx, cancel := streamContext(ctx)
	defer cancel()
	r := newRelay(ctx,
		func(ctx context.Context, b []byte) error { return poster.Post(ctx, job.ConnectionID, b) },
		func(seq int, text string) wsapi.Frame {
			return wsapi.Frame{Type: wsapi.TypeDelta, RequestID: job.RequestID, ConversationID: job.ConversationID, Seq: &seq, Text: text}
		},
		s.window(), s.now)
	out := streamed{model: req.Model, start: s.now()}
	out.res, out.err = s.Model.Stream(ctx, req, &replyHandler{job: job, poster: poster, relay: r})
	out.relay = r.close()
	out.cause = context.Cause(ctx)
	if out.res.Model != "" {
		out.model = out.res.Model
	}
	return out
}

// streamContext ends the model call deadlineMargin before the invocation
// would be killed, so that a cut-short reply is still stored.
func streamContext(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadlineCause(ctx, dl.Add(-deadlineMargin), ErrDeadline)
}

func (s *Service) window() time.Duration {
	if s.Window <= 0 {
		return DefaultWindow
	}
	return s.Window
}

// replyHandler adapts the model stream to frames.
type replyHandler struct {
	job    Job
	poster wsapi.Poster
	relay  *relay
}

func (h *replyHandler) OnStart(ctx context.Context, model string) error {
	// Like a delta, the start frame is posted even if the call is being
	// cancelled: the client waits for it.
	return h.poster.Post(context.WithoutCancel(ctx), h.job.ConnectionID, wsapi.Encode(wsapi.Frame{
		Type:           wsapi.TypeStart,
		RequestID:      h.job.RequestID,
		ConversationID: h.job.ConversationID,
		MessageID:      h.job.AssistantMessageID,
		Model:          model,
	}))
}

// OnText queues the text; the relay posts it on its own goroutine.
func (h *replyHandler) OnText(_ context.Context, text string) error { return h.relay.Text(text) }

// summarize fills the summary fields the stream decided.
func (out streamed) summarize(sum *obs.Summary) {
	if !out.relay.firstPost.IsZero() {
		sum.TTFT = out.relay.firstPost.Sub(out.start)
	}
	sum.Deltas = out.relay.deltas
	sum.Model = out.model
	u := out.res.Usage
	sum.InputTokens, sum.OutputTokens = u.InputTokens, u.OutputTokens
	sum.CacheRead, sum.CacheWrite = u.CacheReadInputTokens, u.CacheCreationInputTokens
	sum.StopReason = out.res.StopReason
}

// gone reports whether the client left during the reply.
func (out streamed) gone() bool { return isGone(out.relay.err) || isGone(out.err) }

// incomplete reports whether the reply was cut short.
func (out streamed) incomplete() bool { return out.err != nil || out.relay.err != nil }

// text is the reply to store: what the client was sent, so that the
// concatenated deltas equal the stored message; when the client left, all
// that was produced.
func (out streamed) text() string {
	if out.gone() {
		return out.relay.produced
	}
	return out.relay.sent
}

func (out streamed) usage() tokens.Usage {
	u := out.res.Usage
	return tokens.Usage{
		InputTokens:              u.InputTokens,
		OutputTokens:             u.OutputTokens,
		CacheReadInputTokens:     u.CacheReadInputTokens,
		CacheCreationInputTokens: u.CacheCreationInputTokens,
	}
}

// persist stores the assistant's message (unless the reply failed before
// any text), adds its usage to the user's day and touches the
// conversation. The writes run even if the invocation's context is
// cancelled: the tokens are spent either way.
func (s *Service) persist(ctx context.Context, job Job, out streamed) error {
	ctx = context.WithoutCancel(ctx)
	now := s.now()
	usage := out.usage()
	var err error
	if text := out.text(); text != "" || !out.incomplete() {
		err = s.Store.PutMessage(ctx, store.Message{
			ConversationID: job.ConversationID,
			MessageID:      job.AssistantMessageID,
			UserID:         job.UserID,
			Role:           store.RoleAssistant,
			Text:           text,
			CreatedAt:      now,
			RequestID:      job.RequestID,
			Model:          out.model,
			StopReason:     out.res.StopReason,
			Incomplete:     out.incomplete(),
			Usage:          usage,
		})
	}
	if usage.Total() > 0 {
		err = errors.Join(err, s.Store.AddUsage(ctx, job.UserID, Day(now), out.model, usage))
	}
	if terr := s.Store.TouchConversation(ctx, job.UserID, job.ConversationID, "", now); terr != nil && !errors.Is(terr, store.ErrNotFound) {
		err = errors.Join(err, terr)
	}
	return err
}

// finish tells the client how the reply ended (or forgets the connection
// when the client left) and settles the summary's outcome. storeErr is
// persist's.
func (s *Service) finish(ctx context.Context, job Job, poster wsapi.Poster, out streamed, storeErr error, sum *obs.Summary) error {
	switch {
	case out.gone():
		sum.Outcome = obs.OutcomeClientGone
		if err := s.Store.DeleteConnection(context.WithoutCancel(ctx), job.ConnectionID); err != nil {
			storeErr = errors.Join(storeErr, err)
		}
	case out.relay.err != nil:
		sum.Outcome = obs.OutcomeServerError
		sum.Err = errors.Join(out.relay.err, storeErr)
		return sum.Err
	case out.err != nil:
		code, msg := modelErrorFrame(out.err, out.cause)
		sum.Outcome, sum.Code, sum.Err = obs.OutcomeModelError, code, out.err
		postError(ctx, job, poster, code, msg)
	default:
		if err := postEnd(ctx, job, poster, out); err != nil && !isGone(err) {
			storeErr = errors.Join(storeErr, err)
		}
		sum.Outcome = obs.OutcomeOK
	}
	if storeErr != nil {
		sum.Outcome = obs.OutcomeServerError
		sum.Err = errors.Join(sum.Err, storeErr)
		return storeErr
	}
	return nil
}

// postEnd sends the end frame of a whole reply.
func postEnd(ctx context.Context, job Job, poster wsapi.Poster, out streamed) error {
	u := out.usage()
	return poster.Post(context.WithoutCancel(ctx), job.ConnectionID, wsapi.Encode(wsapi.Frame{
		Type:           wsapi.TypeEnd,
		RequestID:      job.RequestID,
		ConversationID: job.ConversationID,
		MessageID:      job.AssistantMessageID,
		StopReason:     out.res.StopReason,
		Usage: &tokens.Usage{
			InputTokens:              u.InputTokens,
			OutputTokens:             u.OutputTokens,
			CacheReadInputTokens:     u.CacheReadInputTokens,
			CacheCreationInputTokens: u.CacheCreationInputTokens,
		},
	}))
}

// modelErrorFrame maps a failed model call to the client's error code.
func modelErrorFrame(err, cause error) (code, msg string) {
	switch {
	case errors.Is(err, ErrDeadline) || errors.Is(cause, ErrDeadline):
		return errcode.UpstreamError, "the reply took too long and was cut short"
	case claude.KindOf(err) == claude.KindRateLimited:
		return errcode.RateLimited, "the model is busy; try again in a moment"
	default:
		return errcode.UpstreamError, "the model could not answer; try again"
	}
}

// postError tells the client the reply failed. Best effort: if the client
// is gone there is no one to tell.
func postError(ctx context.Context, job Job, p wsapi.Poster, code, msg string) {
	_ = p.Post(context.WithoutCancel(ctx), job.ConnectionID, wsapi.Encode(wsapi.Frame{
		Type: wsapi.TypeError, RequestID: job.RequestID, Code: code, Message: msg,
	}))
}
