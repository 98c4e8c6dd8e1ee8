package store_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/p2/buddy/lambda/dev/fakeclock"
	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/tokens"
)

// t0 is far ahead: DynamoDB Local runs TTL on real time, and an item
// expiring before now could vanish while a row still uses it.
var t0 = time.Date(2126, 3, 1, 12, 0, 0, 123456789, time.UTC)

// env is what one conformance row gets: a store, its clock and helpers
// that fail the test on unexpected errors.
type env struct {
	*testing.T
	s     store.Store
	clock *fakeclock.Clock
	ctx   context.Context
}

func (e *env) user() string { return "user-" + ids.New() }

func (e *env) must(err error) {
	e.Helper()
	if err != nil {
		e.Fatal(err)
	}
}

func (e *env) wantErr(what string, err, want error) {
	e.Helper()
	if !errors.Is(err, want) {
		e.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

// conv creates a conversation updated at t.
func (e *env) conv(user string, at time.Time) store.Conversation {
	e.Helper()
	c := store.Conversation{UserID: user, ConversationID: ids.New(), Title: "t " + at.Format(time.TimeOnly), CreatedAt: at, UpdatedAt: at}
	e.must(e.s.CreateConversation(e.ctx, c))
	return c
}

// convs creates n conversations updated one minute apart, oldest first.
func (e *env) convs(user string, n int) []store.Conversation {
	e.Helper()
	out := make([]store.Conversation, n)
	for i := range out {
		out[i] = e.conv(user, t0.Add(time.Duration(i)*time.Minute))
	}
	return out
}

func (e *env) msg(conversationID, user, text string) store.Message {
	e.Helper()
	m := store.Message{ConversationID: conversationID, MessageID: ids.New(), UserID: user, Role: store.RoleUser, Text: text, CreatedAt: t0}
	e.must(e.s.PutMessage(e.ctx, m))
	return m
}

// msgs stores n messages of user in a conversation, oldest first, with
// texts of size bytes.
func (e *env) msgs(conversationID, user string, n, size int) []store.Message {
	e.Helper()
	out := make([]store.Message, n)
	for i := range out {
		out[i] = e.msg(conversationID, user, fmt.Sprintf("%0*d", size, i))
	}
	return out
}

// accept starts a reply in a new conversation of user, reserving
// reserve tokens on day against limit with at most maxInflight running.
func (e *env) accept(user, day string, reserve, limit int64, maxInflight int) (store.Reply, error) {
	e.Helper()
	return e.acceptIn(store.Conversation{UserID: user, ConversationID: ids.New(), Title: "t", CreatedAt: t0, UpdatedAt: t0}, true, day, reserve, limit, maxInflight)
}

// acceptIn is accept in conv, created when isNew.
func (e *env) acceptIn(conv store.Conversation, isNew bool, day string, reserve, limit int64, maxInflight int) (store.Reply, error) {
	e.Helper()
	user := conv.UserID
	r := store.Reply{
		MessageID: ids.New(), UserID: user, ConversationID: conv.ConversationID, ConnectionID: "c1", RequestID: "r1",
		Day: day, Reserved: reserve, ExpiresAt: e.clock.Now().Add(time.Hour),
	}
	r.LiveEntry = store.LiveEntry(e.clock.Now().Add(20*time.Minute), r.MessageID)
	err := e.s.AcceptMessage(e.ctx, store.Acceptance{
		Conversation:  conv,
		New:           isNew,
		UserMessage:   store.Message{ConversationID: conv.ConversationID, MessageID: ids.New(), UserID: user, Role: store.RoleUser, Text: "q", CreatedAt: t0},
		Assistant:     store.Message{ConversationID: conv.ConversationID, MessageID: r.MessageID, UserID: user, Role: store.RoleAssistant, CreatedAt: t0, Status: store.StatusStreaming},
		Reply:         r,
		DailyLimit:    limit,
		MaxInflight:   maxInflight,
		ReplyingUntil: e.clock.Now().Add(20 * time.Minute),
	})
	r.Status = store.StatusStreaming
	return r, err
}

// upload starts an upload of user on day (at most perDay a day).
func (e *env) upload(user, day string, perDay int) store.Upload {
	e.Helper()
	u := store.Upload{UserID: user, UploadID: ids.New(), Name: "cat.png", ContentType: "image/png", Size: 100, CreatedAt: e.clock.Now(), ExpiresAt: e.clock.Now().Add(24 * time.Hour)}
	e.must(e.s.CreateUpload(e.ctx, u, day, perDay))
	return u
}

// acceptWith accepts a message in a new conversation of user carrying
// the uploads.
func (e *env) acceptWith(user, day string, uploadIDs ...string) (store.Reply, error) {
	e.Helper()
	conv := store.Conversation{UserID: user, ConversationID: ids.New(), Title: "t", CreatedAt: t0, UpdatedAt: t0}
	r := store.Reply{MessageID: ids.New(), UserID: user, ConversationID: conv.ConversationID, ConnectionID: "c1", RequestID: "r1", Day: day, Reserved: 1}
	r.LiveEntry = store.LiveEntry(e.clock.Now().Add(20*time.Minute), r.MessageID)
	msg := store.Message{ConversationID: conv.ConversationID, MessageID: ids.New(), UserID: user, Role: store.RoleUser, CreatedAt: t0}
	for _, id := range uploadIDs {
		msg.Attachments = append(msg.Attachments, store.Attachment{ID: id, Name: "f", ContentType: "application/pdf", Size: 1, Pages: 2})
	}
	err := e.s.AcceptMessage(e.ctx, store.Acceptance{
		Conversation: conv, New: true, UserMessage: msg,
		Assistant:     store.Message{ConversationID: conv.ConversationID, MessageID: r.MessageID, UserID: user, Role: store.RoleAssistant, CreatedAt: t0, Status: store.StatusStreaming},
		Reply:         r,
		MaxInflight:   100,
		ReplyingUntil: e.clock.Now().Add(20 * time.Minute),
	})
	return r, err
}

// today is the user's day counter: used and reserved.
func (e *env) today(user, day string) [2]int64 {
	e.Helper()
	used, reserved, err := e.s.Today(e.ctx, user, day)
	e.must(err)
	return [2]int64{used, reserved}
}

// final is r's message as a complete reply.
func (e *env) final(r store.Reply, text string, u tokens.Usage) store.Message {
	return store.Message{
		ConversationID: r.ConversationID, MessageID: r.MessageID, UserID: r.UserID, Role: store.RoleAssistant,
		Text: text, CreatedAt: t0, Model: "m", Status: store.StatusComplete, Frames: []store.Frame{{Bytes: len(text)}}, Usage: u,
	}
}

// finish claims and finishes r with usage u.
func (e *env) finish(r store.Reply, u tokens.Usage) {
	e.Helper()
	e.must(e.s.ClaimReply(e.ctx, r))
	e.must(e.s.FinishReply(e.ctx, store.Finish{Reply: r, Message: e.final(r, "answer", u), Keep: time.Hour}))
}

// seed stores a finished reply of model with usage u on day.
func (e *env) seed(user, day, model string, u tokens.Usage) {
	e.Helper()
	r, err := e.accept(user, day, 0, 0, 1<<20)
	e.must(err)
	e.must(e.s.ClaimReply(e.ctx, r))
	m := e.final(r, "answer", u)
	m.Model = model
	e.must(e.s.FinishReply(e.ctx, store.Finish{Reply: r, Message: m, Keep: time.Hour}))
}

// messagePages follows a conversation's message pages from the newest to
// the oldest, failing on a repeated message, and returns the messages
// oldest first with the page sizes, newest page first.
func (e *env) messagePages(user, conversationID string, b store.MessageBound) (items []store.Message, pages []int) {
	e.Helper()
	for _, p := range followCursors(e, func(m store.Message) string { return "message " + m.MessageID },
		func(cur string) (store.Page[store.Message], error) {
			return e.s.ListMessagesPage(e.ctx, user, conversationID, b, cur)
		}) {
		items = append(slices.Clone(p), items...)
		pages = append(pages, len(p))
	}
	return items, pages
}

// followCursors lists pages from the first to the one without a cursor,
// failing on an item listed twice (name tells items apart) or on cursors
// that never end.
func followCursors[T any](e *env, name func(T) string, list func(cursor string) (store.Page[T], error)) [][]T {
	e.Helper()
	seen := map[string]bool{}
	var pages [][]T
	cur := ""
	for {
		p, err := list(cur)
		e.must(err)
		for _, it := range p.Items {
			if seen[name(it)] {
				e.Fatalf("%s listed twice", name(it))
			}
			seen[name(it)] = true
		}
		pages = append(pages, p.Items)
		if p.Next == "" {
			return pages
		}
		if len(pages) > 1000 {
			e.Fatal("cursors never end")
		}
		cur = p.Next
	}
}

// createPrompts creates n prompts of user at once, against limit, and
// returns how many were created; every other create must be refused
// with ErrLimit.
func (e *env) createPrompts(user string, n, limit int) int {
	e.Helper()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			errs <- e.s.CreatePrompt(e.ctx, store.Prompt{UserID: user, PromptID: ids.New(), Name: "p", Text: "x", CreatedAt: t0, UpdatedAt: t0}, limit)
		})
	}
	wg.Wait()
	close(errs)
	created := 0
	for err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, store.ErrLimit):
			e.Errorf("create: %v, want nil or ErrLimit", err)
		}
	}
	return created
}

