// Package chat is the message path of the websocket-message function: it
// accepts a sendMessage frame (quick, inside API Gateway's 29 s integration
// timeout) and then runs the reply as a separate Job that streams Claude's
// answer to the connection through @connections posts.
//
// Why a Job: API Gateway stops waiting for a WebSocket integration after
// 29 s, and a long Opus reply takes longer. Accept stores the user's message
// and hands a Job to a Dispatcher; in AWS the function invokes itself
// asynchronously with it (InvocationType Event, no retries), so the reply is
// bounded by the function timeout, not by API Gateway. Locally and in tests
// the same Job runs in a goroutine or inline.
package chat

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/models"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/wsapi"
)

// JobKind marks an event as a reply job, so the function can tell it from
// an API Gateway event.
const JobKind = "buddy.reply"

// Job is one reply to stream. It travels as the async invocation payload,
// and a payload Lambda gave up on waits in the failure queues for up to
// 14 days: so it carries ids and numbers only, never a message's or a
// prompt's text (the job reads the history beside claiming the reply,
// which costs no round trip).
type Job struct {
	Kind               string `json:"kind"`
	Endpoint           string `json:"endpoint"` // @connections endpoint
	ConnectionID       string `json:"connectionId"`
	RequestID          string `json:"requestId"`
	UserID             string `json:"userId"`
	ConversationID     string `json:"conversationId"`
	UserMessageID      string `json:"userMessageId"`
	AssistantMessageID string `json:"assistantMessageId"`
	Model              string `json:"model"`
	// ThinkingBudget turns extended thinking on (0: off); Effort is the
	// effort level asked for ("": the model's default).
	ThinkingBudget int64  `json:"thinkingBudget,omitempty"`
	Effort         string `json:"effort,omitempty"`
	// PromptID is the saved prompt the reply follows; Run reads its text
	// beside claiming the reply.
	PromptID string `json:"promptId,omitempty"`
	// Opens: the user's message opens its conversation, so it is the whole
	// history (one item read, not a query).
	Opens      bool      `json:"opens,omitempty"`
	AcceptedAt time.Time `json:"acceptedAt"`
	// What the acceptance took, for the finish to give back: the tokens
	// reserved on the day's quota counter (an upper bound of the request's
	// input, plus the max tokens) and the entry in the running set.
	Day       string `json:"day"`
	Reserved  int64  `json:"reserved"`
	LiveEntry string `json:"liveEntry"`
}

// assistantMessage is the reply's message with status, as of at: the
// fields every stage of the reply writes alike.
func (j Job) assistantMessage(at time.Time, status string) store.Message {
	return store.Message{
		ConversationID: j.ConversationID,
		MessageID:      j.AssistantMessageID,
		UserID:         j.UserID,
		Role:           store.RoleAssistant,
		CreatedAt:      at,
		RequestID:      j.RequestID,
		Model:          j.Model,
		Status:         status,
		Incomplete:     status != store.StatusComplete && status != store.StatusStreaming,
	}
}

// reply is the job's live record as the acceptance wrote it.
func (j Job) reply() store.Reply {
	return store.Reply{
		MessageID:      j.AssistantMessageID,
		UserID:         j.UserID,
		ConversationID: j.ConversationID,
		ConnectionID:   j.ConnectionID,
		RequestID:      j.RequestID,
		Status:         store.StatusStreaming,
		Day:            j.Day,
		Reserved:       j.Reserved,
		LiveEntry:      j.LiveEntry,
	}
}

// Dispatcher starts a Job elsewhere (another invocation, a goroutine).
type Dispatcher interface {
	Dispatch(ctx context.Context, job Job) error
}

// PosterFor returns the Poster for an @connections endpoint.
type PosterFor func(endpoint string) wsapi.Poster

