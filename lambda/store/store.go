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
	// ErrContention: DynamoDB kept cancelling a write for meeting
	// concurrent transactions on the same items (TransactionConflict),
	// after retries. Nothing was written; the same write may succeed a
	// moment later.
	ErrContention = errors.New("store: too many concurrent writes to the same items")
)

// Roles of a message.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// The tags of Connection, Conversation, Message, Prompt and Reply are the
// attributes of their stored items (items.go encodes them). Empty strings,
// zero counters and false flags are left out (omitempty): an absent
// attribute reads back as the zero value, and items stay small.
// testdata/items.json pins their form.

type Connection struct {
	ConnectionID string    `dynamodbav:"connectionId"`
	UserID       string    `dynamodbav:"userId"`
	ConnectedAt  time.Time `dynamodbav:"connectedAt"`
	// Stored as epoch seconds: the only format DynamoDB TTL understands.
	ExpiresAt time.Time `dynamodbav:"expiresAt,unixtime"`
}

type Conversation struct {
	UserID         string `dynamodbav:"userId"`
	ConversationID string `dynamodbav:"conversationId"`
	Title          string `dynamodbav:"title,omitempty"`
	// PromptID is the saved prompt last applied; replies without a promptId
	// keep using it.
	PromptID string `dynamodbav:"promptId,omitempty"`
	// Model is the model of the conversation's last message.
	Model string `dynamodbav:"model,omitempty"`
	// InputBytes bounds what the conversation's next model request resends
	// before its new message: the last request's system prompt and turns
	// plus its answer, in bytes, which are at least its tokens (every
	// token is at least a byte). The acceptance reserves quota from it;
	// conversations stored before it was kept have none, and their reply
	// job reserves what its request turns out to need.
	InputBytes int64 `dynamodbav:"inputBytes,omitempty"`
	// Replying is the reply streaming in the conversation, which no new
	// message may follow, until ReplyingUntil (epoch seconds; a mark whose
	// job died lapses).
	Replying      string    `dynamodbav:"replying,omitempty"`
	ReplyingUntil int64     `dynamodbav:"replyingUntil,omitempty"`
	CreatedAt     time.Time `dynamodbav:"createdAt"`
	UpdatedAt     time.Time `dynamodbav:"updatedAt"`
}

type Message struct {
	ConversationID string    `dynamodbav:"conversationId"`
	MessageID      string    `dynamodbav:"messageId"` // time-ordered: sorting by id is sorting by time
	UserID         string    `dynamodbav:"userId"`
	Role           string    `dynamodbav:"role"`
	Text           string    `dynamodbav:"text,omitempty"`
	CreatedAt      time.Time `dynamodbav:"createdAt"`
	RequestID      string    `dynamodbav:"requestId,omitempty"`
	// Assistant messages only.
	Model      string `dynamodbav:"model,omitempty"`
	StopReason string `dynamodbav:"stopReason,omitempty"`
	Incomplete bool   `dynamodbav:"incomplete,omitempty"` // the reply was cut short (stopped, orphaned, upstream error)
	// Status is StatusStreaming while the reply runs, then how it ended;
	// a user's message is StatusComplete. Absent on messages stored before
	// statuses (State reads them as complete or incomplete).
	Status string `dynamodbav:"status,omitempty"`
	// Frames is how the reply's text was cut into delta (and thinking)
	// frames, so a resume replays them as first sent.
	Frames []Frame `dynamodbav:"frames,omitempty"`
	// ErrorCode is the client error code that ended a failed reply.
	ErrorCode string `dynamodbav:"errorCode,omitempty"`
	// Thinking is the reply's extended thinking text, kept apart from the
	// answer, with the signature the API gave it.
	Thinking          string `dynamodbav:"thinking,omitempty"`
	ThinkingSignature string `dynamodbav:"thinkingSignature,omitempty"`
	// CostUSD is the reply's estimated cost at list prices.
	CostUSD float64 `dynamodbav:"costUsd,omitempty"`
	// Attachments are the uploads a user's message carries, in order.
	Attachments []Attachment `dynamodbav:"attachments,omitempty"`
	// Usage is stored inline, its counters beside the message's attributes
	// (messageRecord).
	Usage tokens.Usage `dynamodbav:"-"`
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
	UserID    string    `dynamodbav:"userId"`
	PromptID  string    `dynamodbav:"promptId"`
	Name      string    `dynamodbav:"name,omitempty"`
	Text      string    `dynamodbav:"text,omitempty"`
	CreatedAt time.Time `dynamodbav:"createdAt"`
	UpdatedAt time.Time `dynamodbav:"updatedAt"`
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
	// Through, when set, is the newest message id listed: a reply's
	// history ends at its own user message.
	Through string
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
	ClaimReply(ctx context.Context, r Reply) error
	GetReply(ctx context.Context, messageID string) (Reply, error)
	AddListener(ctx context.Context, userID, messageID string, l Listener) (Reply, error)
	RequestStop(ctx context.Context, userID, messageID string) error
	CheckpointReply(ctx context.Context, conversationID, messageID, text string, frames []Frame) error
	GetMessage(ctx context.Context, userID, conversationID, messageID string) (Message, error)
	RemoveListeners(ctx context.Context, messageID string, connectionIDs ...string) error
	ExtendReservation(ctx context.Context, r Reply, extra, limit int64) error
	FinishReply(ctx context.Context, f Finish) error
	FailUnstarted(ctx context.Context, r Reply, code string) error
	MarkFailed(ctx context.Context, r Reply, code, model string, u tokens.Usage) error
	// CountResume counts a resume of the user's against limit a minute
	// (ErrRateLimited beyond it).
	CountResume(ctx context.Context, userID string, limit int) error
	// Running counts the user's running replies.
	Running(ctx context.Context, userID string) (int, error)
	// Today is the user's quota counter for day: tokens used and reserved.
	Today(ctx context.Context, userID, day string) (used, reserved int64, err error)

	// ListUsage returns rows with from <= day <= to, by day then model.
	ListUsage(ctx context.Context, userID, from, to string) ([]UsageRow, error)

	// Uploads (uploads.go).
	CreateUpload(ctx context.Context, u Upload, day string, perDay int) error
	GetUpload(ctx context.Context, userID, uploadID string) (Upload, error)
	GetUploads(ctx context.Context, userID string, ids []string) ([]Upload, error)
	SettleUpload(ctx context.Context, u Upload) (Upload, error)
	DeleteUpload(ctx context.Context, userID, uploadID string) error
	ConversationUploads(ctx context.Context, userID, conversationID string) ([]string, error)
}
