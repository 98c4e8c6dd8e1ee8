package chat

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/obs"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/wsapi"
)

// deadlineMargin is kept free before the invocation's deadline to store a
// cut-short reply instead of being killed mid-write.
const deadlineMargin = 5 * time.Second

// ErrDeadline ends a reply that would outlive the invocation.
var ErrDeadline = errors.New("chat: invocation deadline reached")

// replyHandler adapts the model stream to frames.
type replyHandler struct {
	job     Job
	poster  wsapi.Poster
	relay   *relay
	model   string
	started bool
}

func (h *replyHandler) OnStart(model string) error {
	h.model = model
	h.started = true
	return h.poster.Post(context.WithoutCancel(context.Background()), h.job.ConnectionID, wsapi.Encode(wsapi.Frame{
		Type:           wsapi.TypeStart,
		RequestID:      h.job.RequestID,
		ConversationID: h.job.ConversationID,
		MessageID:      h.job.AssistantMessageID,
		Model:          model,
	}))
}

func (h *replyHandler) OnText(text string) error { return h.relay.Text(text) }

// Run streams the reply of job to its connection and stores it. It fills
// sum with what the summary line needs and returns an error only for
// failures of our own (the client has been told about the rest).
func (s *Service) Run(ctx context.Context, job Job, sum *obs.Summary) error {
	sum.Route = "reply"
	sum.ClientRequestID = job.RequestID
	sum.ConnectionID = job.ConnectionID
	sum.User = job.UserID
	sum.ModelCall = true
	sum.Model = s.Config.Model.ModelID

	poster := s.Posters(job.Endpoint)
	var turns []claude.Turn
	if job.FirstTurn != "" {
		turns = []claude.Turn{{Role: store.RoleUser, Text: job.FirstTurn}}
	} else {
		msgs, err := s.Store.ListMessages(ctx, job.ConversationID)
		if err != nil {
			s.postError(job, poster, wsapi.CodeInternal, "could not load the conversation")
			sum.Outcome = obs.OutcomeServerError
			return fmt.Errorf("load history: %w", err)
		}
		turns = history(msgs)
	}
	m := s.Config.Model
	req := claude.Request{
		Model:       m.ModelID,
		System:      job.System,
		Turns:       turns,
		MaxTokens:   m.MaxTokens,
		Temperature: m.Temperature,
		TopP:        m.TopP,
		TopK:        m.TopK,
	}

	streamCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if dl, ok := ctx.Deadline(); ok {
		var stop context.CancelFunc
		streamCtx, stop = context.WithDeadlineCause(streamCtx, dl.Add(-deadlineMargin), ErrDeadline)
		defer stop()
	}

	window := s.Window
	if window <= 0 {
		window = DefaultWindow
	}
	r := newRelay(
		func(ctx context.Context, b []byte) error { return poster.Post(ctx, job.ConnectionID, b) },
		func(seq int, text string) wsapi.Frame {
			return wsapi.Frame{Type: wsapi.TypeDelta, RequestID: job.RequestID, ConversationID: job.ConversationID, Seq: &seq, Text: text}
		},
		window, s.now)
	h := &replyHandler{job: job, poster: poster, relay: r, model: m.ModelID}
	start := s.now()
	res, streamErr := s.Model.Stream(streamCtx, req, h)
	r.close()

	if !r.firstPost.IsZero() {
		sum.TTFT = r.firstPost.Sub(start)
	}
	sum.Deltas = r.seq
	if res.Model != "" {
		sum.Model = res.Model
	}
	sum.InputTokens, sum.OutputTokens = res.Usage.InputTokens, res.Usage.OutputTokens
	sum.CacheRead, sum.CacheWrite = res.Usage.CacheReadInputTokens, res.Usage.CacheCreationInputTokens
	sum.StopReason = res.StopReason

	gone := isGone(r.Err()) || isGone(streamErr)
	usage := store.Usage{
		InputTokens:              res.Usage.InputTokens,
		OutputTokens:             res.Usage.OutputTokens,
		CacheReadInputTokens:     res.Usage.CacheReadInputTokens,
		CacheCreationInputTokens: res.Usage.CacheCreationInputTokens,
	}

	// What is stored is what the client was sent, so concatenated deltas
	// equal the stored message; when the client left, all that was produced.
	text := r.sent.String()
	if gone {
		text = r.produced.String()
	}
	incomplete := streamErr != nil || r.Err() != nil
	now := s.now()
	var storeErr error
	if text != "" || !incomplete {
		storeErr = s.Store.PutMessage(context.WithoutCancel(ctx), store.Message{
			ConversationID: job.ConversationID,
			MessageID:      job.AssistantMessageID,
			UserID:         job.UserID,
			Role:           store.RoleAssistant,
			Text:           text,
			CreatedAt:      now,
			RequestID:      job.RequestID,
			Model:          sum.Model,
			StopReason:     res.StopReason,
			Incomplete:     incomplete,
			Usage:          usage,
		})
	}
	if usage.Total() > 0 {
		storeErr = errors.Join(storeErr, s.Store.AddUsage(context.WithoutCancel(ctx), job.UserID, Day(now), sum.Model, usage))
	}
	if err := s.Store.TouchConversation(context.WithoutCancel(ctx), job.UserID, job.ConversationID, "", now); err != nil && !errors.Is(err, store.ErrNotFound) {
		storeErr = errors.Join(storeErr, err)
	}

	switch {
	case gone:
		sum.Outcome = obs.OutcomeClientGone
		if err := s.Store.DeleteConnection(context.WithoutCancel(ctx), job.ConnectionID); err != nil {
			storeErr = errors.Join(storeErr, err)
		}
	case r.Err() != nil:
		sum.Outcome = obs.OutcomeServerError
		sum.Err = errors.Join(r.Err(), storeErr)
		return sum.Err
	case streamErr != nil:
		code, msg := modelErrorFrame(streamErr, context.Cause(streamCtx))
		sum.Outcome = obs.OutcomeModelError
		sum.Code = code
		sum.Err = streamErr
		s.postError(job, poster, code, msg)
	default:
		if err := poster.Post(context.WithoutCancel(ctx), job.ConnectionID, wsapi.Encode(wsapi.Frame{
			Type:           wsapi.TypeEnd,
			RequestID:      job.RequestID,
			ConversationID: job.ConversationID,
			MessageID:      job.AssistantMessageID,
			StopReason:     res.StopReason,
			Usage: &wsapi.Usage{
				InputTokens:              usage.InputTokens,
				OutputTokens:             usage.OutputTokens,
				CacheReadInputTokens:     usage.CacheReadInputTokens,
				CacheCreationInputTokens: usage.CacheCreationInputTokens,
			},
		})); err != nil && !isGone(err) {
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

// modelErrorFrame maps a failed model call to the client's error code.
func modelErrorFrame(err, cause error) (code, msg string) {
	switch {
	case errors.Is(err, ErrDeadline) || errors.Is(cause, ErrDeadline):
		return wsapi.CodeUpstreamError, "the reply took too long and was cut short"
	case claude.KindOf(err) == claude.KindRateLimited:
		return wsapi.CodeRateLimited, "the model is busy; try again in a moment"
	default:
		return wsapi.CodeUpstreamError, "the model could not answer; try again"
	}
}

func (s *Service) postError(job Job, p wsapi.Poster, code, msg string) {
	// Best effort: if the client is gone there is no one to tell.
	_ = p.Post(context.Background(), job.ConnectionID, wsapi.Encode(wsapi.Frame{
		Type: wsapi.TypeError, RequestID: job.RequestID, Code: code, Message: msg,
	}))
}
