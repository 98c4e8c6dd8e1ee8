package store

import (
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/p2/buddy/lambda/schema"
)

// Attribute names that only the store reads, next to the key attributes
// shared with the table definitions in lambda/schema.
const (
	attrConnectedAt   = "connectedAt"
	attrCreatedAt     = "createdAt"
	attrTitle         = "title"
	attrRole          = "role"
	attrText          = "text"
	attrRequestID     = "requestId"
	attrModel         = "model"
	attrStopReason    = "stopReason"
	attrIncomplete    = "incomplete"
	attrInputTokens   = "inputTokens"
	attrOutputTokens  = "outputTokens"
	attrCacheRead     = "cacheReadInputTokens"
	attrCacheCreation = "cacheCreationInputTokens"
	attrName          = "name"
	// On the daily quota counter item of the usage table.
	attrTokens   = "tokens"
	attrRequests = "requests"
)

// timeLayout is fixed width (nanoseconds always printed, always UTC), so the
// lexical order DynamoDB sorts strings by is time order; updatedAt is the
// sort key of the conversations index.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

type item = map[string]types.AttributeValue

func attrS(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func attrN(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// Empty strings, zero counters and false flags are left out: an absent
// attribute reads back as the zero value, and items stay small.
func putS(it item, name, v string) {
	if v != "" {
		it[name] = attrS(v)
	}
}

func putN(it item, name string, v int64) {
	if v != 0 {
		it[name] = attrN(v)
	}
}

// reader decodes attributes and remembers the first problem, so decoders
// read straight through and check once.
type reader struct {
	it  item
	err error
}

func (r *reader) fail(name, format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("store: attribute %s: %s", name, fmt.Sprintf(format, a...))
	}
}

func (r *reader) str(name string) string {
	switch v := r.it[name].(type) {
	case nil:
		return ""
	case *types.AttributeValueMemberS:
		return v.Value
	default:
		r.fail(name, "is %T, want a string", v)
		return ""
	}
}

func (r *reader) num(name string) int64 {
	switch v := r.it[name].(type) {
	case nil:
		return 0
	case *types.AttributeValueMemberN:
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			r.fail(name, "%q is not a whole number", v.Value)
		}
		return n
	default:
		r.fail(name, "is %T, want a number", v)
		return 0
	}
}

func (r *reader) flag(name string) bool {
	switch v := r.it[name].(type) {
	case nil:
		return false
	case *types.AttributeValueMemberBOOL:
		return v.Value
	default:
		r.fail(name, "is %T, want a boolean", v)
		return false
	}
}

func (r *reader) time(name string) time.Time {
	s := r.str(name)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		r.fail(name, "%q is not a time", s)
	}
	return t
}

func connectionItem(c Connection) item {
	return item{
		schema.AttrConnectionID: attrS(c.ConnectionID),
		schema.AttrUserID:       attrS(c.UserID),
		attrConnectedAt:         attrS(formatTime(c.ConnectedAt)),
		// Epoch seconds: the only format DynamoDB TTL understands.
		schema.AttrExpiresAt: attrN(c.ExpiresAt.Unix()),
	}
}

func decodeConnection(it item) (Connection, error) {
	r := reader{it: it}
	c := Connection{
		ConnectionID: r.str(schema.AttrConnectionID),
		UserID:       r.str(schema.AttrUserID),
		ConnectedAt:  r.time(attrConnectedAt),
		ExpiresAt:    time.Unix(r.num(schema.AttrExpiresAt), 0).UTC(),
	}
	return c, r.err
}

func conversationItem(c Conversation) item {
	it := item{
		schema.AttrUserID:         attrS(c.UserID),
		schema.AttrConversationID: attrS(c.ConversationID),
		attrCreatedAt:             attrS(formatTime(c.CreatedAt)),
		schema.AttrUpdatedAt:      attrS(formatTime(c.UpdatedAt)),
	}
	putS(it, attrTitle, c.Title)
	putS(it, schema.AttrPromptID, c.PromptID)
	return it
}

func decodeConversation(it item) (Conversation, error) {
	r := reader{it: it}
	c := Conversation{
		UserID:         r.str(schema.AttrUserID),
		ConversationID: r.str(schema.AttrConversationID),
		Title:          r.str(attrTitle),
		PromptID:       r.str(schema.AttrPromptID),
		CreatedAt:      r.time(attrCreatedAt),
		UpdatedAt:      r.time(schema.AttrUpdatedAt),
	}
	return c, r.err
}

func messageItem(m Message) item {
	it := item{
		schema.AttrConversationID: attrS(m.ConversationID),
		schema.AttrMessageID:      attrS(m.MessageID),
		schema.AttrUserID:         attrS(m.UserID),
		attrRole:                  attrS(m.Role),
		attrCreatedAt:             attrS(formatTime(m.CreatedAt)),
	}
	putS(it, attrText, m.Text)
	putS(it, attrRequestID, m.RequestID)
	putS(it, attrModel, m.Model)
	putS(it, attrStopReason, m.StopReason)
	if m.Incomplete {
		it[attrIncomplete] = &types.AttributeValueMemberBOOL{Value: true}
	}
	putN(it, attrInputTokens, m.Usage.InputTokens)
	putN(it, attrOutputTokens, m.Usage.OutputTokens)
	putN(it, attrCacheRead, m.Usage.CacheReadInputTokens)
	putN(it, attrCacheCreation, m.Usage.CacheCreationInputTokens)
	return it
}

func decodeMessage(it item) (Message, error) {
	r := reader{it: it}
	m := Message{
		ConversationID: r.str(schema.AttrConversationID),
		MessageID:      r.str(schema.AttrMessageID),
		UserID:         r.str(schema.AttrUserID),
		Role:           r.str(attrRole),
		Text:           r.str(attrText),
		CreatedAt:      r.time(attrCreatedAt),
		RequestID:      r.str(attrRequestID),
		Model:          r.str(attrModel),
		StopReason:     r.str(attrStopReason),
		Incomplete:     r.flag(attrIncomplete),
		Usage:          readUsage(&r),
	}
	return m, r.err
}

func readUsage(r *reader) Usage {
	return Usage{
		InputTokens:              r.num(attrInputTokens),
		OutputTokens:             r.num(attrOutputTokens),
		CacheReadInputTokens:     r.num(attrCacheRead),
		CacheCreationInputTokens: r.num(attrCacheCreation),
	}
}

func promptItem(p Prompt) item {
	it := item{
		schema.AttrUserID:    attrS(p.UserID),
		schema.AttrPromptID:  attrS(p.PromptID),
		attrCreatedAt:        attrS(formatTime(p.CreatedAt)),
		schema.AttrUpdatedAt: attrS(formatTime(p.UpdatedAt)),
	}
	putS(it, attrName, p.Name)
	putS(it, attrText, p.Text)
	return it
}

func decodePrompt(it item) (Prompt, error) {
	r := reader{it: it}
	p := Prompt{
		UserID:    r.str(schema.AttrUserID),
		PromptID:  r.str(schema.AttrPromptID),
		Name:      r.str(attrName),
		Text:      r.str(attrText),
		CreatedAt: r.time(attrCreatedAt),
		UpdatedAt: r.time(schema.AttrUpdatedAt),
	}
	return p, r.err
}

// Usage table sort keys (schema.AttrUsageKey).
func usageRowKey(day, model string) string { return day + "#" + model }
func quotaKey(day string) string           { return day + "#" }
