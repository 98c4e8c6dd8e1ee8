package store

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/p2/buddy/lambda/tokens"
)

// ErrInvalid: a write the store refuses before it reaches DynamoDB (an
// empty or oversized id, a malformed day, a negative counter), with a
// clear message instead of DynamoDB's own validation error.
var ErrInvalid = errors.New("store: invalid input")

// Size limits. DynamoDB caps partition keys at 2048 bytes, sort keys at
// 1024 and items at 400 KB; one bound for every id, one for short fields and
// one for the single long text of an item keep every item well inside
// those, so an item this package accepts is never refused for its size.
const (
	maxIDBytes    = 1024
	maxFieldBytes = 1024
	maxTextBytes  = 390_000
)

// Page sizes: of ListConversations, and of ListMessagesPage (a client
// reading a conversation wants more of it at once than of the list).
const (
	defaultConversationPage = 20
	MaxConversationPage     = 100
	defaultMessagePage      = 100
	MaxMessagePage          = 200
)

// MaxCursorBytes bounds every cursor the store issues, so that a response
// can keep room for one before its page is cut: base64 (4 bytes for 3) of
// JSON holding at most three ids of at most maxIDBytes, each byte at most
// six once escaped (\u00XX), and the field names.
const MaxCursorBytes = (3*6*maxIDBytes + 64) * 4 / 3

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// wire is s as DynamoDB stores it: the SDK's JSON encoder replaces each
// byte that is not valid UTF-8 with U+FFFD, so sizes and comparisons are
// made on what is actually stored.
func wire(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// findable reports whether an item could ever have been stored under these
// ids; lookups with one that could not answer ErrNotFound without a call
// (DynamoDB would refuse an empty or oversized key outright).
func findable(ids ...string) bool {
	for _, id := range ids {
		if id == "" || len(wire(id)) > maxIDBytes {
			return false
		}
	}
	return true
}

// promptFindable is findable for a prompt: the user's prompt counter
// shares the prompts' key space but is never a prompt.
func promptFindable(userID, promptID string) bool {
	return findable(userID, promptID) && promptID != promptCounterKey
}

// rules collects the problems of one write, naming each field.
type rules struct{ errs []string }

func (r *rules) id(field, v string) {
	if v == "" {
		r.errs = append(r.errs, field+" is empty")
	} else if n := len(wire(v)); n > maxIDBytes {
		r.errs = append(r.errs, fmt.Sprintf("%s has %d bytes (max %d)", field, n, maxIDBytes))
	}
}

func (r *rules) field(field, v string, max int) {
	if n := len(wire(v)); n > max {
		r.errs = append(r.errs, fmt.Sprintf("%s has %d bytes (max %d)", field, n, max))
	}
}

func (r *rules) time(field string, t time.Time) {
	// formatTime is fixed width only for four-digit years.
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		r.errs = append(r.errs, fmt.Sprintf("%s year %d is outside 1..9999", field, y))
	}
}

func (r *rules) day(field, v string) {
	if err := checkDay(v); err != nil {
		r.errs = append(r.errs, fmt.Sprintf("%s %q is not a YYYY-MM-DD date", field, v))
	}
}

func (r *rules) err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return invalid("%s", strings.Join(r.errs, "; "))
}

func checkDay(day string) error {
	t, err := time.Parse(time.DateOnly, day)
	if err != nil || t.Format(time.DateOnly) != day {
		return invalid("day %q is not a YYYY-MM-DD date", day)
	}
	return nil
}

func checkConnection(c Connection) error {
	var r rules
	r.id("connection id", c.ConnectionID)
	r.id("user id", c.UserID)
	r.time("connectedAt", c.ConnectedAt)
	if c.ExpiresAt.IsZero() {
		// A connection without expiry would outlive TTL cleanup forever.
		r.errs = append(r.errs, "expiresAt is not set")
	}
	return r.err()
}

func checkConversation(c Conversation) error {
	var r rules
	r.id("user id", c.UserID)
	r.id("conversation id", c.ConversationID)
	r.field("title", c.Title, maxFieldBytes)
	r.field("prompt id", c.PromptID, maxIDBytes)
	r.field("model", c.Model, maxFieldBytes)
	r.time("createdAt", c.CreatedAt)
	r.time("updatedAt", c.UpdatedAt)
	return r.err()
}

func checkMessage(m Message) error {
	var r rules
	r.id("conversation id", m.ConversationID)
	r.id("message id", m.MessageID)
	// DeleteConversation removes only the owner's messages.
	r.id("user id", m.UserID)
	if m.Role != RoleUser && m.Role != RoleAssistant {
		r.errs = append(r.errs, fmt.Sprintf("role %q is neither %q nor %q", m.Role, RoleUser, RoleAssistant))
	}
	r.field("text", m.Text, maxTextBytes)
	// The answer and the thinking share the item: together within it.
	r.field("text and thinking", m.Text+m.Thinking, maxTextBytes)
	r.field("thinking signature", m.ThinkingSignature, maxTextBytes)
	r.field("request id", m.RequestID, maxFieldBytes)
	r.field("model", m.Model, maxFieldBytes)
	r.field("stop reason", m.StopReason, maxFieldBytes)
	r.time("createdAt", m.CreatedAt)
	checkUsage(&r, m.Usage)
	return r.err()
}

