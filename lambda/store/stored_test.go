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
		s.ReserveQuota(ctx, user, day, 1000),
		// A zero counter is added, and so stored, as 0.
		s.AddUsage(ctx, user, day, "claude-x", tokens.Usage{InputTokens: 10, OutputTokens: 20, CacheReadInputTokens: 30}),
	}
	_, err := s.RenameConversation(ctx, user, "renamed", "New", later)
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
