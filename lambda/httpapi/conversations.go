package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/tokens"
)

// MaxTitleRunes bounds a conversation title.
const MaxTitleRunes = 200

// ConversationJSON is a conversation on the wire. `id` and
// `conversationId` carry the same value: `id` for REST clients, the other
// under the name the WebSocket protocol uses.
type ConversationJSON struct {
	ID             string `json:"id"`
	ConversationID string `json:"conversationId"`
	Title          string `json:"title"`
	PromptID       string `json:"promptId,omitempty"`
	// Model is the model of the conversation's last message.
	Model     string        `json:"model,omitempty"`
	CreatedAt time.Time     `json:"createdAt"`
	UpdatedAt time.Time     `json:"updatedAt"`
	Messages  []MessageJSON `json:"messages,omitempty"`
}

// MessageJSON is a stored message on the wire.
type MessageJSON struct {
	ID         string    `json:"id"`
	MessageID  string    `json:"messageId"`
	Role       string    `json:"role"`
	Text       string    `json:"text"`
	CreatedAt  time.Time `json:"createdAt"`
	RequestID  string    `json:"requestId,omitempty"`
	Model      string    `json:"model,omitempty"`
	StopReason string    `json:"stopReason,omitempty"`
	Incomplete bool      `json:"incomplete,omitempty"`
	// Status is streaming, complete, stopped, incomplete or failed.
	Status    string `json:"status"`
	ErrorCode string `json:"errorCode,omitempty"`
	// Thinking is the reply's extended thinking, apart from its text.
	Thinking string        `json:"thinking,omitempty"`
	Usage    *tokens.Usage `json:"usage,omitempty"`
	// CostUSD is the reply's estimated cost at list prices.
	CostUSD *float64 `json:"costUsd,omitempty"`
	// Attachments are the uploads a user's message carries.
	Attachments []store.Attachment `json:"attachments,omitempty"`
}

// staleStreaming is when a reply still marked streaming cannot be running
// any more: its job waits at most 2 minutes to start and runs at most
// Lambda's 15. Such a reply (its function was killed) shows as incomplete.
const staleStreaming = 20 * time.Minute

func conversationJSON(c store.Conversation) ConversationJSON {
	return ConversationJSON{
		ID: c.ConversationID, ConversationID: c.ConversationID, Title: c.Title, PromptID: c.PromptID, Model: c.Model,
		CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(),
	}
}

func messageJSON(m store.Message, now time.Time) MessageJSON {
	j := MessageJSON{
		ID: m.MessageID, MessageID: m.MessageID, Role: m.Role, Text: m.Text, CreatedAt: m.CreatedAt.UTC(),
		RequestID: m.RequestID, Model: m.Model, StopReason: m.StopReason, Incomplete: m.Incomplete,
		Status: m.State(), ErrorCode: m.ErrorCode, Thinking: m.Thinking, Attachments: m.Attachments,
	}
	if j.Status == store.StatusStreaming && now.Sub(m.CreatedAt) > staleStreaming {
		j.Status, j.Incomplete = store.StatusIncomplete, true
	}
	if m.Role == store.RoleAssistant {
		u, c := m.Usage, m.CostUSD
		j.Usage, j.CostUSD = &u, &c
	}
	return j
}

// Conversations serves GET/PATCH/DELETE /conversations[/{id}].
type Conversations struct {
	Store store.Store
	// Objects deletes the objects of a deleted conversation's uploads.
	Objects ObjectDeleter
	Now     func() time.Time
}

// ObjectDeleter deletes uploads' objects (uploads.Bucket).
type ObjectDeleter interface {
	Delete(ctx context.Context, uploadIDs ...string) error
}

// Routes returns the route table.
func (c *Conversations) Routes() map[string]HandlerFunc {
	return map[string]HandlerFunc{
		manifest.RouteListConversations:  c.list,
		manifest.RouteGetConversation:    c.get,
		manifest.RouteRenameConversation: c.rename,
		manifest.RouteDeleteConversation: c.delete,
	}
}

// parseLimit reads a page size of 1..max; unset is 0, the store's default.
func parseLimit(v string, max int) (int, *Error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, Errorf(http.StatusBadRequest, errcode.BadRequest, "limit must be a whole number from 1 to %d", max)
	}
	return n, nil
}

// pageError answers a failed page read: a cursor the store did not issue
// (for this caller and listing) is the client's mistake.
func pageError(err error) *Error {
	if errors.Is(err, store.ErrBadCursor) {
		return Errorf(http.StatusBadRequest, errcode.BadRequest, "cursor is not valid; start again without it")
	}
	return Internal(err)
}

func (c *Conversations) list(ctx context.Context, r *Request) (Response, *Error) {
	limit, apiErr := parseLimit(r.Query("limit"), store.MaxConversationPage)
	if apiErr != nil {
		return Response{}, apiErr
	}
	page, err := c.Store.ListConversations(ctx, r.User, limit, r.Query("cursor"))
	if err != nil {
		return Response{}, pageError(err)
	}
	out := make([]ConversationJSON, 0, len(page.Items))
	for _, it := range page.Items {
		out = append(out, conversationJSON(it))
	}
	body := map[string]any{"conversations": out}
	if page.Next != "" {
		body["nextCursor"] = page.Next
	}
	return Response{Status: http.StatusOK, Body: body}, nil
}