// forgetPromptCounter deletes the user's prompt counter, as it is for
// prompts stored before the counter existed.
func (e *env) forgetPromptCounter(user string) {
	e.Helper()
	_, err := db.Client.DeleteItem(e.ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(db.Tables.Prompts),
		Key: map[string]types.AttributeValue{
			manifest.AttrUserID:   &types.AttributeValueMemberS{Value: user},
			manifest.AttrPromptID: &types.AttributeValueMemberS{Value: store.PromptCounterKey},
		},
		ConditionExpression: aws.String("attribute_exists(prompts)"),
	})
	e.must(err)
}

// allPages follows cursors to the end, failing on a repeated item.
func (e *env) allPages(user string, limit int) (items []store.Conversation, pages []int) {
	e.Helper()
	for _, p := range followCursors(e, func(c store.Conversation) string { return "conversation " + c.ConversationID },
		func(cur string) (store.Page[store.Conversation], error) {
			return e.s.ListConversations(e.ctx, user, limit, cur)
		}) {
		items = append(items, p...)
		pages = append(pages, len(p))
	}
	return items, pages
}

func convIDs(cs []store.Conversation) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ConversationID
	}
	return out
}

func msgIDs(ms []store.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.MessageID
	}
	return out
}

func reversed(cs []store.Conversation) []store.Conversation {
	out := make([]store.Conversation, len(cs))
	for i, c := range cs {
		out[len(cs)-1-i] = c
	}
	return out
}

// texts are the messages' texts, in order.
func texts(ms []store.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Text
	}
	return out
}

