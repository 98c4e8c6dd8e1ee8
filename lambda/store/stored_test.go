package store_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/tokens"
)

// TestStoredItemsMatchGolden pins what the Dynamo store leaves in the
// tables, read back raw: items written whole and items shaped by updates
// (renames, touches, prompt edits, the prompt counter, the usage row and
// the quota counter), which no encoder test sees.
func TestStoredItemsMatchGolden(t *testing.T) {
	if dbFailed != nil {
		t.Fatal(dbFailed)
	}
	ctx := t.Context()
	s := store.NewDynamo(db.Client, db.Tables)
	const user, day = "golden-user", "2026-03-01"
	at := time.Date(2026, 3, 1, 12, 34, 56, 120000000, time.UTC)
	later := at.Add(time.Minute)
	s.Now = func() time.Time { return at }

	s2 := func(a, b, c, d string) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{a: &types.AttributeValueMemberS{Value: b}, c: &types.AttributeValueMemberS{Value: d}}
	}
	// Every item the test writes, cleared first so that a rerun in the
	// same binary (-count) starts from nothing too.
	reads := []struct {
		name, table string
		key         map[string]types.AttributeValue
	}{
		{"connection", db.Tables.Connections, map[string]types.AttributeValue{manifest.AttrConnectionID: &types.AttributeValueMemberS{Value: "golden-conn"}}},
		{"renamed conversation", db.Tables.Conversations, s2(manifest.AttrUserID, user, manifest.AttrConversationID, "renamed")},
		{"conversation renamed to no title", db.Tables.Conversations, s2(manifest.AttrUserID, user, manifest.AttrConversationID, "untitled")},
		{"touched conversation", db.Tables.Conversations, s2(manifest.AttrUserID, user, manifest.AttrConversationID, "touched")},
		{"message", db.Tables.Messages, s2(manifest.AttrConversationID, "renamed", manifest.AttrMessageID, "m1")},
		{"prompt updated without name", db.Tables.Prompts, s2(manifest.AttrUserID, user, manifest.AttrPromptID, "edited")},
		// Started from a count of the user's prompts (none), then counting
		// the one created.
		{"prompt counter", db.Tables.Prompts, s2(manifest.AttrUserID, user, manifest.AttrPromptID, store.PromptCounterKey)},
		{"usage row", db.Tables.Usage, s2(manifest.AttrUserID, user, manifest.AttrUsageKey, day+"#claude-x")},
		{"quota counter", db.Tables.Usage, s2(manifest.AttrUserID, user, manifest.AttrUsageKey, day+"#")},
		{"running replies", db.Tables.Usage, s2(manifest.AttrUserID, user, manifest.AttrUsageKey, "live")},
		{"accepted conversation", db.Tables.Conversations, s2(manifest.AttrUserID, user, manifest.AttrConversationID, "asked")},
		{"user message", db.Tables.Messages, s2(manifest.AttrConversationID, "asked", manifest.AttrMessageID, "q1")},
		{"finished reply message", db.Tables.Messages, s2(manifest.AttrConversationID, "asked", manifest.AttrMessageID, "a1")},
		{"follow-up user message", db.Tables.Messages, s2(manifest.AttrConversationID, "asked", manifest.AttrMessageID, "q2")},
		{"running reply message", db.Tables.Messages, s2(manifest.AttrConversationID, "asked", manifest.AttrMessageID, "a2")},
		{"finished reply record", db.Tables.Replies, map[string]types.AttributeValue{manifest.AttrMessageID: &types.AttributeValueMemberS{Value: "a1"}}},
		{"running reply record", db.Tables.Replies, map[string]types.AttributeValue{manifest.AttrMessageID: &types.AttributeValueMemberS{Value: "a2"}}},
		{"pending upload", db.Tables.Uploads, s2(manifest.AttrUserID, user, manifest.AttrUploadID, "up-pending")},
		{"attached upload", db.Tables.Uploads, s2(manifest.AttrUserID, user, manifest.AttrUploadID, "up-attached")},
		{"upload counter", db.Tables.Usage, s2(manifest.AttrUserID, user, manifest.AttrUsageKey, "uploads#"+day)},
	}
	for _, r := range reads {
		if _, err := db.Client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(r.table), Key: r.key}); err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
	}

	steps := []error{
		// Expiring a century on: DynamoDB Local runs TTL, and an expiry
		// already past (the golden time is fixed) let it delete the item
		// before it was read back.
		s.PutConnection(ctx, store.Connection{ConnectionID: "golden-conn", UserID: user, ConnectedAt: at, ExpiresAt: at.AddDate(100, 0, 0)}),
		s.CreateConversation(ctx, store.Conversation{UserID: user, ConversationID: "renamed", Title: "Old", CreatedAt: at, UpdatedAt: at}),
		s.CreateConversation(ctx, store.Conversation{UserID: user, ConversationID: "untitled", Title: "Old", PromptID: "p0", CreatedAt: at, UpdatedAt: at}),
		s.CreateConversation(ctx, store.Conversation{UserID: user, ConversationID: "touched", CreatedAt: at, UpdatedAt: at}),
		s.TouchConversation(ctx, user, "touched", "p1", later),
		s.PutMessage(ctx, store.Message{ConversationID: "renamed", MessageID: "m1", UserID: user, Role: store.RoleAssistant, Text: "Hi", CreatedAt: at,
			Model: "claude-x", StopReason: "end_turn", Incomplete: true, Usage: tokens.Usage{InputTokens: 3, OutputTokens: 4}}),
		s.CreatePrompt(ctx, store.Prompt{UserID: user, PromptID: "edited", Name: "Old", Text: "Old text", CreatedAt: at, UpdatedAt: at}, 10),
	}
	// A reply accepted, claimed and finished (a zero counter is added, and
	// so stored, as 0), and one still running with a listener.
	asked := store.Conversation{UserID: user, ConversationID: "asked", Title: "Q", CreatedAt: at, UpdatedAt: at}
	reply := func(id string) store.Reply {
		return store.Reply{MessageID: id, UserID: user, ConversationID: "asked", ConnectionID: "golden-conn", RequestID: "r-" + id,
			Status: store.StatusStreaming, Day: day, Reserved: 100, LiveEntry: store.LiveEntry(at.AddDate(100, 0, 0), id), ExpiresAt: at.AddDate(100, 0, 0)}
	}
	assistant := func(id string) store.Message {
		return store.Message{ConversationID: "asked", MessageID: id, UserID: user, Role: store.RoleAssistant, CreatedAt: at, Model: "claude-x", Status: store.StatusStreaming}
	}
	a1, a2 := reply("a1"), reply("a2")
	upload := func(id string) store.Upload {
		return store.Upload{UserID: user, UploadID: id, Name: "scan.pdf", ContentType: "application/pdf", Size: 2048, CreatedAt: at, ExpiresAt: at.AddDate(100, 0, 0)}
	}
	steps = append(steps,
		s.CreateUpload(ctx, upload("up-pending"), day, 10),
		s.CreateUpload(ctx, upload("up-attached"), day, 10),
		func() error {
			_, err := s.SettleUpload(ctx, store.Upload{UserID: user, UploadID: "up-attached", Status: store.UploadReady, Pages: 3})
			return err
		}(),
	)
	steps = append(steps,
		s.AcceptMessage(ctx, store.Acceptance{Conversation: asked, New: true,
			UserMessage: store.Message{ConversationID: "asked", MessageID: "q1", UserID: user, Role: store.RoleUser, Text: "Q?", CreatedAt: at, RequestID: "r-a1",
				Attachments: []store.Attachment{{ID: "up-attached", Name: "scan.pdf", ContentType: "application/pdf", Size: 2048, Pages: 3}}},
			Assistant: assistant("a1"), Reply: a1, DailyLimit: 1000, MaxInflight: 2, ReplyingUntil: at.AddDate(100, 0, 0)}),
		s.ClaimReply(ctx, a1),
		s.FinishReply(ctx, store.Finish{Reply: a1, Keep: 100 * 365 * 24 * time.Hour, InputBytes: 123, Message: store.Message{
			ConversationID: "asked", MessageID: "a1", UserID: user, Role: store.RoleAssistant, Text: "Answer", CreatedAt: later, Model: "claude-x",
			StopReason: "end_turn", Status: store.StatusComplete, Frames: []store.Frame{{Bytes: 2}, {Bytes: 4}},
			Usage: tokens.Usage{InputTokens: 10, OutputTokens: 20, CacheReadInputTokens: 30}}}),
		s.AcceptMessage(ctx, store.Acceptance{Conversation: store.Conversation{UserID: user, ConversationID: "asked", UpdatedAt: later},
			UserMessage: store.Message{ConversationID: "asked", MessageID: "q2", UserID: user, Role: store.RoleUser, Text: "More?", CreatedAt: later, RequestID: "r-a2"},
			Assistant:   assistant("a2"), Reply: a2, DailyLimit: 1000, MaxInflight: 2, ReplyingUntil: later.AddDate(100, 0, 0)}),
	)
	_, err := s.AddListener(ctx, user, "a2", store.Listener{ConnectionID: "golden-conn-2", RequestID: "r-resume", AfterSeq: 4})
	steps = append(steps, err)
	_, err = s.RenameConversation(ctx, user, "renamed", "New", later)
	steps = append(steps, err)
	_, err = s.RenameConversation(ctx, user, "untitled", "", later)
	steps = append(steps, err)
	_, err = s.UpdatePrompt(ctx, store.Prompt{UserID: user, PromptID: "edited", Text: "New text", UpdatedAt: later})
	steps = append(steps, err)
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}

	got := map[string]map[string]types.AttributeValue{}
	for _, r := range reads {
		out, err := db.Client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(r.table), Key: r.key, ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		got[r.name] = out.Item
	}
	store.CheckGolden(t, "stored.json", got)
}