func (c *Conversations) load(ctx context.Context, r *Request) (store.Conversation, *Error) {
	id, e := r.ID("conversation")
	if e != nil {
		return store.Conversation{}, e
	}
	conv, err := c.Store.GetConversation(ctx, r.User, id)
	if errors.Is(err, store.ErrNotFound) {
		return conv, NotFound("conversation")
	}
	if err != nil {
		return conv, Internal(err)
	}
	return conv, nil
}

// get answers the conversation with its newest page of messages (or the
// page before ?cursor=), bounded by ?limit= and by MaxResponseBytes.
func (c *Conversations) get(ctx context.Context, r *Request) (Response, *Error) {
	limit, apiErr := parseLimit(r.Query("limit"), store.MaxMessagePage)
	if apiErr != nil {
		return Response{}, apiErr
	}
	conv, apiErr := c.load(ctx, r)
	if apiErr != nil {
		return Response{}, apiErr
	}
	out := conversationJSON(conv)
	// Room for the messages beside the rest of the body and the longest
	// cursor (the page's is only known once it is cut).
	room, err := newPageRoom(conversationPage(out, strings.Repeat("x", store.MaxCursorBytes)))
	if err != nil {
		return Response{}, Internal(err)
	}
	now := now(c.Now)
	bound := store.MessageBound{Limit: limit, Bytes: room.body, Size: func(m store.Message) int { return messageSize(room, m, now) }}
	page, err := c.Store.ListMessagesPage(ctx, r.User, conv.ConversationID, bound, r.Query("cursor"))
	if err != nil {
		return Response{}, pageError(err)
	}
	out.Messages = make([]MessageJSON, 0, len(page.Items))
	for _, m := range page.Items {
		out.Messages = append(out.Messages, messageJSON(m, now))
	}
	return Response{Status: http.StatusOK, Body: conversationPage(out, page.Next)}, nil
}

// conversationPage is the body of GET /conversations/{id}: the
// conversation, a page of its messages (`messages` even when empty) and,
// when older messages exist, the cursor to them.
func conversationPage(c ConversationJSON, olderCursor string) any {
	if c.Messages == nil {
		c.Messages = []MessageJSON{}
	}
	type alias ConversationJSON
	return struct {
		alias
		Messages    []MessageJSON `json:"messages"`
		OlderCursor string        `json:"olderCursor,omitempty"`
	}{alias(c), c.Messages, olderCursor}
}

// messageSize is what m takes of a conversation page's room.
func messageSize(room pageRoom, m store.Message, now time.Time) int {
	n, err := room.size(messageJSON(m, now))
	if err != nil {
		// The body will not encode either and the route answers 500;
		// until then the message takes a page of its own.
		return room.body
	}
	return n
}

func (c *Conversations) rename(ctx context.Context, r *Request) (Response, *Error) {
	id, e := r.ID("conversation")
	if e != nil {
		return Response{}, e
	}
	var in struct {
		Title *string `json:"title"`
	}
	if e := r.Decode(&in); e != nil {
		return Response{}, e
	}
	if in.Title == nil {
		return Response{}, Errorf(http.StatusBadRequest, errcode.BadRequest, "title is required")
	}
	title := strings.TrimSpace(*in.Title)
	if e := checkText("title", title, MaxTitleRunes); e != nil {
		return Response{}, e
	}
	conv, err := c.Store.RenameConversation(ctx, r.User, id, title, now(c.Now))
	if err != nil {
		return Response{}, storeError(err, "conversation")
	}
	return Response{Status: http.StatusOK, Body: conversationJSON(conv)}, nil
}

// delete deletes a conversation with everything of it: its uploads'
// objects first (a failure leaves the conversation whole, to delete again),
// then the conversation, its messages, replies and upload records.
func (c *Conversations) delete(ctx context.Context, r *Request) (Response, *Error) {
	return deleteByID(ctx, r, "conversation", func(ctx context.Context, userID, id string) error {
		uploadIDs, err := c.Store.ConversationUploads(ctx, userID, id)
		if err != nil {
			return err
		}
		if len(uploadIDs) > 0 {
			if c.Objects == nil {
				return errors.New("conversations: no bucket to delete the uploads' objects from")
			}
			if err := c.Objects.Delete(ctx, uploadIDs...); err != nil {
				return err
			}
		}
		return c.Store.DeleteConversation(ctx, userID, id)
	})
}

// deleteByID answers a DELETE of the user's {id} of what: 204, or 404 when
// there is no such one, as for every route of a single item.
func deleteByID(ctx context.Context, r *Request, what string, del func(ctx context.Context, userID, id string) error) (Response, *Error) {
	id, e := r.ID(what)
	if e != nil {
		return Response{}, e
	}
	if err := del(ctx, r.User, id); err != nil {
		return Response{}, storeError(err, what)
	}
	return Response{Status: http.StatusNoContent}, nil
}

// checkText validates a required single-line-or-not text field.
func checkText(field, v string, maxRunes int) *Error {
	switch {
	case v == "":
		return Errorf(http.StatusBadRequest, errcode.BadRequest, "%s must not be empty", field)
	case !utf8.ValidString(v):
		return Errorf(http.StatusBadRequest, errcode.BadRequest, "%s must be valid UTF-8", field)
	case utf8.RuneCountInString(v) > maxRunes:
		return Errorf(http.StatusBadRequest, errcode.BadRequest, "%s must be at most %d characters", field, maxRunes)
	}
	return nil
}

func now(f func() time.Time) time.Time {
	if f != nil {
		return f()
	}
	return time.Now()
}