func equal(e *env, what string, got, want any) {
	e.Helper()
	if !reflect.DeepEqual(got, want) {
		e.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

var conformance = []struct {
	name string
	run  func(e *env)
}{
	// Connections.
	{"connection reads back until it expires, expiry in whole seconds", func(e *env) {
		c := store.Connection{ConnectionID: "conn-" + ids.New(), UserID: e.user(), ConnectedAt: t0, ExpiresAt: t0.Add(2 * time.Hour)}
		e.must(e.s.PutConnection(e.ctx, c))
		want := c
		want.ExpiresAt = c.ExpiresAt.Truncate(time.Second)
		for _, tc := range []struct {
			at   time.Time
			want error
		}{
			{t0, nil},
			{want.ExpiresAt.Add(-time.Second), nil},
			{want.ExpiresAt, store.ErrNotFound},
			{want.ExpiresAt.Add(time.Hour), store.ErrNotFound},
		} {
			e.clock.Set(tc.at)
			got, err := e.s.GetConnection(e.ctx, c.ConnectionID)
			e.wantErr(fmt.Sprintf("get at %v", tc.at), err, tc.want)
			if err == nil {
				equal(e, "connection", got, want)
			}
		}
	}},
	{"deleted connection is gone and deleting again is fine", func(e *env) {
		e.clock.Set(t0)
		c := store.Connection{ConnectionID: "conn-" + ids.New(), UserID: e.user(), ConnectedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		e.must(e.s.PutConnection(e.ctx, c))
		e.must(e.s.DeleteConnection(e.ctx, c.ConnectionID))
		_, err := e.s.GetConnection(e.ctx, c.ConnectionID)
		e.wantErr("get deleted", err, store.ErrNotFound)
		e.must(e.s.DeleteConnection(e.ctx, c.ConnectionID))
		_, err = e.s.GetConnection(e.ctx, "conn-"+ids.New())
		e.wantErr("get unknown", err, store.ErrNotFound)
	}},
	{"connection without expiry is refused", func(e *env) {
		err := e.s.PutConnection(e.ctx, store.Connection{ConnectionID: "conn-" + ids.New(), UserID: e.user(), ConnectedAt: t0})
		e.wantErr("put", err, store.ErrInvalid)
	}},

	// Conversations.
	{"created conversation reads back in UTC", func(e *env) {
		at := t0.In(time.FixedZone("CEST", 2*3600))
		c := store.Conversation{UserID: e.user(), ConversationID: ids.New(), Title: "Plans", PromptID: ids.New(), CreatedAt: at, UpdatedAt: at.Add(time.Nanosecond)}
		e.must(e.s.CreateConversation(e.ctx, c))
		got, err := e.s.GetConversation(e.ctx, c.UserID, c.ConversationID)
		e.must(err)
		want := c
		want.CreatedAt, want.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
		equal(e, "conversation", got, want)
	}},
	{"taken conversation id answers ErrExists and keeps the first", func(e *env) {
		c := e.conv(e.user(), t0)
		dup := c
		dup.Title = "other"
		e.wantErr("create again", e.s.CreateConversation(e.ctx, dup), store.ErrExists)
		got, err := e.s.GetConversation(e.ctx, c.UserID, c.ConversationID)
		e.must(err)
		equal(e, "conversation", got, c)
	}},
	{"another user's conversation is not found by any call", func(e *env) {
		owner, other := e.user(), e.user()
		c := e.conv(owner, t0)
		m := e.msg(c.ConversationID, owner, "mine")
		_, err := e.s.GetConversation(e.ctx, other, c.ConversationID)
		e.wantErr("get", err, store.ErrNotFound)
		_, err = e.s.RenameConversation(e.ctx, other, c.ConversationID, "x", t0.Add(time.Hour))
		e.wantErr("rename", err, store.ErrNotFound)
		e.wantErr("touch", e.s.TouchConversation(e.ctx, other, c.ConversationID, "", t0.Add(time.Hour)), store.ErrNotFound)
		e.wantErr("delete", e.s.DeleteConversation(e.ctx, other, c.ConversationID), store.ErrNotFound)
		p, err := e.s.ListConversations(e.ctx, other, 0, "")
		e.must(err)
		equal(e, "other's list", len(p.Items), 0)

		got, err := e.s.GetConversation(e.ctx, owner, c.ConversationID)
		e.must(err)
		equal(e, "owner's conversation", got, c)
		msgs, err := e.s.ListMessages(e.ctx, c.ConversationID)
		e.must(err)
		equal(e, "owner's messages", msgIDs(msgs), []string{m.MessageID})
	}},
	{"conversations list newest-updated first", func(e *env) {
		user := e.user()
		cs := e.convs(user, 3)
		// Updated order differs from creation (and id) order.
		e.must(e.s.TouchConversation(e.ctx, user, cs[0].ConversationID, "", t0.Add(time.Hour)))
		p, err := e.s.ListConversations(e.ctx, user, 0, "")
		e.must(err)
		equal(e, "order", convIDs(p.Items), []string{cs[0].ConversationID, cs[2].ConversationID, cs[1].ConversationID})
		equal(e, "next", p.Next, "")
	}},
	{"pages cover every conversation once and the last has no cursor", func(e *env) {
		for _, tc := range []struct {
			n, limit int
			pages    []int
		}{
			{5, 2, []int{2, 2, 1}},
			{4, 2, []int{2, 2}}, // ends exactly: no cursor to an empty page
			{1, 1, []int{1}},
		} {
			user := e.user()
			cs := e.convs(user, tc.n)
			items, pages := e.allPages(user, tc.limit)
			equal(e, fmt.Sprintf("%d by %d: ids", tc.n, tc.limit), convIDs(items), convIDs(reversed(cs)))
			equal(e, fmt.Sprintf("%d by %d: page sizes", tc.n, tc.limit), pages, tc.pages)
		}
		p, err := e.s.ListConversations(e.ctx, e.user(), 10, "")
		e.must(err)
		equal(e, "empty list", p, store.Page[store.Conversation]{})
	}},
	{"page size defaults to 20 and is clamped to 1..100", func(e *env) {
		user := e.user()
		var wg sync.WaitGroup
		errs := make(chan error, 101)
		for i := range 101 {
			wg.Go(func() {
				at := t0.Add(time.Duration(i) * time.Second)
				errs <- e.s.CreateConversation(e.ctx, store.Conversation{UserID: user, ConversationID: ids.New(), CreatedAt: at, UpdatedAt: at})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			e.must(err)
		}
		for _, tc := range []struct {
			limit, want int
		}{{0, 20}, {-7, 20}, {1, 1}, {100, 100}, {1000, 100}} {
			p, err := e.s.ListConversations(e.ctx, user, tc.limit, "")
			e.must(err)
			if len(p.Items) != tc.want || p.Next == "" {
				e.Errorf("limit %d: %d items, next %q; want %d and a cursor", tc.limit, len(p.Items), p.Next, tc.want)
			}
		}
	}},
	{"conversations updated at the same instant page without repeats or gaps", func(e *env) {
		user := e.user()
		want := map[string]bool{}
		for range 7 {
			want[e.conv(user, t0).ConversationID] = true
		}
		items, _ := e.allPages(user, 2)
		got := map[string]bool{}
		for _, c := range items {
			got[c.ConversationID] = true
		}
		equal(e, "listed", got, want)
	}},
	{"touching between pages neither repeats nor skips", func(e *env) {
		user := e.user()
		cs := e.convs(user, 4)
		p1, err := e.s.ListConversations(e.ctx, user, 2, "")
		e.must(err)
		equal(e, "page 1", convIDs(p1.Items), []string{cs[3].ConversationID, cs[2].ConversationID})
		// The cursor's own conversation moves away: its old position still counts.
		e.must(e.s.TouchConversation(e.ctx, user, cs[2].ConversationID, "", t0.Add(time.Hour)))
		p2, err := e.s.ListConversations(e.ctx, user, 2, p1.Next)
		e.must(err)
		equal(e, "page 2", convIDs(p2.Items), []string{cs[1].ConversationID, cs[0].ConversationID})
		equal(e, "next", p2.Next, "")
	}},
	{"junk cursors answer ErrBadCursor", func(e *env) {
		user := e.user()
		e.convs(user, 3)
		p, err := e.s.ListConversations(e.ctx, user, 1, "")
		e.must(err)
		b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
		for _, junk := range []string{
			"!!!",
			"bm90IGpzb24",
			b64("{}"),
			b64(`{"u":"` + user + `","c":"x","t":"yesterday"}`),
			b64(`{"u":"` + user + `","c":"","t":"2026-03-01T12:00:00.000000000Z"}`),
			b64(`{"u":"` + user + `","c":"x","t":"2026-03-01T12:00:00.000000000Z","x":1}`),
			p.Next[:len(p.Next)-3],
			p.Next + "A",
		} {
			_, err := e.s.ListConversations(e.ctx, user, 1, junk)
			e.wantErr(fmt.Sprintf("cursor %q", junk), err, store.ErrBadCursor)
		}
	}},
	{"another user's cursor answers ErrBadCursor", func(e *env) {
		owner := e.user()
		e.convs(owner, 3)
		p, err := e.s.ListConversations(e.ctx, owner, 1, "")
		e.must(err)
		_, err = e.s.ListConversations(e.ctx, e.user(), 1, p.Next)
		e.wantErr("foreign cursor", err, store.ErrBadCursor)
	}},
	{"rename sets title and updatedAt and returns the conversation", func(e *env) {
		c := e.conv(e.user(), t0)
		for _, title := range []string{"New title", ""} {
			at := t0.Add(time.Hour)
			got, err := e.s.RenameConversation(e.ctx, c.UserID, c.ConversationID, title, at)
			e.must(err)
			want := c
			want.Title, want.UpdatedAt = title, at
			equal(e, "renamed", got, want)
			read, err := e.s.GetConversation(e.ctx, c.UserID, c.ConversationID)
			e.must(err)
			equal(e, "read back", read, want)
		}
		_, err := e.s.RenameConversation(e.ctx, c.UserID, ids.New(), "x", t0)
		e.wantErr("rename unknown", err, store.ErrNotFound)
	}},
	{"touch moves updatedAt and sets the prompt only when given", func(e *env) {
		c := e.conv(e.user(), t0)
		e.must(e.s.TouchConversation(e.ctx, c.UserID, c.ConversationID, "prompt-1", t0.Add(time.Minute)))
		e.must(e.s.TouchConversation(e.ctx, c.UserID, c.ConversationID, "", t0.Add(2*time.Minute)))
		got, err := e.s.GetConversation(e.ctx, c.UserID, c.ConversationID)
		e.must(err)
		want := c
		want.PromptID, want.UpdatedAt = "prompt-1", t0.Add(2*time.Minute)
		equal(e, "touched", got, want)
		e.wantErr("touch unknown", e.s.TouchConversation(e.ctx, c.UserID, ids.New(), "", t0), store.ErrNotFound)
	}},
	{"delete removes the conversation and all its messages, only once", func(e *env) {
		user := e.user()
		c, keep := e.conv(user, t0), e.conv(user, t0)
		for i := range 30 { // more than one 25-item batch
			e.msg(c.ConversationID, user, fmt.Sprint("m", i))
		}
		kept := e.msg(keep.ConversationID, user, "stays")
		e.must(e.s.DeleteConversation(e.ctx, user, c.ConversationID))
		_, err := e.s.GetConversation(e.ctx, user, c.ConversationID)
		e.wantErr("get deleted", err, store.ErrNotFound)
		msgs, err := e.s.ListMessages(e.ctx, c.ConversationID)
		e.must(err)
		equal(e, "messages left", len(msgs), 0)
		e.wantErr("delete again", e.s.DeleteConversation(e.ctx, user, c.ConversationID), store.ErrNotFound)
		msgs, err = e.s.ListMessages(e.ctx, keep.ConversationID)
		e.must(err)
		equal(e, "other conversation's messages", msgIDs(msgs), []string{kept.MessageID})
	}},

	// Messages.
	{"messages list oldest first whatever the write order", func(e *env) {
		user := e.user()
		c := e.conv(user, t0)
		want := make([]store.Message, 5)
		for i := range want {
			want[i] = store.Message{ConversationID: c.ConversationID, MessageID: ids.New(), UserID: user, Role: store.RoleUser,
				Text: fmt.Sprint("question ", i), CreatedAt: t0.Add(time.Duration(i) * time.Second), RequestID: fmt.Sprint("req-", i)}
		}
		want[4] = store.Message{ConversationID: c.ConversationID, MessageID: want[4].MessageID, UserID: user, Role: store.RoleAssistant,
			Text: "answer", CreatedAt: t0, RequestID: "req-4", Model: "claude-opus-4-5-20251101", StopReason: "max_tokens", Incomplete: true,
			Usage: tokens.Usage{InputTokens: 10, OutputTokens: 20, CacheReadInputTokens: 30, CacheCreationInputTokens: 40}}
		for _, i := range rand.Perm(len(want)) {
			e.must(e.s.PutMessage(e.ctx, want[i]))
		}
		got, err := e.s.ListMessages(e.ctx, c.ConversationID)
		e.must(err)
		equal(e, "messages", got, want)
	}},
	{"messages beyond one 1 MB query page are all listed", func(e *env) {
		user := e.user()
		c := e.conv(user, t0)
		big := strings.Repeat("x", 380_000)
		var want []string
		for range 3 {
			want = append(want, e.msg(c.ConversationID, user, big).MessageID)
		}
		got, err := e.s.ListMessages(e.ctx, c.ConversationID)
		e.must(err)
		equal(e, "ids", msgIDs(got), want)
		e.must(e.s.DeleteConversation(e.ctx, user, c.ConversationID))
		got, err = e.s.ListMessages(e.ctx, c.ConversationID)
		e.must(err)
		equal(e, "after delete", len(got), 0)
	}},
	{"a conversation without messages lists none", func(e *env) {
		got, err := e.s.ListMessages(e.ctx, ids.New())
		e.must(err)
		equal(e, "messages", len(got), 0)
		p, err := e.s.ListMessagesPage(e.ctx, e.user(), ids.New(), store.MessageBound{}, "")
		e.must(err)
		equal(e, "page", p, store.Page[store.Message]{})
	}},
	{"message pages run newest to oldest, each oldest first, every message once", func(e *env) {
		for _, tc := range []struct {
			name  string
			n     int
			bound store.MessageBound
			pages []int // newest page first
		}{
			{"by count", 5, store.MessageBound{Limit: 2}, []int{2, 2, 1}},
			{"ending exactly: no cursor to an empty page", 4, store.MessageBound{Limit: 2}, []int{2, 2}},
			{"one page", 3, store.MessageBound{}, []int{3}},
			{"by bytes", 5, store.MessageBound{Bytes: 250}, []int{2, 2, 1}},
			{"by bytes, exactly full", 4, store.MessageBound{Bytes: 200}, []int{2, 2}},
			{"a message over the bound is a page of its own", 3, store.MessageBound{Bytes: 99}, []int{1, 1, 1}},
			{"by the caller's size", 5, store.MessageBound{Bytes: 1000, Size: func(m store.Message) int { return 10 * len(m.Text) }}, []int{1, 1, 1, 1, 1}},
			{"by count before bytes", 5, store.MessageBound{Limit: 2, Bytes: 1 << 20}, []int{2, 2, 1}},
		} {
			user := e.user()
			c := e.conv(user, t0)
			want := e.msgs(c.ConversationID, user, tc.n, 100)
			got, pages := e.messagePages(user, c.ConversationID, tc.bound)
			equal(e, tc.name+": ids", msgIDs(got), msgIDs(want))
			equal(e, tc.name+": page sizes", pages, tc.pages)
		}
	}},
	{"message pages read past DynamoDB's 1 MB query pages", func(e *env) {
		user := e.user()
		c := e.conv(user, t0)
		want := e.msgs(c.ConversationID, user, 4, 380_000)
		got, pages := e.messagePages(user, c.ConversationID, store.MessageBound{})
		equal(e, "ids", msgIDs(got), msgIDs(want))
		equal(e, "page sizes", pages, []int{4})
		got, pages = e.messagePages(user, c.ConversationID, store.MessageBound{Bytes: 800_000})
		equal(e, "ids by bytes", msgIDs(got), msgIDs(want))
		equal(e, "page sizes by bytes", pages, []int{2, 2})
	}},
	{"message page size defaults to 100 and is clamped to 1..200", func(e *env) {
		user := e.user()
		c := e.conv(user, t0)
		all := e.msgs(c.ConversationID, user, 201, 1)
		for _, tc := range []struct {
			limit, want int
		}{{0, 100}, {-7, 100}, {1, 1}, {200, 200}, {1000, 200}} {
			p, err := e.s.ListMessagesPage(e.ctx, user, c.ConversationID, store.MessageBound{Limit: tc.limit}, "")
			e.must(err)
			if len(p.Items) != tc.want || p.Next == "" {
				e.Errorf("limit %d: %d messages, next %q; want %d and a cursor", tc.limit, len(p.Items), p.Next, tc.want)
				continue
			}
			equal(e, fmt.Sprintf("limit %d: the newest", tc.limit), msgIDs(p.Items), msgIDs(all[len(all)-tc.want:]))
		}
	}},
	{"message cursors not issued for this user and conversation answer ErrBadCursor", func(e *env) {
		user, other := e.user(), e.user()
		c, c2 := e.conv(user, t0), e.conv(user, t0)
		e.msgs(c.ConversationID, user, 3, 1)
		e.msgs(c2.ConversationID, user, 3, 1)
		p, err := e.s.ListMessagesPage(e.ctx, user, c.ConversationID, store.MessageBound{Limit: 1}, "")
		e.must(err)
		convs, err := e.s.ListConversations(e.ctx, user, 1, "")
		e.must(err)
		b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
		for _, tc := range []struct {
			name, user, conv, cursor string
		}{
			{"junk", user, c.ConversationID, "!!!"},
			{"not JSON", user, c.ConversationID, "bm90IGpzb24"},
			{"empty object", user, c.ConversationID, b64("{}")},
			{"no message id", user, c.ConversationID, b64(`{"u":"` + user + `","c":"` + c.ConversationID + `","m":""}`)},
			{"an extra field", user, c.ConversationID, b64(`{"u":"` + user + `","c":"` + c.ConversationID + `","m":"x","x":1}`)},
			{"cut short", user, c.ConversationID, p.Next[:len(p.Next)-3]},
			{"another conversation's", user, c2.ConversationID, p.Next},
			{"another user's", other, c.ConversationID, p.Next},
			{"a conversation list cursor", user, c.ConversationID, convs.Next},
		} {
			_, err := e.s.ListMessagesPage(e.ctx, tc.user, tc.conv, store.MessageBound{}, tc.cursor)
			e.wantErr(tc.name, err, store.ErrBadCursor)
		}
		_, err = e.s.ListConversations(e.ctx, user, 1, p.Next)
		e.wantErr("a message cursor for the conversation list", err, store.ErrBadCursor)
	}},
	{"cursors stay within MaxCursorBytes, whatever the ids", func(e *env) {
		// Ids of the longest kind, of characters JSON writes as \u0001.
		long := func() string { return strings.Repeat("\x01", 1024-26) + ids.New() }
		user := long()
		c := store.Conversation{UserID: user, ConversationID: long(), CreatedAt: t0, UpdatedAt: t0}
		e.must(e.s.CreateConversation(e.ctx, c))
		e.conv(user, t0.Add(time.Minute))
		for range 2 {
			e.must(e.s.PutMessage(e.ctx, store.Message{ConversationID: c.ConversationID, MessageID: long(), UserID: user, Role: store.RoleUser, CreatedAt: t0}))
		}
		msgs, err := e.s.ListMessagesPage(e.ctx, user, c.ConversationID, store.MessageBound{Limit: 1}, "")
		e.must(err)
		convs, err := e.s.ListConversations(e.ctx, user, 1, "")
		e.must(err)
		for _, cur := range []string{msgs.Next, convs.Next} {
			if cur == "" || len(cur) > store.MaxCursorBytes {
				e.Errorf("cursor of %d bytes, want 1 to %d", len(cur), store.MaxCursorBytes)
			}
		}
	}},
	{"another user's messages are never paged", func(e *env) {
		owner, other := e.user(), e.user()
		c := e.conv(owner, t0)
		mine := e.msg(c.ConversationID, owner, "mine")
		// Message ids are the server's, so this cannot happen; if it did,
		// each would still see only their own.
		planted := e.msg(c.ConversationID, other, "planted")
		p, err := e.s.ListMessagesPage(e.ctx, other, c.ConversationID, store.MessageBound{}, "")
		e.must(err)
		equal(e, "other's page", msgIDs(p.Items), []string{planted.MessageID})
		p, err = e.s.ListMessagesPage(e.ctx, owner, c.ConversationID, store.MessageBound{}, "")
		e.must(err)
		equal(e, "owner's page", msgIDs(p.Items), []string{mine.MessageID})
	}},

	// Prompts.
	{"prompt lifecycle", func(e *env) {
		user := e.user()
		ps := make([]store.Prompt, 3)
		for i := range ps {
			ps[i] = store.Prompt{UserID: user, PromptID: ids.New(), Name: fmt.Sprint("p", i), Text: "Be brief.", CreatedAt: t0, UpdatedAt: t0}
		}
		for _, i := range []int{2, 0, 1} {
			e.must(e.s.CreatePrompt(e.ctx, ps[i], 0))
		}
		got, err := e.s.GetPrompt(e.ctx, user, ps[1].PromptID)
		e.must(err)
		equal(e, "get", got, ps[1])
		list, err := e.s.ListPrompts(e.ctx, user)
		e.must(err)
		equal(e, "list oldest first", list, ps)

		upd := store.Prompt{UserID: user, PromptID: ps[1].PromptID, Name: "renamed", Text: "Be thorough.", UpdatedAt: t0.Add(time.Hour)}
		got, err = e.s.UpdatePrompt(e.ctx, upd)
		e.must(err)
		want := upd
		want.CreatedAt = ps[1].CreatedAt
		equal(e, "updated", got, want)
		got, err = e.s.GetPrompt(e.ctx, user, ps[1].PromptID)
		e.must(err)
		equal(e, "read back", got, want)

		e.must(e.s.DeletePrompt(e.ctx, user, ps[1].PromptID))
		_, err = e.s.GetPrompt(e.ctx, user, ps[1].PromptID)
		e.wantErr("get deleted", err, store.ErrNotFound)
		e.wantErr("delete again", e.s.DeletePrompt(e.ctx, user, ps[1].PromptID), store.ErrNotFound)
		_, err = e.s.UpdatePrompt(e.ctx, upd)
		e.wantErr("update deleted", err, store.ErrNotFound)
		list, err = e.s.ListPrompts(e.ctx, user)
		e.must(err)
		equal(e, "list after delete", list, []store.Prompt{ps[0], ps[2]})
	}},
	{"concurrent creates never take a user past the prompt limit", func(e *env) {
		user := e.user()
		equal(e, "created at 10 of limit 5", e.createPrompts(user, 10, 5), 5)
		equal(e, "created at the limit", e.createPrompts(user, 3, 5), 0)
		list, err := e.s.ListPrompts(e.ctx, user)
		e.must(err)
		equal(e, "stored", len(list), 5)
		e.must(e.s.DeletePrompt(e.ctx, user, list[0].PromptID))
		equal(e, "created after a delete", e.createPrompts(user, 4, 5), 1)
		// A new user has no counter yet: their first creates start it.
		equal(e, "a new user's burst below the limit", e.createPrompts(e.user(), 20, 30), 20)
		equal(e, "limit 0 never blocks", e.createPrompts(user, 2, 0), 2)
	}},
	{"prompts stored before the prompt counter are counted", func(e *env) {
		user := e.user()
		equal(e, "seeded", e.createPrompts(user, 3, 0), 3)
		e.forgetPromptCounter(user)
		equal(e, "created with 3 stored, limit 4", e.createPrompts(user, 3, 4), 1)

		list, err := e.s.ListPrompts(e.ctx, user)
		e.must(err)
		e.forgetPromptCounter(user)
		e.must(e.s.DeletePrompt(e.ctx, user, list[0].PromptID))
		equal(e, "created after deleting one of 4 uncounted", e.createPrompts(user, 3, 4), 1)
	}},
	{"the prompt counter is no prompt", func(e *env) {
		user := e.user()
		p := store.Prompt{UserID: user, PromptID: ids.New(), Name: "a", Text: "x", CreatedAt: t0, UpdatedAt: t0}
		e.must(e.s.CreatePrompt(e.ctx, p, 10))
		list, err := e.s.ListPrompts(e.ctx, user)
		e.must(err)
		equal(e, "list", list, []store.Prompt{p})
		_, err = e.s.GetPrompt(e.ctx, user, store.PromptCounterKey)
		e.wantErr("get", err, store.ErrNotFound)
		_, err = e.s.UpdatePrompt(e.ctx, store.Prompt{UserID: user, PromptID: store.PromptCounterKey, Name: "x", UpdatedAt: t0})
		e.wantErr("update", err, store.ErrNotFound)
		e.wantErr("delete", e.s.DeletePrompt(e.ctx, user, store.PromptCounterKey), store.ErrNotFound)
		counter := store.Prompt{UserID: user, PromptID: store.PromptCounterKey, Name: "x", CreatedAt: t0, UpdatedAt: t0}
		e.wantErr("create", e.s.CreatePrompt(e.ctx, counter, 10), store.ErrInvalid)
	}},
	{"taken prompt id answers ErrExists", func(e *env) {
		p := store.Prompt{UserID: e.user(), PromptID: ids.New(), Name: "a", Text: "x", CreatedAt: t0, UpdatedAt: t0}
		e.must(e.s.CreatePrompt(e.ctx, p, 0))
		e.wantErr("create again", e.s.CreatePrompt(e.ctx, p, 0), store.ErrExists)
	}},
	{"another user's prompt is not found by any call", func(e *env) {
		owner, other := e.user(), e.user()
		p := store.Prompt{UserID: owner, PromptID: ids.New(), Name: "a", Text: "x", CreatedAt: t0, UpdatedAt: t0}
		e.must(e.s.CreatePrompt(e.ctx, p, 0))
		_, err := e.s.GetPrompt(e.ctx, other, p.PromptID)
		e.wantErr("get", err, store.ErrNotFound)
		_, err = e.s.UpdatePrompt(e.ctx, store.Prompt{UserID: other, PromptID: p.PromptID, Name: "mine", UpdatedAt: t0})
		e.wantErr("update", err, store.ErrNotFound)
		e.wantErr("delete", e.s.DeletePrompt(e.ctx, other, p.PromptID), store.ErrNotFound)
		list, err := e.s.ListPrompts(e.ctx, other)
		e.must(err)
		equal(e, "other's list", len(list), 0)
		got, err := e.s.GetPrompt(e.ctx, owner, p.PromptID)
		e.must(err)
		equal(e, "owner's prompt", got, p)
	}},

	// Quota and usage.
	{"quota admits while the reservation fits beside the day's committed tokens", func(e *env) {
		user, day := e.user(), "2026-03-01"
		steps := []struct {
			use  int64 // tokens the admitted reply used (reserve 50)
			want error
		}{
			{30, nil},
			{20, nil},                   // admitted at 30: 30 + 50 <= 100
			{0, nil},                    // admitted at 50: 50 + 50 <= 100
			{0, nil},                    // likewise
			{1, nil},                    // likewise
			{0, store.ErrQuotaExceeded}, // at 51, 50 more do not fit
		}
		for i, st := range steps {
			r, err := e.accept(user, day, 50, 100, 10)
			e.wantErr(fmt.Sprint("step ", i), err, st.want)
			if err == nil {
				e.finish(r, tokens.Usage{InputTokens: st.use})
			}
		}
		_, err := e.accept(user, "2026-03-02", 50, 100, 10)
		e.must(err)
		_, err = e.accept(e.user(), day, 50, 100, 10)
		e.must(err)
		_, err = e.accept(user, day, 50, 0, 10)
		e.must(err)
	}},
	{"a reservation counts until settled to the real figure", func(e *env) {
		user, day := e.user(), "2026-03-01"
		r, err := e.accept(user, day, 4096, 5000, 10)
		e.must(err)
		used, reserved, err := e.s.Today(e.ctx, user, day)
		e.must(err)
		equal(e, "while running", [2]int64{used, reserved}, [2]int64{0, 4096})
		_, err = e.accept(user, day, 4096, 5000, 10)
		e.wantErr("second while the first holds 4096", err, store.ErrQuotaExceeded)
		e.finish(r, tokens.Usage{InputTokens: 30, OutputTokens: 70})
		used, reserved, err = e.s.Today(e.ctx, user, day)
		e.must(err)
		equal(e, "settled", [2]int64{used, reserved}, [2]int64{100, 0})
	}},
	{"concurrent acceptances never take the day past the limit", func(e *env) {
		user, day := e.user(), "2026-03-01"
		const workers, limit, reserve = 50, 1000, 400
		var wg sync.WaitGroup
		var mu sync.Mutex
		admitted := 0
		for range workers {
			wg.Go(func() {
				r, err := e.accept(user, day, reserve, limit, workers)
				if errors.Is(err, store.ErrQuotaExceeded) {
					return
				}
				e.must(err)
				e.finish(r, tokens.Usage{OutputTokens: reserve})
				mu.Lock()
				admitted++
				mu.Unlock()
			})
		}
		wg.Wait()
		used, reserved, err := e.s.Today(e.ctx, user, day)
		e.must(err)
		if used > limit || reserved != 0 || admitted != limit/reserve {
			e.Errorf("admitted %d, used %d, reserved %d: want %d admitted, used <= %d", admitted, used, reserved, limit/reserve, limit)
		}
	}},
	{"a user runs at most MaxInflight replies; lapsed entries make room", func(e *env) {
		user, day := e.user(), "2026-03-01"
		first, err := e.accept(user, day, 1, 0, 2)
		e.must(err)
		_, err = e.accept(user, day, 1, 0, 2)
		e.must(err)
		_, err = e.accept(user, day, 1, 0, 2)
		e.wantErr("third", err, store.ErrRateLimited)
		n, err := e.s.Running(e.ctx, user)
		e.must(err)
		equal(e, "running", n, 2)
		e.finish(first, tokens.Usage{})
		_, err = e.accept(user, day, 1, 0, 2)
		e.must(err)
		// Entries lapse (a job that died never gives its entry back).
		e.clock.Advance(time.Hour)
		_, err = e.accept(user, day, 1, 0, 2)
		e.must(err)
	}},
	{"a reply is claimed once, by its own user's job", func(e *env) {
		user, day := e.user(), "2026-03-01"
		r, err := e.accept(user, day, 1, 0, 10)
		e.must(err)
		other := r
		other.UserID = e.user()
		e.wantErr("another user's claim", e.s.ClaimReply(e.ctx, other), store.ErrNotFound)
		e.must(e.s.ClaimReply(e.ctx, r))
		e.wantErr("second claim", e.s.ClaimReply(e.ctx, r), store.ErrClaimed)
		e.wantErr("fail after claim", e.s.FailUnstarted(e.ctx, r, "internal"), store.ErrClaimed)
	}},
	{"listeners, stops and their owners", func(e *env) {
		user, day := e.user(), "2026-03-01"
		r, err := e.accept(user, day, 1, 0, 10)
		e.must(err)
		stranger := e.user()
		_, err = e.s.AddListener(e.ctx, stranger, r.MessageID, store.Listener{ConnectionID: "c2", RequestID: "r2", AfterSeq: 3})
		e.wantErr("stranger's resume", err, store.ErrNotFound)
		e.wantErr("stranger's stop", e.s.RequestStop(e.ctx, stranger, r.MessageID), store.ErrNotFound)
		e.wantErr("unknown stop", e.s.RequestStop(e.ctx, user, ids.New()), store.ErrNotFound)
		got, err := e.s.AddListener(e.ctx, user, r.MessageID, store.Listener{ConnectionID: "c2", RequestID: "r2", AfterSeq: 3})
		e.must(err)
		equal(e, "listeners", got.Listeners, []store.Listener{{ConnectionID: "c2", RequestID: "r2", AfterSeq: 3}})
		// A connection listens once, however often it resumes; so does the
		// one that asked for the reply.
		for _, again := range []store.Listener{{ConnectionID: "c2", RequestID: "r9", AfterSeq: -1}, {ConnectionID: "c1", RequestID: "r1", AfterSeq: 0}} {
			_, err = e.s.AddListener(e.ctx, user, r.MessageID, again)
			e.wantErr("resume from "+again.ConnectionID+" again", err, store.ErrListening)
		}
		e.must(e.s.RequestStop(e.ctx, user, r.MessageID))
		got, err = e.s.GetReply(e.ctx, r.MessageID)
		e.must(err)
		if !got.Stop || len(got.Listeners) != 1 {
			e.Errorf("record %+v: want stop and one listener", got)
		}
		// Listeners that joined meanwhile do not hold up the finish: it
		// holds nothing a client can change.
		e.must(e.s.ClaimReply(e.ctx, r))
		_, err = e.s.AddListener(e.ctx, user, r.MessageID, store.Listener{ConnectionID: "c4", RequestID: "r4", AfterSeq: -1})
		e.must(err)
		e.must(e.s.FinishReply(e.ctx, store.Finish{Reply: r, Message: e.final(r, "hi", tokens.Usage{}), Keep: time.Hour}))
		_, err = e.s.AddListener(e.ctx, user, r.MessageID, store.Listener{ConnectionID: "c3", RequestID: "r3", AfterSeq: -1})
		e.wantErr("resume after the end", err, store.ErrEnded)
		e.wantErr("stop after the end", e.s.RequestStop(e.ctx, user, r.MessageID), store.ErrEnded)
		m, err := e.s.GetMessage(e.ctx, user, r.ConversationID, r.MessageID)
		e.must(err)
		equal(e, "stored", [2]string{m.Text, m.Status}, [2]string{"hi", store.StatusComplete})
	}},
	{"a reservation is admitted only when it fits beside the day's committed tokens", func(e *env) {
		user, day := e.user(), "2026-03-01"
		_, err := e.accept(user, day, 600, 1000, 10)
		e.must(err)
		_, err = e.accept(user, day, 600, 1000, 10)
		e.wantErr("600 more beside 600 of 1000", err, store.ErrQuotaExceeded)
		_, err = e.accept(user, day, 400, 1000, 10)
		e.must(err)
		_, err = e.accept(e.user(), day, 1001, 1000, 10)
		e.wantErr("a reservation larger than the limit", err, store.ErrQuotaExceeded)
		equal(e, "committed", e.today(user, day), [2]int64{0, 1000})
	}},
	{"a running reply's reservation grows only within the limit", func(e *env) {
		user, day := e.user(), "2026-03-01"
		r, err := e.accept(user, day, 300, 1000, 10)
		e.must(err)
		e.must(e.s.ClaimReply(e.ctx, r))
		e.must(e.s.ExtendReservation(e.ctx, r, 600, 1000))
		r.Reserved += 600
		e.wantErr("beyond the limit", e.s.ExtendReservation(e.ctx, r, 200, 1000), store.ErrQuotaExceeded)
		got, err := e.s.GetReply(e.ctx, r.MessageID)
		e.must(err)
		equal(e, "record's reservation", got.Reserved, int64(900))
		e.must(e.s.FinishReply(e.ctx, store.Finish{Reply: r, Message: e.final(r, "a", tokens.Usage{InputTokens: 60, OutputTokens: 40}), Keep: time.Hour}))
		equal(e, "settled", e.today(user, day), [2]int64{100, 0})
		e.wantErr("after the end", e.s.ExtendReservation(e.ctx, r, 1, 1000), store.ErrNotFound)
	}},
	{"no message follows a reply still streaming in its conversation", func(e *env) {
		user, day := e.user(), "2026-03-01"
		first, err := e.accept(user, day, 10, 0, 10)
		e.must(err)
		conv, err := e.s.GetConversation(e.ctx, user, first.ConversationID)
		e.must(err)
		equal(e, "mark", conv.Replying, first.MessageID)
		_, err = e.acceptIn(conv, false, day, 10, 0, 10)
		e.wantErr("while the first streams", err, store.ErrReplyRunning)
		e.must(e.s.ClaimReply(e.ctx, first))
		e.must(e.s.FinishReply(e.ctx, store.Finish{Reply: first, Message: e.final(first, "a", tokens.Usage{OutputTokens: 3}), Keep: time.Hour, InputBytes: 42}))
		conv, err = e.s.GetConversation(e.ctx, user, first.ConversationID)
		e.must(err)
		if conv.Replying != "" || conv.InputBytes != 42 {
			e.Errorf("after the finish: %+v, want no mark and the input size kept", conv)
		}
		_, err = e.acceptIn(conv, false, day, 10, 0, 10)
		e.must(err)
		// A mark whose job died lapses.
		e.clock.Advance(21 * time.Minute)
		_, err = e.acceptIn(conv, false, day, 10, 0, 10)
		e.must(err)
	}},
	{"a reply whose job died gives back what it took once its entry lapses", func(e *env) {
		user, day := e.user(), "2026-03-01"
		dead, err := e.accept(user, day, 500, 1000, 1)
		e.must(err)
		e.must(e.s.ClaimReply(e.ctx, dead))
		e.clock.Advance(time.Hour)
		_, err = e.accept(user, day, 600, 1000, 1)
		e.must(err)
		equal(e, "committed", e.today(user, day), [2]int64{0, 600})
		m, err := e.s.GetMessage(e.ctx, user, dead.ConversationID, dead.MessageID)
		e.must(err)
		equal(e, "the dead reply", m.Status, store.StatusFailed)
		e.wantErr("its finish, late", e.s.FinishReply(e.ctx, store.Finish{Reply: dead, Message: e.final(dead, "late", tokens.Usage{OutputTokens: 1}), Keep: time.Hour}), store.ErrClaimed)
		equal(e, "counted once", e.today(user, day), [2]int64{0, 600})
	}},
	{"a reply deleted before its job ran gives back what it took", func(e *env) {
		user, day := e.user(), "2026-03-01"
		r, err := e.accept(user, day, 100, 1000, 1)
		e.must(err)
		e.must(e.s.DeleteConversation(e.ctx, user, r.ConversationID))
		e.wantErr("fail", e.s.FailUnstarted(e.ctx, r, "not_found"), store.ErrNotFound)
		equal(e, "given back", e.today(user, day), [2]int64{0, 0})
		n, err := e.s.Running(e.ctx, user)
		e.must(err)
		equal(e, "running", n, 0)
		e.wantErr("again", e.s.FailUnstarted(e.ctx, r, "not_found"), store.ErrNotFound)
		equal(e, "given back once", e.today(user, day), [2]int64{0, 0})
	}},
	{"a reply keeps at most MaxListeners connections; gone ones give up their places", func(e *env) {
		user, day := e.user(), "2026-03-01"
		r, err := e.accept(user, day, 1, 0, 10)
		e.must(err)
		conn := func(i int) store.Listener {
			return store.Listener{ConnectionID: fmt.Sprintf("c-%d", i), RequestID: "r", AfterSeq: -1}
		}
		for i := range store.MaxListeners {
			_, err := e.s.AddListener(e.ctx, user, r.MessageID, conn(i))
			e.must(err)
		}
		_, err = e.s.AddListener(e.ctx, user, r.MessageID, conn(store.MaxListeners))
		e.wantErr("one more", err, store.ErrRateLimited)
		e.must(e.s.RemoveListeners(e.ctx, r.MessageID, conn(0).ConnectionID, conn(1).ConnectionID))
		got, err := e.s.AddListener(e.ctx, user, r.MessageID, conn(store.MaxListeners))
		e.must(err)
		equal(e, "listeners", len(got.Listeners), store.MaxListeners-1)
	}},
	{"a user's resumes are counted per minute", func(e *env) {
		user := e.user()
		for range 3 {
			e.must(e.s.CountResume(e.ctx, user, 3))
		}
		e.wantErr("the fourth", e.s.CountResume(e.ctx, user, 3), store.ErrRateLimited)
		e.must(e.s.CountResume(e.ctx, e.user(), 3))
		e.clock.Advance(time.Minute)
		e.must(e.s.CountResume(e.ctx, user, 3))
	}},
	{"a history page ends at the message it is read through", func(e *env) {
		user := e.user()
		c := e.conv(user, t0)
		ms := e.msgs(c.ConversationID, user, 5, 3)
		got, _ := e.messagePages(user, c.ConversationID, store.MessageBound{Through: ms[2].MessageID})
		equal(e, "texts", texts(got), texts(ms[:3]))
	}},
	{"uploads are the user's own, counted a day, checked once, deleted only while no message carries them", func(e *env) {
		user, day := e.user(), "2026-03-01"
		u := e.upload(user, day, 3)
		got, err := e.s.GetUpload(e.ctx, user, u.UploadID)
		e.must(err)
		equal(e, "pending", [2]any{got.Status, got.Name}, [2]any{store.UploadPending, u.Name})
		_, err = e.s.GetUpload(e.ctx, e.user(), u.UploadID)
		e.wantErr("another user's", err, store.ErrNotFound)
		e.upload(user, day, 3)
		e.upload(user, day, 3)
		e.wantErr("a fourth on the day", e.s.CreateUpload(e.ctx, store.Upload{UserID: user, UploadID: ids.New(), Name: "x.png", ContentType: "image/png", Size: 1, CreatedAt: t0}, day, 3), store.ErrLimit)
		e.must(e.s.CreateUpload(e.ctx, store.Upload{UserID: user, UploadID: ids.New(), Name: "x.png", ContentType: "image/png", Size: 1, CreatedAt: t0}, "2026-03-02", 3))
		ready, err := e.s.SettleUpload(e.ctx, store.Upload{UserID: user, UploadID: u.UploadID, Status: store.UploadReady, Width: 30, Height: 20})
		e.must(err)
		equal(e, "ready", [3]any{ready.Status, ready.Width, ready.Height}, [3]any{store.UploadReady, 30, 20})
		again, err := e.s.SettleUpload(e.ctx, store.Upload{UserID: user, UploadID: u.UploadID, Status: store.UploadRejected, Reason: "late"})
		e.wantErr("checked twice", err, store.ErrNotReady)
		equal(e, "as it was", again.Status, store.UploadReady)
		e.must(e.s.DeleteUpload(e.ctx, user, u.UploadID))
		_, err = e.s.GetUpload(e.ctx, user, u.UploadID)
		e.wantErr("deleted", err, store.ErrNotFound)
		e.wantErr("deleted twice", e.s.DeleteUpload(e.ctx, user, u.UploadID), store.ErrNotFound)
		// One no message carries expires a day after it was started.
		late := e.upload(user, "2026-03-02", 3)
		e.clock.Advance(25 * time.Hour)
		_, err = e.s.GetUpload(e.ctx, user, late.UploadID)
		e.wantErr("expired", err, store.ErrNotFound)
	}},
	{"a message carries ready uploads of its user and conversation only, and they go with the conversation", func(e *env) {
		user, day := e.user(), "2026-03-01"
		ready := func() store.Upload {
			u := e.upload(user, day, 100)
			r, err := e.s.SettleUpload(e.ctx, store.Upload{UserID: user, UploadID: u.UploadID, Status: store.UploadReady, Pages: 2})
			e.must(err)
			return r
		}
		a, b := ready(), ready()
		pending := e.upload(user, day, 100)
		theirs := e.upload(e.user(), day, 100)
		tests := []struct {
			name string
			ids  []string
			want error
		}{
			{"a pending upload", []string{a.UploadID, pending.UploadID}, store.ErrNotReady},
			{"another user's upload", []string{theirs.UploadID}, store.ErrNotFound},
			{"an unknown upload", []string{ids.New()}, store.ErrNotFound},
		}
		for _, tt := range tests {
			_, err := e.acceptWith(user, day, tt.ids...)
			e.wantErr(tt.name, err, tt.want)
		}
		got, err := e.s.GetUpload(e.ctx, user, a.UploadID)
		e.must(err)
		equal(e, "untouched by the refusals", got.ConversationID, "")
		r, err := e.acceptWith(user, day, a.UploadID, b.UploadID)
		e.must(err)
		_, err = e.acceptWith(user, day, b.UploadID)
		e.wantErr("used in another conversation", err, store.ErrAttached)
		e.wantErr("delete an attached upload", e.s.DeleteUpload(e.ctx, user, a.UploadID), store.ErrAttached)
		listed, err := e.s.ConversationUploads(e.ctx, user, r.ConversationID)
		e.must(err)
		equal(e, "the conversation's uploads", listed, []string{a.UploadID, b.UploadID})
		all, err := e.s.GetUploads(e.ctx, user, []string{b.UploadID, a.UploadID})
		e.must(err)
		equal(e, "read in the order asked", [2]string{all[0].UploadID, all[1].UploadID}, [2]string{b.UploadID, a.UploadID})
		// Attached, it no longer expires.
		e.clock.Advance(48 * time.Hour)
		_, err = e.s.GetUploads(e.ctx, user, []string{a.UploadID, ids.New()})
		e.wantErr("one unknown among them", err, store.ErrNotFound)
		e.must(e.s.DeleteConversation(e.ctx, user, r.ConversationID))
		_, err = e.s.GetUpload(e.ctx, user, a.UploadID)
		e.wantErr("after the conversation's delete", err, store.ErrNotFound)
	}},
	{"a reply finished after its conversation was deleted leaves no row but counts", func(e *env) {
		user, day := e.user(), "2026-03-01"
		r, err := e.accept(user, day, 100, 0, 10)
		e.must(err)
		e.must(e.s.ClaimReply(e.ctx, r))
		e.must(e.s.DeleteConversation(e.ctx, user, r.ConversationID))
		_, err = e.s.GetReply(e.ctx, r.MessageID)
		e.wantErr("record after delete", err, store.ErrNotFound)
		err = e.s.FinishReply(e.ctx, store.Finish{Reply: r, Message: e.final(r, "late", tokens.Usage{OutputTokens: 7}), Keep: time.Hour})
		e.wantErr("finish", err, store.ErrNotFound)
		all, err := e.s.ListMessages(e.ctx, r.ConversationID)
		e.must(err)
		equal(e, "rows left", len(all), 0)
		used, reserved, err := e.s.Today(e.ctx, user, day)
		e.must(err)
		equal(e, "counted", [2]int64{used, reserved}, [2]int64{7, 0})
		n, err := e.s.Running(e.ctx, user)
		e.must(err)
		equal(e, "running", n, 0)
	}},
	{"a job that never ran is failed and gives its reservation back", func(e *env) {
		user, day := e.user(), "2026-03-01"
		r, err := e.accept(user, day, 100, 0, 10)
		e.must(err)
		e.must(e.s.FailUnstarted(e.ctx, r, "internal"))
		e.wantErr("claim after failing", e.s.ClaimReply(e.ctx, r), store.ErrClaimed)
		m, err := e.s.GetMessage(e.ctx, user, r.ConversationID, r.MessageID)
		e.must(err)
		equal(e, "status", [2]string{m.Status, m.ErrorCode}, [2]string{store.StatusFailed, "internal"})
		used, reserved, err := e.s.Today(e.ctx, user, day)
		e.must(err)
		equal(e, "given back", [2]int64{used, reserved}, [2]int64{0, 0})
	}},
	{"checkpoints grow a streaming reply and never revive a deleted one", func(e *env) {
		user, day := e.user(), "2026-03-01"
		r, err := e.accept(user, day, 1, 0, 10)
		e.must(err)
		e.must(e.s.CheckpointReply(e.ctx, r.ConversationID, r.MessageID, "so far", []store.Frame{{Bytes: 2}, {Bytes: 4}}))
		m, err := e.s.GetMessage(e.ctx, user, r.ConversationID, r.MessageID)
		e.must(err)
		equal(e, "checkpoint", [2]any{m.Text, m.Frames}, [2]any{"so far", []store.Frame{{Bytes: 2}, {Bytes: 4}}})
		e.must(e.s.DeleteConversation(e.ctx, user, r.ConversationID))
		e.wantErr("after delete", e.s.CheckpointReply(e.ctx, r.ConversationID, r.MessageID, "more", nil), store.ErrNotFound)
		_, err = e.s.GetMessage(e.ctx, user, r.ConversationID, r.MessageID)
		e.wantErr("revived", err, store.ErrNotFound)
	}},
	{"usage lists rows by day then model within the range", func(e *env) {
		user := e.user()
		for _, r := range []struct {
			day, model string
			in         int64
		}{
			{"2026-02-28", "a", 1}, {"2026-03-01", "b", 2}, {"2026-03-01", "a", 3},
			{"2026-03-02", "a", 4}, {"2026-03-01", "a", 5}, {"2026-03-03", "a", 6},
		} {
			e.seed(user, r.day, r.model, tokens.Usage{InputTokens: r.in})
		}
		e.seed(e.user(), "2026-03-01", "a", tokens.Usage{InputTokens: 100})
		_, err := e.accept(user, "2026-03-02", 10, 0, 10)
		e.must(err)
		rows, err := e.s.ListUsage(e.ctx, user, "2026-03-01", "2026-03-02")
		e.must(err)
		equal(e, "rows", rows, []store.UsageRow{
			{Day: "2026-03-01", Model: "a", Usage: tokens.Usage{InputTokens: 8}},
			{Day: "2026-03-01", Model: "b", Usage: tokens.Usage{InputTokens: 2}},
			{Day: "2026-03-02", Model: "a", Usage: tokens.Usage{InputTokens: 4}},
		})
		rows, err = e.s.ListUsage(e.ctx, user, "2026-03-02", "2026-03-01")
		e.must(err)
		equal(e, "from after to", len(rows), 0)
	}},
	{"malformed days and usage are refused", func(e *env) {
		user := e.user()
		for _, tc := range []struct {
			name string
			err  error
		}{
			{"reserve 2026-3-1", func() error { _, err := e.accept(user, "2026-3-1", 10, 0, 10); return err }()},
			{"reserve empty day", func() error { _, err := e.accept(user, "", 10, 0, 10); return err }()},
			{"count negative tokens", func() error {
				r, err := e.accept(user, "2026-03-01", 10, 0, 10)
				e.must(err)
				e.must(e.s.ClaimReply(e.ctx, r))
				return e.s.FinishReply(e.ctx, store.Finish{Reply: r, Message: e.final(r, "x", tokens.Usage{OutputTokens: -1}), Keep: time.Hour})
			}()},
			{"list from junk", func() error { _, err := e.s.ListUsage(e.ctx, user, "yesterday", "2026-03-01"); return err }()},
			{"list to with time", func() error { _, err := e.s.ListUsage(e.ctx, user, "2026-03-01", "2026-03-01T00:00"); return err }()},
		} {
			e.wantErr(tc.name, tc.err, store.ErrInvalid)
		}
	}},

	// Input rules.
	{"empty or oversized ids are refused on write and not found on read", func(e *env) {
		long := strings.Repeat("é", 600) // 1200 bytes
		user := e.user()
		for _, tc := range []struct {
			name string
			err  error
			want error
		}{
			{"create with empty id", e.s.CreateConversation(e.ctx, store.Conversation{UserID: user, CreatedAt: t0, UpdatedAt: t0}), store.ErrInvalid},
			{"create with long id", e.s.CreateConversation(e.ctx, store.Conversation{UserID: user, ConversationID: long, CreatedAt: t0, UpdatedAt: t0}), store.ErrInvalid},
			{"message without user", e.s.PutMessage(e.ctx, store.Message{ConversationID: ids.New(), MessageID: ids.New(), Role: store.RoleUser}), store.ErrInvalid},
			{"message with unknown role", e.s.PutMessage(e.ctx, store.Message{ConversationID: ids.New(), MessageID: ids.New(), UserID: user, Role: "system"}), store.ErrInvalid},
			{"prompt with empty id", e.s.CreatePrompt(e.ctx, store.Prompt{UserID: user}, 0), store.ErrInvalid},
			{"get with long id", func() error { _, err := e.s.GetConversation(e.ctx, user, long); return err }(), store.ErrNotFound},
			{"get with empty user", func() error { _, err := e.s.GetPrompt(e.ctx, "", ids.New()); return err }(), store.ErrNotFound},
			{"get connection with empty id", func() error { _, err := e.s.GetConnection(e.ctx, ""); return err }(), store.ErrNotFound},
			{"delete with empty id", e.s.DeleteConversation(e.ctx, user, ""), store.ErrNotFound},
			{"delete connection with long id", e.s.DeleteConnection(e.ctx, long), nil},
		} {
			e.wantErr(tc.name, tc.err, tc.want)
		}
	}},
	{"text over the size limit is refused", func(e *env) {
		user := e.user()
		c := e.conv(user, t0)
		huge := strings.Repeat("x", 400_000)
		e.wantErr("message", e.s.PutMessage(e.ctx, store.Message{ConversationID: c.ConversationID, MessageID: ids.New(), UserID: user, Role: store.RoleUser, Text: huge, CreatedAt: t0}), store.ErrInvalid)
		_, err := e.s.RenameConversation(e.ctx, user, c.ConversationID, huge[:2000], t0)
		e.wantErr("title", err, store.ErrInvalid)
	}},
	{"invalid UTF-8 comes back as DynamoDB stores it", func(e *env) {
		user := e.user()
		c := store.Conversation{UserID: user, ConversationID: ids.New(), Title: "caf\xe9 \xff\xfe!", CreatedAt: t0, UpdatedAt: t0}
		e.must(e.s.CreateConversation(e.ctx, c))
		got, err := e.s.GetConversation(e.ctx, user, c.ConversationID)
		e.must(err)
		equal(e, "title", got.Title, "caf\uFFFD \uFFFD\uFFFD!")
	}},
	{"a done context fails the call", func(e *env) {
		ctx, cancel := context.WithCancel(e.ctx)
		cancel()
		_, err := e.s.GetConversation(ctx, e.user(), ids.New())
		e.wantErr("get", err, context.Canceled)
	}},
}

func TestConformance(t *testing.T) {
	for _, row := range conformance {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			clk := fakeclock.New(t0)
			row.run(&env{T: t, s: open(t, clk.Now), clock: clk, ctx: t.Context()})
		})
	}
}
