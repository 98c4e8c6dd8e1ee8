// Package store keeps connections, conversations, messages, saved prompts and
// token usage in DynamoDB (Dynamo, through aws-sdk-go-v2). Its tests and the
// handlers' run against DynamoDB Local, AWS's own emulator, so there is no
// second, in-memory implementation to keep in step.
//
// Ownership is enforced here, not in callers: every user-owned item is keyed
// by userId, so another user's id is simply not found.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/p2/buddy/lambda/tokens"
)

var (
	// ErrNotFound: the item does not exist, has expired, or belongs to
	// someone else (indistinguishable on purpose).
	ErrNotFound = errors.New("store: not found")
	// ErrQuotaExceeded: the user's daily token counter has reached the limit.
	ErrQuotaExceeded = errors.New("store: daily token quota exceeded")
	// ErrBadCursor: a pagination cursor that this store did not issue.
	ErrBadCursor = errors.New("store: invalid cursor")
	// ErrExists: a create whose id is already taken.
	ErrExists = errors.New("store: already exists")
	// ErrLimit: a create that would take the user past their limit.
	ErrLimit = errors.New("store: limit reached")
)

// Roles of a message.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

type Connection struct {
	ConnectionID string
	UserID       string
	ConnectedAt  time.Time
	ExpiresAt    time.Time
}

type Conversation struct {
	UserID         string
	ConversationID string
	Title          string
	// PromptID is the saved prompt last applied; replies without a promptId
	// keep using it.
	PromptID string
	// Model is the model of the conversation's last message.
	Model     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

type Message struct {
	ConversationID string
	MessageID      string // time-ordered: sorting by id is sorting by time
	UserID         string
	Role           string
	Text           string
	CreatedAt      time.Time
	RequestID      string
	// Assistant messages only.
	Model      string
	StopReason string
	Incomplete bool // the reply was cut short (stopped, orphaned, upstream error)
	// Status is StatusStreaming while the reply runs, then how it ended;
	// a user's message is StatusComplete.
	Status string
	// Frames is how the reply's text was cut into delta (and thinking)
	// frames, so a resume replays them as first sent.
	Frames []Frame
	// ErrorCode is the client error code that ended a failed reply.
	ErrorCode string
	// Thinking is the reply's extended thinking text, kept apart from the
	// answer, with the signature the API gave it.
	Thinking          string
	ThinkingSignature string
	// CostUSD is the reply's estimated cost at list prices.
	CostUSD float64
	Usage   tokens.Usage
}

// State is the message's status as clients see it: a message stored
// without one (a user's, or a reply stored before statuses were kept) is
// complete unless flagged incomplete.
func (m Message) State() string {
	switch {
	case m.Status != "":
		return m.Status
	case m.Incomplete:
		return StatusIncomplete
	}
	return StatusComplete
}

type Prompt struct {
	UserID    string
	PromptID  string
	Name      string
	Text      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// UsageRow is one day's usage of one model.
type UsageRow struct {
	Day   string // YYYY-MM-DD, UTC
	Model string
	tokens.Usage
}

// Page is one page of a listing; Next, the cursor of the page that
// follows (older messages, for ListMessagesPage), is empty on the last.
type Page[T any] struct {
	Items []T
	Next  string
}

// MessageBound is what one page of messages may hold: at most Limit
// messages (clamped to 1..200, 100 when unset) whose Size adds up to at
// most Bytes (0: no byte bound). Size is what a message costs the caller
// (its JSON in a response, its turn in a model request); nil counts its
// text. The newest message of a page is in it whatever its size, so that
// paging always moves on.
type MessageBound struct {
	Limit int
	Bytes int
	Size  func(Message) int
}

type Store interface {
	PutConnection(ctx context.Context, c Connection) error
	// GetConnection answers ErrNotFound for an expired connection too:
	// DynamoDB's TTL deletes lazily.
	GetConnection(ctx context.Context, connectionID string) (Connection, error)
	DeleteConnection(ctx context.Context, connectionID string) error

	// CreateConversation answers ErrExists when the id is taken.
	CreateConversation(ctx context.Context, c Conversation) error
	GetConversation(ctx context.Context, userID, conversationID string) (Conversation, error)
	// ListConversations pages newest-updated first; limit is clamped to 1..100.
	ListConversations(ctx context.Context, userID string, limit int, cursor string) (Page[Conversation], error)
	RenameConversation(ctx context.Context, userID, conversationID, title string, at time.Time) (Conversation, error)
	// TouchConversation records activity (and the prompt in use, when not
	// empty); ErrNotFound when the conversation is gone.
	TouchConversation(ctx context.Context, userID, conversationID, promptID string, at time.Time) error
	// DeleteConversation removes the conversation, then its messages.
	DeleteConversation(ctx context.Context, userID, conversationID string) error

	PutMessage(ctx context.Context, m Message) error
	// ListMessages returns a whole conversation's messages oldest first,
	// however many: for tests and tools. What serves a request reads
	// bounded pages (ListMessagesPage). Callers check ownership with
	// GetConversation first.
	ListMessages(ctx context.Context, conversationID string) ([]Message, error)
	// ListMessagesPage returns the newest messages of the user's
	// conversation before cursor ("": the newest of all) that fit b, oldest
	// first; Next leads to older ones. Only the user's own messages are
	// listed, and a cursor only for the user and conversation it was issued
	// for (ErrBadCursor otherwise).
	ListMessagesPage(ctx context.Context, userID, conversationID string, b MessageBound, cursor string) (Page[Message], error)

	// CreatePrompt answers ErrExists when the id is taken and ErrLimit when
	// the user already has limit prompts (limit 0: no limit), atomically:
	// concurrent creates never take a user past the limit.
	CreatePrompt(ctx context.Context, p Prompt, limit int) error
	GetPrompt(ctx context.Context, userID, promptID string) (Prompt, error)
	// ListPrompts returns the user's prompts oldest first.
	ListPrompts(ctx context.Context, userID string) ([]Prompt, error)
	// UpdatePrompt replaces name and text; ErrNotFound when absent.
	UpdatePrompt(ctx context.Context, p Prompt) (Prompt, error)
	DeletePrompt(ctx context.Context, userID, promptID string) error

	// The reply path (replies.go).
	AcceptMessage(ctx context.Context, a Acceptance) error
	ClaimReply(ctx context.Context, r Reply, at time.Time) error
	GetReply(ctx context.Context, messageID string) (Reply, error)
	AddListener(ctx context.Context, userID, messageID string, l Listener) (Reply, error)
	RequestStop(ctx context.Context, userID, messageID string) error
	CheckpointReply(ctx context.Context, conversationID, messageID, text string, frames []Frame) error
	GetMessage(ctx context.Context, userID, conversationID, messageID string) (Message, error)
	FinishReply(ctx context.Context, f Finish) error
	FailUnstarted(ctx context.Context, r Reply, code string) error
	MarkFailed(ctx context.Context, r Reply, code string) error
	// Running counts the user's running replies.
	Running(ctx context.Context, userID string) (int, error)
	// Today is the user's quota counter for day: tokens used and reserved.
	Today(ctx context.Context, userID, day string) (used, reserved int64, err error)

	// ListUsage returns rows with from <= day <= to, by day then model.
	ListUsage(ctx context.Context, userID, from, to string) ([]UsageRow, error)
}
