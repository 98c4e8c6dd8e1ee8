// Package seed puts data in a store for tests and tools through the
// store's own reply path (accept, claim, finish), so what it writes is
// exactly what a real reply leaves behind.
package seed

import (
	"context"
	"time"

	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/tokens"
)

// Reply stores one exchange in a new conversation of user on day: the
// user's message and a complete assistant reply of model with usage u.
// It returns the conversation.
func Reply(ctx context.Context, st store.Store, user, day, model, text string, u tokens.Usage) (store.Conversation, error) {
	at, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return store.Conversation{}, err
	}
	at = at.Add(12 * time.Hour)
	conv := store.Conversation{UserID: user, ConversationID: ids.New(), Title: "seeded", CreatedAt: at, UpdatedAt: at}
	userMsg := store.Message{ConversationID: conv.ConversationID, MessageID: ids.New(), UserID: user, Role: store.RoleUser, Text: "question", CreatedAt: at}
	// The live record and the running entry lapse an hour from now, not
	// from day: DynamoDB Local runs TTL on real time, and both must hold
	// until the finish.
	hold := time.Now().Add(time.Hour)
	reply := store.Reply{MessageID: ids.New(), UserID: user, ConversationID: conv.ConversationID, Day: day, ExpiresAt: hold}
	reply.LiveEntry = store.LiveEntry(hold, reply.MessageID)
	assistant := store.Message{ConversationID: conv.ConversationID, MessageID: reply.MessageID, UserID: user, Role: store.RoleAssistant, CreatedAt: at, Model: model, Status: store.StatusStreaming}
	if err := st.AcceptMessage(ctx, store.Acceptance{Conversation: conv, New: true, UserMessage: userMsg, Assistant: assistant, Reply: reply, MaxInflight: 1 << 20}); err != nil {
		return conv, err
	}
	if err := st.ClaimReply(ctx, reply); err != nil {
		return conv, err
	}
	reply.Status = store.StatusStreaming
	assistant.Text, assistant.Status, assistant.StopReason, assistant.Usage = text, store.StatusComplete, "end_turn", u
	assistant.Frames = []store.Frame{{Bytes: len(text)}}
	return conv, st.FinishReply(ctx, store.Finish{Reply: reply, Message: assistant, Keep: time.Hour})
}
