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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/wsapi"
)

// JobKind marks an event as a reply job, so the function can tell it from
// an API Gateway event.
const JobKind = "buddy.reply"

// Job is one reply to stream. It travels as the async invocation payload
// (Payload keeps it under manifest.AsyncPayloadLimit), so it carries ids, the system
// prompt and at most the first turn, never a history.
type Job struct {
	Kind               string `json:"kind"`
	Endpoint           string `json:"endpoint"` // @connections endpoint
	ConnectionID       string `json:"connectionId"`
	RequestID          string `json:"requestId"`
	UserID             string `json:"userId"`
	ConversationID     string `json:"conversationId"`
	UserMessageID      string `json:"userMessageId"`
	AssistantMessageID string `json:"assistantMessageId"`
	System             string `json:"system,omitempty"`
	// FirstTurn is the user's message when it opens the conversation: then
	// it is the whole history and Run need not read it back from the store
	// (one round trip less before the first token). Empty: Run loads the
	// history. Payload drops it when the job would not fit.
	FirstTurn  string    `json:"firstTurn,omitempty"`
	AcceptedAt time.Time `json:"acceptedAt"`
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
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

const maxTitleRunes = 60

// History bounds: the newest turns that fit are read and sent to the
// model. The request must fit the model's context window, which holds the
// system prompt, the history and the reply (max tokens); every allowed
// model (Claude 4.5) has 200K tokens. Tokens are only known after a
// count_tokens call, a round trip before every reply, but a token stands
// for at least one byte of text (the tokenizer works on bytes), so bytes
// counted as tokens never underestimate: a history within historyBudget
// fits whatever its language. The price is that ordinary text (some four
// bytes a token) fills about a quarter of the window before the oldest
// turns are left out; the newest turns, the ones that matter most, are
// always kept.
const (
	contextTokens   = 200_000
	maxHistoryTurns = 100
	// turnOverhead allows for what frames each turn (role markers) and
	// the system prompt in the model's input.
	turnOverhead = 16
)

// historyBudget is the bytes of history a request with this system prompt
// and max tokens can carry. It is positive whatever the configuration
// (max tokens ≤ 64 000, a system prompt ≤ 20 000 characters), and the
// newest message goes out even when it alone is larger.
func historyBudget(system string, maxTokens int64) int {
	return max(1, contextTokens-int(maxTokens)-len(system)-turnOverhead*(maxHistoryTurns+1))
}

// turnBytes is what a stored message costs in the model's input.
func turnBytes(m store.Message) int { return len(m.Text) + turnOverhead }

// Reject is an answer to the client that ends a request early.
type Reject struct {
	Code    string
	Message string
	Err     error // internal cause, for the log only
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

// Accept validates a sendMessage for user and prepares its Job. Nothing is
// stored unless the request is valid, the ids are the user's own and the
// quota admits it; then the user's message is stored before Accept returns,
// so it is never lost whatever happens to the reply.
func (s *Service) Accept(ctx context.Context, userID, connectionID, endpoint string, f wsapi.ClientFrame) (Job, *Reject) {
	now := s.now()
	th, rej := s.resolve(ctx, userID, f)
	if rej != nil {
		return Job{}, rej
	}
	if rej := s.reserve(ctx, userID, now); rej != nil {
		return Job{}, rej
	}
	if th.isNew {
		th.conv = newConversation(userID, f.Text, th.promptID, now)
	}
	msg := store.Message{
		ConversationID: th.conv.ConversationID,
		MessageID:      ids.New(),
		UserID:         userID,
		Role:           store.RoleUser,
		Text:           f.Text,
		CreatedAt:      now,
		RequestID:      f.RequestID,
	}
	assistantMsgID := ids.New() // made after the user's, so it sorts after it
	if rej := s.save(ctx, th, msg); rej != nil {
		return Job{}, rej
	}
	return th.job(msg, assistantMsgID, connectionID, endpoint), nil
}

// thread is where a message goes: its conversation (still to be created
// when isNew) and the prompt the reply follows.
type thread struct {
	conv     store.Conversation
	isNew    bool
	promptID string // the prompt the conversation keeps; "" for none
	system   string // its text
}

// resolve finds the frame's conversation and prompt. A prompt named by
// the frame must exist; the conversation's own prompt may have been
// deleted since, and then the reply goes on without one.
func (s *Service) resolve(ctx context.Context, userID string, f wsapi.ClientFrame) (thread, *Reject) {
	th := thread{isNew: f.ConversationID == ""}
	if !th.isNew {
		c, rej := s.getConversation(ctx, userID, f.ConversationID)
		if rej != nil {
			return th, rej
		}
		th.conv = c
	}
	th.promptID = f.PromptID
	if th.promptID == "" {
		th.promptID = th.conv.PromptID
	}
	if th.promptID == "" {
		return th, nil
	}
	p, err := s.Store.GetPrompt(ctx, userID, th.promptID)
	switch {
	case err == nil:
		th.system = p.Text
	case errors.Is(err, store.ErrNotFound) && f.PromptID != "":
		return th, reject(errcode.NotFound, "prompt not found", nil)
	case errors.Is(err, store.ErrNotFound):
		th.promptID = ""
	default:
		return th, reject(errcode.Internal, "could not load the prompt", err)
	}
	return th, nil
}

// reserve admits the request against the user's daily token limit.
func (s *Service) reserve(ctx context.Context, userID string, now time.Time) *Reject {
	err := s.Store.ReserveQuota(ctx, userID, Day(now), s.Config.DailyTokenLimit)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrQuotaExceeded):
		return reject(errcode.QuotaExceeded,
			fmt.Sprintf("daily token limit of %d reached; it resets at 00:00 UTC", s.Config.DailyTokenLimit), nil)
	default:
		return reject(errcode.Internal, "could not check the quota", err)
	}
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

// save writes the conversation row (created, or touched with the prompt
// it now follows) and the user's message. Everything is checked by now, so
// the two are written side by side: they are independent items and this is
// the path to the first token. A failed create can leave an unreachable
// message row behind (messages are only read through their conversation);
// the client is told to try again.
func (s *Service) save(ctx context.Context, th thread, msg store.Message) *Reject {
	convErr, msgErr := both(func() error {
		if th.isNew {
			return s.Store.CreateConversation(ctx, th.conv)
		}
		return s.Store.TouchConversation(ctx, msg.UserID, th.conv.ConversationID, th.promptID, msg.CreatedAt)
	}, func() error {
		return s.Store.PutMessage(ctx, msg)
	})
	if convErr != nil {
		return reject(errcode.Internal, "could not save the conversation", convErr)
	}
	if msgErr != nil {
		return reject(errcode.Internal, "could not store the message", msgErr)
	}
	return nil
}

// job is the reply Job for the user's message msg. A new conversation's
// first message is its whole history, so it travels with the job.
func (th thread) job(msg store.Message, assistantMsgID, connectionID, endpoint string) Job {
	firstTurn := ""
	if th.isNew {
		firstTurn = msg.Text
	}
	return Job{
		Kind:               JobKind,
		Endpoint:           endpoint,
		ConnectionID:       connectionID,
		RequestID:          msg.RequestID,
		UserID:             msg.UserID,
		ConversationID:     msg.ConversationID,
		UserMessageID:      msg.MessageID,
		AssistantMessageID: assistantMsgID,
		System:             th.system,
		FirstTurn:          firstTurn,
		AcceptedAt:         msg.CreatedAt,
	}
}

// Payload encodes the job for an asynchronous invocation. A message full of
// characters JSON escapes (up to six bytes each) can push a job with its
// first turn past manifest.AsyncPayloadLimit; then the turn is left out and Run reads
// it from the store. The system prompt alone always fits (prompt limits).
func (j Job) Payload() ([]byte, error) {
	b, err := json.Marshal(j)
	if err != nil || len(b) <= manifest.AsyncPayloadLimit || j.FirstTurn == "" {
		return b, err
	}
	j.FirstTurn = ""
	return json.Marshal(j)
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

// history turns the newest page of stored messages into model turns, in
// order. Empty (failed) assistant turns are skipped, and so is an
// assistant turn at the start: the Messages API wants the first turn to
// be the user's.
func history(msgs []store.Message) []claude.Turn {
	turns := make([]claude.Turn, 0, len(msgs))
	for _, m := range msgs {
		if m.Text == "" || (len(turns) == 0 && m.Role != store.RoleUser) {
			continue
		}
		turns = append(turns, claude.Turn{Role: m.Role, Text: m.Text})
	}
	return turns
}