// Service holds the dependencies of the message path.
type Service struct {
	Store    store.Store
	Model    claude.Streamer
	Posters  PosterFor
	Dispatch Dispatcher
	Config   config.Runtime
	Log      *slog.Logger
	// Window is the delta coalescing window (DefaultWindow when zero).
	Window time.Duration
	// PostTimeout bounds each @connections post of a reply
	// (wsapi.DefaultPostTimeout when zero).
	PostTimeout time.Duration
	// Poll is how often a running reply reads its live record for stops
	// and listeners (DefaultPoll when zero).
	Poll time.Duration
	// ReplayBudget bounds a replay of an ended reply inside a resume
	// (DefaultReplayBudget when zero).
	ReplayBudget time.Duration
	// Objects holds the attachments' bytes.
	Objects Objects
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

const maxTitleRunes = 60

// Reject is an answer to the client that ends a request early.
type Reject struct {
	Code    string
	Message string
	Err     error // internal cause, for the log only
	// RetryAfter, on a rate_limited answer, is when to try again.
	RetryAfter time.Duration
}

func reject(code, msg string, err error) *Reject { return &Reject{Code: code, Message: msg, Err: err} }

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Day is the UTC day of t as the usage table keys it.
func Day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// liveFor bounds a reply's entry in its user's running set and its
// conversation's replying mark: a job waits at most its async event age
// (2 minutes) and runs at most Lambda's 15, so an entry older than this
// belongs to a job that died without giving it back.
const liveFor = 20 * time.Minute

// promptAllowance is what a message naming a saved prompt reserves for
// it before knowing its size: most prompts are smaller; a larger one is
// accepted again with its own size.
const promptAllowance = 8 << 10

// contentionRetry is the hint a request refused for contention carries:
// the store has already retried it for a few seconds, so the user's other
// requests are likely through by then.
const contentionRetry = time.Second

// Accept validates a sendMessage for user and stores it with its reply's
// start in one transaction (store.AcceptMessage): nothing is stored unless
// the request is valid, the ids are the user's own, the quota admits it and
// fewer than MaxInflightReplies replies are running; then the user's
// message is stored before Accept returns, so it is never lost whatever
// happens to the reply.
func (s *Service) Accept(ctx context.Context, userID, connectionID, endpoint string, f wsapi.ClientFrame) (Job, *Reject) {
	now := s.now()
	th, rej := s.resolve(ctx, userID, f)
	if rej != nil {
		return Job{}, rej
	}
	if th.conv.Replying != "" && now.Unix() < th.conv.ReplyingUntil {
		return Job{}, replyStreaming()
	}
	model, rej := s.choose(th.conv, f)
	if rej != nil {
		return Job{}, rej
	}
	if th.isNew {
		title := f.Text
		if strings.TrimSpace(title) == "" && len(th.uploads) > 0 {
			title = th.uploads[0].Name // a message of attachments only
		}
		th.conv = newConversation(userID, title, th.promptID, now)
	}
	attachments, rej := s.attach(th.uploads, th.conv.ConversationID, f.Text)
	if rej != nil {
		return Job{}, rej
	}
	// A saved prompt the message names is not read before the
	// transaction (a round trip before every first message with one): the
	// reservation counts promptAllowance for it and the transaction checks
	// that it is no larger; a larger one is accepted again with its size.
	var allowance int64
	if f.PromptID != "" {
		allowance = promptAllowance
	}
	job := Job{
		Kind:               JobKind,
		Endpoint:           endpoint,
		ConnectionID:       connectionID,
		RequestID:          f.RequestID,
		UserID:             userID,
		ConversationID:     th.conv.ConversationID,
		UserMessageID:      ids.New(),
		AssistantMessageID: ids.New(), // made after the user's, so it sorts after it
		Model:              model,
		ThinkingBudget:     int64(f.Thinking.BudgetTokens),
		Effort:             f.Effort,
		PromptID:           th.promptID,
		Opens:              th.isNew,
		AcceptedAt:         now,
		Day:                Day(now),
	}
	job.LiveEntry = store.LiveEntry(now.Add(liveFor), job.AssistantMessageID)
	conv := th.conv
	conv.UpdatedAt, conv.PromptID, conv.Model = now, th.promptID, model
	var err error
	for range 2 {
		job.Reserved = s.reservation(th.conv, f.Text, attachmentTokens(attachments)) + allowance
		if limit := s.Config.DailyTokenLimit; limit > 0 && job.Reserved > limit {
			return Job{}, reject(errcode.QuotaExceeded, fmt.Sprintf(
				"this message needs up to %d tokens (the conversation so far, the message and a reply of up to %d), more than the daily limit of %d: start a new conversation",
				job.Reserved, s.Config.Model.MaxTokens, limit), nil)
		}
		err = s.Store.AcceptMessage(ctx, store.Acceptance{
			Conversation:    conv,
			New:             th.isNew,
			CheckPromptID:   f.PromptID,
			PromptAllowance: allowance,
			UserMessage: store.Message{
				ConversationID: job.ConversationID,
				MessageID:      job.UserMessageID,
				UserID:         userID,
				Role:           store.RoleUser,
				Text:           f.Text,
				CreatedAt:      now,
				RequestID:      f.RequestID,
				Attachments:    attachments,
			},
			Assistant:     job.assistantMessage(now, store.StatusStreaming),
			Reply:         job.reply(),
			DailyLimit:    s.Config.DailyTokenLimit,
			MaxInflight:   s.Config.MaxInflightReplies,
			ReplyingUntil: now.Add(liveFor),
		})
		var size *store.PromptSizeError
		if !errors.As(err, &size) {
			break
		}
		allowance = size.Bytes
	}
	reserved := job.Reserved
	switch {
	case err == nil:
		return job, nil
	case errors.Is(err, store.ErrPromptNotFound):
		return Job{}, reject(errcode.NotFound, "prompt not found", nil)
	case errors.Is(err, store.ErrNotReady), errors.Is(err, store.ErrAttached):
		// An upload changed between the read and the transaction.
		return Job{}, reject(errcode.BadRequest, "an attachment is not ready or belongs to another conversation: "+err.Error(), nil)
	case errors.Is(err, store.ErrReplyRunning):
		return Job{}, replyStreaming()
	case errors.Is(err, store.ErrNotFound):
		return Job{}, reject(errcode.NotFound, "conversation not found", nil)
	case errors.Is(err, store.ErrQuotaExceeded):
		return Job{}, reject(errcode.QuotaExceeded,
			fmt.Sprintf("daily token limit of %d reached (this message reserves up to %d tokens until its reply ends); it resets at 00:00 UTC", s.Config.DailyTokenLimit, reserved), nil)
	case errors.Is(err, store.ErrRateLimited):
		return Job{}, reject(errcode.RateLimited,
			fmt.Sprintf("%d replies are running already; wait for one to end or stop one", s.Config.MaxInflightReplies), nil)
	case errors.Is(err, store.ErrContention):
		return Job{}, busy(err)
	case errors.Is(err, store.ErrPromptTooLarge):
		// It grew again between two tries: edited meanwhile.
		r := reject(errcode.RateLimited, "the saved prompt was changing while the message was sent; send it again", err)
		r.RetryAfter = contentionRetry
		return Job{}, r
	default:
		return Job{}, reject(errcode.Internal, "could not store the message", err)
	}
}

// replyStreaming refuses a message that would follow a reply still
// streaming: its history would lack that reply.
func replyStreaming() *Reject {
	return reject(errcode.BadRequest, "a reply is still streaming; stop it or wait for its end", nil)
}

// busy answers a request the store refused for contention with the user's
// own concurrent requests: not our fault, and gone in a moment.
func busy(err error) *Reject {
	r := reject(errcode.RateLimited, fmt.Sprintf("too many of your requests at once; try again in %d s", int(contentionRetry/time.Second)), err)
	r.RetryAfter = contentionRetry
	return r
}

// reservation is what a message in conv reserves of the day's quota: an
// upper bound of its request's input, plus the max tokens of its reply.
// The input is bounded in bytes, which are at least its tokens: what the
// conversation's last request resent and answered (InputBytes), plus the
// new turn, and never more than the context window leaves for the input.
// The reply job measures the real request before sending it and reserves
// more should it need to (a saved prompt that grew, a conversation stored
// before its size was kept), so the bound holds whatever the estimate.
func (s *Service) reservation(conv store.Conversation, text string, attached int64) int64 {
	maxTokens := s.Config.Model.MaxTokens
	input := conv.InputBytes
	if input == 0 {
		input = turnOverhead // the system turn's, with or without a prompt
	}
	input += int64(len(text)+turnOverhead) + attached
	return min(input, contextTokens-maxTokens) + maxTokens
}

// Effort levels a sendMessage may ask for.
var effortLevels = []string{"low", "medium", "high"}

// choose is the model that answers f in conv, and checks what f asks of
// it. The server decides what is allowed: a model outside ALLOWED_MODELS,
// thinking on a model without it or out of bounds, effort on a model
// without it are bad requests, refused before anything is stored.
func (s *Service) choose(conv store.Conversation, f wsapi.ClientFrame) (string, *Reject) {
	allowed := s.Config.AllowedModels
	if len(allowed) == 0 {
		allowed = []string{s.Config.Model.ModelID}
	}
	model := allowed[0]
	switch {
	case f.Model != "":
		if !slices.Contains(allowed, f.Model) {
			return "", reject(errcode.BadRequest, fmt.Sprintf("model %q is not offered; GET /models lists those that are", f.Model), nil)
		}
		model = f.Model
	case slices.Contains(allowed, conv.Model):
		// A conversation keeps the model of its last message (unless
		// the operator has withdrawn it since).
		model = conv.Model
	}
	info, _ := models.Lookup(model)
	if b := int64(f.Thinking.BudgetTokens); b != 0 {
		maxTokens := s.Config.Model.MaxTokens
		switch {
		case !info.Thinking:
			return "", reject(errcode.BadRequest, fmt.Sprintf("model %s does not offer extended thinking", model), nil)
		case b < models.MinThinkingBudget || b >= maxTokens:
			return "", reject(errcode.BadRequest, fmt.Sprintf("thinking.budgetTokens must be at least %d and below the max tokens (%d)", models.MinThinkingBudget, maxTokens), nil)
		}
	}
	if f.Effort != "" {
		switch {
		case !slices.Contains(effortLevels, f.Effort):
			return "", reject(errcode.BadRequest, `effort must be "low", "medium" or "high"`, nil)
		case !info.Effort:
			return "", reject(errcode.BadRequest, fmt.Sprintf("model %s does not take an effort level", model), nil)
		}
	}
	return model, nil
}

// thread is where a message goes: its conversation (still to be created
// when isNew), the saved prompt the reply follows and the uploads the
// message carries.
type thread struct {
	conv     store.Conversation
	isNew    bool
	promptID string // the prompt the conversation keeps; "" for none
	uploads  []store.Upload
}

// resolve finds the frame's conversation and the prompt the reply
// follows. A prompt named by the frame is checked inside the acceptance's
// transaction (no read here); the conversation's own prompt may have been
// deleted since, and then the reply goes on without one.
func (s *Service) resolve(ctx context.Context, userID string, f wsapi.ClientFrame) (thread, *Reject) {
	th := thread{isNew: f.ConversationID == ""}
	if f.PromptID != "" && !ids.Valid(f.PromptID) {
		return th, reject(errcode.NotFound, "prompt not found", nil)
	}
	// The conversation and the uploads the message carries are read side
	// by side: one round trip.
	var convRej, upRej *Reject
	both(func() error {
		if !th.isNew {
			th.conv, convRej = s.getConversation(ctx, userID, f.ConversationID)
		}
		return nil
	}, func() error {
		th.uploads, upRej = s.readUploads(ctx, userID, f)
		return nil
	})
	if convRej != nil {
		return th, convRej
	}
	if upRej != nil {
		return th, upRej
	}
	th.promptID = cmp.Or(f.PromptID, th.conv.PromptID)
	return th, nil
}

// newConversation is the conversation a first message opens, titled after
// that message.
func newConversation(userID, text, promptID string, now time.Time) store.Conversation {
	return store.Conversation{
		UserID:         userID,
		ConversationID: ids.New(),
		Title:          Title(text),
		PromptID:       promptID,
		CreatedAt:      now,
		UpdatedAt:      now,
	}
}

// Payload encodes the job for an asynchronous invocation: ids and numbers,
// far below manifest.AsyncPayloadLimit.
func (j Job) Payload() ([]byte, error) {
	b, err := json.Marshal(j)
	if err == nil && len(b) > manifest.AsyncPayloadLimit {
		return nil, fmt.Errorf("reply job of %d bytes is over Lambda's async payload limit", len(b))
	}
	return b, err
}

// both runs f and g concurrently and returns their errors.
func both(f, g func() error) (ferr, gerr error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		gerr = g()
	}()
	ferr = f()
	<-done
	return ferr, gerr
}

func (s *Service) getConversation(ctx context.Context, userID, id string) (store.Conversation, *Reject) {
	if !ids.Valid(id) {
		// Junk is indistinguishable from an unknown id, by design.
		return store.Conversation{}, reject(errcode.NotFound, "conversation not found", nil)
	}
	c, err := s.Store.GetConversation(ctx, userID, id)
	if errors.Is(err, store.ErrNotFound) {
		return c, reject(errcode.NotFound, "conversation not found", nil)
	}
	if err != nil {
		return c, reject(errcode.Internal, "could not load the conversation", err)
	}
	return c, nil
}

// Title derives a conversation title from its first message.
func Title(text string) string {
	t := strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(t) <= maxTitleRunes {
		return t
	}
	r := []rune(t)[:maxTitleRunes-1]
	return strings.TrimSpace(string(r)) + "…"
}
