package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/p2/buddy/lambda/tokens"
)

// Attribute names the store's expressions use, next to the key attributes
// shared with the table definitions in lambda/manifest. Struct tags cannot
// refer to constants; TestItemAttributeNames ties the two together.
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
	v, err := parseTime(s.Value)
	*t = fixedTime(v)
	return err
}

// parseTime reads a time in timeLayout; empty is the zero time.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a time", s)
	}
	return t, nil
}

type item = map[string]types.AttributeValue

func attrS(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

// The stored items are the domain types themselves (their tags are in
// store.go and replies.go), encoded with times in timeLayout like
// fixedTime; a time tagged unixtime (an expiry, for TTL) is epoch seconds.
// Where the stored form is not the type's own, a record wraps it:
// messageRecord, replyRecord and the counters below.

// messageRecord is a message as stored: its usage counters inline.
type messageRecord struct {
	Message
	tokens.Usage
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
// strings, numbers, bools, times and fixedTime, which never fails, so an
// error is a bug in this package and no caller could handle it.
func marshal(record any) item {
	it, err := attributevalue.MarshalMapWithOptions(record, func(o *attributevalue.EncoderOptions) {
		o.EncodeTime = func(t time.Time) (types.AttributeValue, error) { return fixedTime(t).MarshalDynamoDBAttributeValue() }
	})
	if err != nil {
		panic(fmt.Sprintf("store: encoding %T: %v", record, err))
	}
	return it
}

// unmarshal decodes a stored item; attributes it does not know are ignored.
func unmarshal[R any](it item) (R, error) {
	var r R
	err := attributevalue.UnmarshalMapWithOptions(it, &r, func(o *attributevalue.DecoderOptions) {
		o.DecodeTime.S = parseTime
		// Only a time tagged unixtime is stored as a number.
		o.DecodeTime.N = func(string) (time.Time, error) { return time.Time{}, errors.New("time is a number, want a string") }
	})
	if err != nil {
		return r, fmt.Errorf("store: decoding %T: %w", r, err)
	}
	return r, nil
}

func connectionItem(c Connection) item { return marshal(c) }

func decodeConnection(it item) (Connection, error) {
	c, err := unmarshal[Connection](it)
	c.ExpiresAt = c.ExpiresAt.UTC()
	return c, err
}

func conversationItem(c Conversation) item { return marshal(c) }

func decodeConversation(it item) (Conversation, error) { return unmarshal[Conversation](it) }

func messageItem(m Message) item { return marshal(messageRecord{Message: m, Usage: m.Usage}) }

func decodeMessage(it item) (Message, error) {
	r, err := unmarshal[messageRecord](it)
	r.Message.Usage = r.Usage
	return r.Message, err
}

func promptItem(p Prompt) item { return marshal(p) }

func decodePrompt(it item) (Prompt, error) { return unmarshal[Prompt](it) }

func promptCounterItem(userID string, prompts int) item {
	return marshal(promptCounterRecord{UserID: userID, Key: promptCounterKey, Prompts: prompts})
}

// Usage table sort keys (manifest.AttrUsageKey).
func usageRowKey(day, model string) string { return day + "#" + model }
func quotaKey(day string) string           { return day + "#" }
