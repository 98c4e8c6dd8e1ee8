package store

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/p2/buddy/lambda/tokens"
)

// Attribute names the store's expressions use, next to the key attributes
// shared with the table definitions in lambda/manifest. Struct tags below
// cannot refer to constants; TestItemAttributeNames ties the two together.
const (
	attrTitle         = "title"
	attrName          = "name"
	attrText          = "text"
	attrInputTokens   = "inputTokens"
	attrOutputTokens  = "outputTokens"
	attrCacheRead     = "cacheReadInputTokens"
	attrCacheCreation = "cacheCreationInputTokens"
	attrCacheWrite5m  = "cacheWrite5mInputTokens"
	attrCacheWrite1h  = "cacheWrite1hInputTokens"
	// On the daily quota counter item of the usage table.
	attrTokens   = "tokens"
	attrRequests = "requests"
	// On the prompt counter item of the prompts table: how many prompts
	// the user has.
	attrPrompts = "prompts"
)

// timeLayout is fixed width (nanoseconds always printed, always UTC), so the
// lexical order DynamoDB sorts strings by is time order; updatedAt is the
// sort key of the conversations index.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// fixedTime is a time stored in timeLayout. attributevalue's own time
// encoding (RFC 3339 with trailing zeros cut) does not sort as time.
type fixedTime time.Time

func (t fixedTime) MarshalDynamoDBAttributeValue() (types.AttributeValue, error) {
	return attrS(formatTime(time.Time(t))), nil
}

func (t *fixedTime) UnmarshalDynamoDBAttributeValue(av types.AttributeValue) error {
	s, ok := av.(*types.AttributeValueMemberS)
	if !ok {
		return fmt.Errorf("time is %T, want a string", av)
	}
	if s.Value == "" {
		*t = fixedTime{}
		return nil
	}
	v, err := time.Parse(timeLayout, s.Value)
	if err != nil {
		return fmt.Errorf("%q is not a time", s.Value)
	}
	*t = fixedTime(v)
	return nil
}

type item = map[string]types.AttributeValue