func checkPrompt(p Prompt) error {
	var r rules
	r.id("user id", p.UserID)
	r.id("prompt id", p.PromptID)
	if p.PromptID == promptCounterKey {
		r.errs = append(r.errs, fmt.Sprintf("prompt id %q is the key of the user's prompt counter", p.PromptID))
	}
	r.field("name", p.Name, maxFieldBytes)
	r.field("text", p.Text, maxTextBytes)
	r.time("createdAt", p.CreatedAt)
	r.time("updatedAt", p.UpdatedAt)
	return r.err()
}

// checkRename checks what RenameConversation writes.
func checkRename(title string, at time.Time) error {
	var r rules
	r.field("title", title, maxFieldBytes)
	r.time("updatedAt", at)
	return r.err()
}

// checkPromptUpdate checks what UpdatePrompt writes (ids are looked up,
// not written).
func checkPromptUpdate(p Prompt) error {
	var r rules
	r.field("name", p.Name, maxFieldBytes)
	r.field("text", p.Text, maxTextBytes)
	r.time("updatedAt", p.UpdatedAt)
	return r.err()
}

func checkUsage(r *rules, u tokens.Usage) {
	if u.InputTokens < 0 || u.OutputTokens < 0 || u.CacheReadInputTokens < 0 || u.CacheCreationInputTokens < 0 {
		r.errs = append(r.errs, fmt.Sprintf("usage %+v has a negative count", u))
	}
}

func checkAddUsage(userID, day, model string, u tokens.Usage) error {
	var r rules
	r.id("user id", userID)
	r.day("day", day)
	// An empty model would land on the day's quota counter.
	r.id("model", model)
	r.field("usage key", usageRowKey(day, model), maxIDBytes)
	checkUsage(&r, u)
	return r.err()
}

func checkReserve(userID, day string) error {
	var r rules
	r.id("user id", userID)
	r.day("day", day)
	return r.err()
}

func checkUsageRange(from, to string) error {
	var r rules
	r.day("from", from)
	r.day("to", to)
	return r.err()
}

// pageSize clamps a requested page size to 1..max, def when unset.
func pageSize(limit, def, max int) int {
	switch {
	case limit <= 0:
		return def
	case limit > max:
		return max
	}
	return limit
}

// A cursor is base64url JSON of the key where a page ended (what DynamoDB
// takes as ExclusiveStartKey) and the user it was issued to. It is opaque
// to clients, and checked against the caller before use: another user's
// cursor would otherwise page through that user's items.
func encodeCursor(key any) string {
	b, _ := json.Marshal(key)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads what encodeCursor made of a C, strictly, and accepts
// it when it is valid for the caller: anything else (bad base64, other
// fields, trailing data, another caller's) is ErrBadCursor.
func decodeCursor[C any](s string, valid func(C) bool) (C, error) {
	var c C
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, ErrBadCursor
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() || !valid(c) {
		return *new(C), ErrBadCursor
	}
	return c, nil
}

// conversationCursor is the position after the last conversation of a
// page: the keys of the conversations index (partition, sort) and of the
// table, which is exactly DynamoDB's LastEvaluatedKey for that index.
type conversationCursor struct {
	UserID         string `json:"u"`
	ConversationID string `json:"c"`
	UpdatedAt      string `json:"t"`
}

func conversationCursorAfter(c Conversation) string {
	return encodeCursor(conversationCursor{UserID: c.UserID, ConversationID: c.ConversationID, UpdatedAt: formatTime(c.UpdatedAt)})
}

// parseConversationCursor accepts only a conversation cursor of userID.
func parseConversationCursor(s, userID string) (conversationCursor, error) {
	return decodeCursor(s, func(c conversationCursor) bool {
		t, err := time.Parse(timeLayout, c.UpdatedAt)
		return err == nil && formatTime(t) == c.UpdatedAt && c.UserID == wire(userID) && findable(c.UserID, c.ConversationID)
	})
}

// messageCursor is the position of the oldest message of a page (the
// messages table's key), with the owner: the next page holds the messages
// before it.
type messageCursor struct {
	UserID         string `json:"u"`
	ConversationID string `json:"c"`
	MessageID      string `json:"m"`
}

func messageCursorBefore(m Message) string {
	return encodeCursor(messageCursor{UserID: m.UserID, ConversationID: m.ConversationID, MessageID: m.MessageID})
}

// parseMessageCursor accepts only a cursor issued to userID for the
// messages of conversationID: one of another conversation would page
// through that conversation's messages.
func parseMessageCursor(s, userID, conversationID string) (messageCursor, error) {
	return decodeCursor(s, func(c messageCursor) bool {
		return c.UserID == wire(userID) && c.ConversationID == wire(conversationID) && findable(c.UserID, c.ConversationID, c.MessageID)
	})
}