func attrS(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

// The records are the stored items. Empty strings, zero counters and false
// flags are left out (omitempty): an absent attribute reads back as the
// zero value, and items stay small. testdata/items.json pins their form.

type connectionRecord struct {
	ConnectionID string    `dynamodbav:"connectionId"`
	UserID       string    `dynamodbav:"userId"`
	ConnectedAt  fixedTime `dynamodbav:"connectedAt"`
	// Epoch seconds: the only format DynamoDB TTL understands.
	ExpiresAt int64 `dynamodbav:"expiresAt"`
}

type conversationRecord struct {
	UserID         string    `dynamodbav:"userId"`
	ConversationID string    `dynamodbav:"conversationId"`
	Title          string    `dynamodbav:"title,omitempty"`
	PromptID       string    `dynamodbav:"promptId,omitempty"`
	Model          string    `dynamodbav:"model,omitempty"`
	CreatedAt      fixedTime `dynamodbav:"createdAt"`
	UpdatedAt      fixedTime `dynamodbav:"updatedAt"`
}

type messageRecord struct {
	ConversationID string    `dynamodbav:"conversationId"`
	MessageID      string    `dynamodbav:"messageId"`
	UserID         string    `dynamodbav:"userId"`
	Role           string    `dynamodbav:"role"`
	Text           string    `dynamodbav:"text,omitempty"`
	CreatedAt      fixedTime `dynamodbav:"createdAt"`
	RequestID      string    `dynamodbav:"requestId,omitempty"`
	Model          string    `dynamodbav:"model,omitempty"`
	StopReason     string    `dynamodbav:"stopReason,omitempty"`
	Incomplete     bool      `dynamodbav:"incomplete,omitempty"`
	// Assistant messages: the reply's status (absent on messages stored
	// before statuses: read as complete or incomplete), how its text was
	// cut into frames (for resume), and the error that ended it.
	Status            string  `dynamodbav:"status,omitempty"`
	Frames            []Frame `dynamodbav:"frames,omitempty"`
	ErrorCode         string  `dynamodbav:"errorCode,omitempty"`
	Thinking          string  `dynamodbav:"thinking,omitempty"`
	ThinkingSignature string  `dynamodbav:"thinkingSignature,omitempty"`
	CostUSD           float64 `dynamodbav:"costUsd,omitempty"`
	tokens.Usage
}

type promptRecord struct {
	UserID    string    `dynamodbav:"userId"`
	PromptID  string    `dynamodbav:"promptId"`
	Name      string    `dynamodbav:"name,omitempty"`
	Text      string    `dynamodbav:"text,omitempty"`
	CreatedAt fixedTime `dynamodbav:"createdAt"`
	UpdatedAt fixedTime `dynamodbav:"updatedAt"`
}

// promptCounterRecord is a user's prompt counter (promptcount.go) as it
// is created; creates and deletes then change it by update expressions.
type promptCounterRecord struct {
	UserID  string `dynamodbav:"userId"`
	Key     string `dynamodbav:"promptId"`
	Prompts int    `dynamodbav:"prompts"`
}

// quotaCounterRecord is a day's quota counter: tokens committed (used
// plus reserved) and reserved by running replies.
type quotaCounterRecord struct {
	Tokens   int64 `dynamodbav:"tokens"`
	Reserved int64 `dynamodbav:"reserved"`
}

// usageRowRecord is a usage table item as ListUsage reads it; AddUsage and
// ReserveQuota write these items by update expressions, never whole.
type usageRowRecord struct {
	Key string `dynamodbav:"day"`
	tokens.Usage
}

// marshal encodes a record. MarshalMap fails only on values it cannot
// encode (channels, funcs) or a Marshaler's error; the records hold
// strings, numbers, a bool and fixedTime, which never fails, so an error
// is a bug in this file and no caller could handle it.
func marshal(record any) item {
	it, err := attributevalue.MarshalMap(record)
	if err != nil {
		panic(fmt.Sprintf("store: encoding %T: %v", record, err))
	}
	return it
}

// unmarshal decodes a stored item; attributes it does not know are ignored.
func unmarshal[R any](it item) (R, error) {
	var r R
	if err := attributevalue.UnmarshalMap(it, &r); err != nil {
		return r, fmt.Errorf("store: decoding %T: %w", r, err)
	}
	return r, nil
}

func connectionItem(c Connection) item {
	return marshal(connectionRecord{
		ConnectionID: c.ConnectionID,
		UserID:       c.UserID,
		ConnectedAt:  fixedTime(c.ConnectedAt),
		ExpiresAt:    c.ExpiresAt.Unix(),
	})
}

func decodeConnection(it item) (Connection, error) {
	r, err := unmarshal[connectionRecord](it)
	return Connection{
		ConnectionID: r.ConnectionID,
		UserID:       r.UserID,
		ConnectedAt:  time.Time(r.ConnectedAt),
		ExpiresAt:    time.Unix(r.ExpiresAt, 0).UTC(),
	}, err
}

func conversationItem(c Conversation) item {
	return marshal(conversationRecord{
		UserID:         c.UserID,
		ConversationID: c.ConversationID,
		Title:          c.Title,
		PromptID:       c.PromptID,
		Model:          c.Model,
		CreatedAt:      fixedTime(c.CreatedAt),
		UpdatedAt:      fixedTime(c.UpdatedAt),
	})
}

func decodeConversation(it item) (Conversation, error) {
	r, err := unmarshal[conversationRecord](it)
	return Conversation{
		UserID:         r.UserID,
		ConversationID: r.ConversationID,
		Title:          r.Title,
		PromptID:       r.PromptID,
		Model:          r.Model,
		CreatedAt:      time.Time(r.CreatedAt),
		UpdatedAt:      time.Time(r.UpdatedAt),
	}, err
}

func messageItem(m Message) item {
	return marshal(messageRecord{
		ConversationID:    m.ConversationID,
		MessageID:         m.MessageID,
		UserID:            m.UserID,
		Role:              m.Role,
		Text:              m.Text,
		CreatedAt:         fixedTime(m.CreatedAt),
		RequestID:         m.RequestID,
		Model:             m.Model,
		StopReason:        m.StopReason,
		Incomplete:        m.Incomplete,
		Status:            m.Status,
		Frames:            m.Frames,
		ErrorCode:         m.ErrorCode,
		Thinking:          m.Thinking,
		ThinkingSignature: m.ThinkingSignature,
		CostUSD:           m.CostUSD,
		Usage:             m.Usage,
	})
}

func decodeMessage(it item) (Message, error) {
	r, err := unmarshal[messageRecord](it)
	return Message{
		ConversationID:    r.ConversationID,
		MessageID:         r.MessageID,
		UserID:            r.UserID,
		Role:              r.Role,
		Text:              r.Text,
		CreatedAt:         time.Time(r.CreatedAt),
		RequestID:         r.RequestID,
		Model:             r.Model,
		StopReason:        r.StopReason,
		Incomplete:        r.Incomplete,
		Status:            r.Status,
		Frames:            r.Frames,
		ErrorCode:         r.ErrorCode,
		Thinking:          r.Thinking,
		ThinkingSignature: r.ThinkingSignature,
		CostUSD:           r.CostUSD,
		Usage:             r.Usage,
	}, err
}

func promptItem(p Prompt) item {
	return marshal(promptRecord{
		UserID:    p.UserID,
		PromptID:  p.PromptID,
		Name:      p.Name,
		Text:      p.Text,
		CreatedAt: fixedTime(p.CreatedAt),
		UpdatedAt: fixedTime(p.UpdatedAt),
	})
}

func decodePrompt(it item) (Prompt, error) {
	r, err := unmarshal[promptRecord](it)
	return Prompt{
		UserID:    r.UserID,
		PromptID:  r.PromptID,
		Name:      r.Name,
		Text:      r.Text,
		CreatedAt: time.Time(r.CreatedAt),
		UpdatedAt: time.Time(r.UpdatedAt),
	}, err
}

func promptCounterItem(userID string, prompts int) item {
	return marshal(promptCounterRecord{UserID: userID, Key: promptCounterKey, Prompts: prompts})
}

// Usage table sort keys (manifest.AttrUsageKey).
func usageRowKey(day, model string) string { return day + "#" + model }
func quotaKey(day string) string           { return day + "#" }
