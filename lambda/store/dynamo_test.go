package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	smithyjson "github.com/aws/smithy-go/encoding/json"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/manifest"
)

// fakeAPI answers the calls these tests make and nothing else: what
// DynamoDB Local cannot be made to do (throttle a batch, cut a query page
// short).
type fakeAPI struct {
	DynamoAPI // nil: any other call panics
	query     func(*dynamodb.QueryInput) *dynamodb.QueryOutput
	batch     func(*dynamodb.BatchWriteItemInput) *dynamodb.BatchWriteItemOutput
	transact  func(*dynamodb.TransactWriteItemsInput) error
}

func (f *fakeAPI) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	return &dynamodb.TransactWriteItemsOutput{}, f.transact(in)
}

func (f *fakeAPI) DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	return &dynamodb.DeleteItemOutput{}, nil
}

func (f *fakeAPI) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return f.query(in), nil
}

func (f *fakeAPI) BatchWriteItem(_ context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return f.batch(in), nil
}

var fakeTables = config.Tables{Conversations: "C", Messages: "M", Replies: "R"}

func TestDeleteConversationRetriesUnprocessedDeletes(t *testing.T) {
	for _, tc := range []struct {
		name string
		// throttled is how many BatchWriteItem calls process only their
		// first request.
		throttled  int
		wantErr    bool
		wantPauses int
	}{
		{"no throttling deletes in one call per batch", 0, false, 0},
		{"unprocessed items are retried until done", 3, false, 3},
		{"gives up after a bounded number of attempts", 1000, true, batchAttempts - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 30
			var msgs []item
			for i := range n {
				msgs = append(msgs, item{
					manifest.AttrConversationID: attrS("c1"),
					manifest.AttrMessageID:      attrS(fmt.Sprintf("m%02d", i)),
					manifest.AttrUserID:         attrS("alice"),
				})
			}
			deleted := map[string]bool{}
			calls, biggest := 0, 0
			api := &fakeAPI{
				query: func(*dynamodb.QueryInput) *dynamodb.QueryOutput { return &dynamodb.QueryOutput{Items: msgs} },
				batch: func(in *dynamodb.BatchWriteItemInput) *dynamodb.BatchWriteItemOutput {
					if _, replies := in.RequestItems["R"]; replies {
						// The replies' records go first, unthrottled here.
						return &dynamodb.BatchWriteItemOutput{}
					}
					calls++
					reqs := in.RequestItems["M"]
					biggest = max(biggest, len(reqs))
					done := reqs
					var left map[string][]types.WriteRequest
					if calls <= tc.throttled {
						done, left = reqs[:1], map[string][]types.WriteRequest{"M": reqs[1:]}
					}
					for _, r := range done {
						deleted[r.DeleteRequest.Key[manifest.AttrMessageID].(*types.AttributeValueMemberS).Value] = true
					}
					return &dynamodb.BatchWriteItemOutput{UnprocessedItems: left}
				},
			}
			d := NewDynamo(api, fakeTables)
			pauses := 0
			d.pause = func(context.Context, time.Duration) error { pauses++; return nil }

			err := d.DeleteConversation(t.Context(), "alice", "c1")
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if pauses != tc.wantPauses {
				t.Errorf("paused %d times, want %d", pauses, tc.wantPauses)
			}
			if biggest > batchSize {
				t.Errorf("a batch carried %d requests, limit %d", biggest, batchSize)
			}
			if !tc.wantErr && len(deleted) != n {
				t.Errorf("deleted %d of %d messages", len(deleted), n)
			}
		})
	}
}

func TestDeleteConversationStopsRetryingWhenTheContextEnds(t *testing.T) {
	api := &fakeAPI{
		query: func(*dynamodb.QueryInput) *dynamodb.QueryOutput {
			return &dynamodb.QueryOutput{Items: []item{{manifest.AttrConversationID: attrS("c1"), manifest.AttrMessageID: attrS("m1"), manifest.AttrUserID: attrS("alice")}}}
		},
		batch: func(in *dynamodb.BatchWriteItemInput) *dynamodb.BatchWriteItemOutput {
			return &dynamodb.BatchWriteItemOutput{UnprocessedItems: in.RequestItems}
		},
	}
	d := NewDynamo(api, fakeTables)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := d.DeleteConversation(ctx, "alice", "c1"); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// DynamoDB ends a query page at 1 MB whatever the Limit, with a
// LastEvaluatedKey: the listing must keep reading to fill the page.
func TestListConversationsFillsPagesCutShort(t *testing.T) {
	var convs []item
	for i := range 5 {
		convs = append(convs, conversationItem(Conversation{UserID: "alice", ConversationID: fmt.Sprint("c", i), UpdatedAt: time.Unix(int64(100-i), 0)}))
	}
	api := &fakeAPI{query: func(in *dynamodb.QueryInput) *dynamodb.QueryOutput {
		// One item per call, resuming after the start key.
		next := 0
		if in.ExclusiveStartKey != nil {
			id := in.ExclusiveStartKey[manifest.AttrConversationID].(*types.AttributeValueMemberS).Value
			fmt.Sscanf(id, "c%d", &next)
			next++
		}
		if next >= len(convs) {
			return &dynamodb.QueryOutput{}
		}
		out := &dynamodb.QueryOutput{Items: []item{convs[next]}}
		if next < len(convs)-1 {
			out.LastEvaluatedKey = convs[next]
		}
		return out
	}}
	d := NewDynamo(api, fakeTables)
	var got []string
	var sizes []int
	cur := ""
	for range 10 {
		p, err := d.ListConversations(t.Context(), "alice", 2, cur)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(p.Items))
		for _, c := range p.Items {
			got = append(got, c.ConversationID)
		}
		if cur = p.Next; cur == "" {
			break
		}
	}
	if fmt.Sprint(got) != "[c0 c1 c2 c3 c4]" || fmt.Sprint(sizes) != "[2 2 1]" {
		t.Errorf("listed %v in pages of %v, want [c0 c1 c2 c3 c4] in [2 2 1]", got, sizes)
	}
}

// Concurrent creates of one user's prompts all write the user's counter,
// and DynamoDB cancels a transaction that meets another on an item
// (TransactionConflict): what DynamoDB Local cannot be made to do on cue.
func TestPromptTransactionsRunAgainAfterAConflict(t *testing.T) {
	for _, tc := range []struct {
		name       string
		conflicts  int // transactions cancelled by a conflict before one goes through
		wantErr    bool
		wantPauses int
	}{
		{"no conflict runs once", 0, false, 0},
		{"conflicts are run again", 3, false, 3},
		{"gives up after a bounded number of attempts", 1000, true, batchAttempts - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			api := &fakeAPI{transact: func(in *dynamodb.TransactWriteItemsInput) error {
				calls++
				if calls <= tc.conflicts {
					return &types.TransactionCanceledException{CancellationReasons: []types.CancellationReason{
						{Code: aws.String("None")}, {Code: aws.String(reasonConflict)},
					}}
				}
				return nil
			}}
			d := NewDynamo(api, config.Tables{Prompts: "P"})
			pauses := 0
			d.pause = func(context.Context, time.Duration) error { pauses++; return nil }

			err := d.CreatePrompt(t.Context(), Prompt{UserID: "alice", PromptID: "p1", CreatedAt: goldenTime, UpdatedAt: goldenTime}, 10)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if pauses != tc.wantPauses {
				t.Errorf("paused %d times, want %d", pauses, tc.wantPauses)
			}
		})
	}
}

// A transaction is sent whole or not at all: an item that cannot be built
// (here an update with nothing to update) stops it before DynamoDB, and
// the error names the operation; a built one is sent with every item, in
// the order added.
func TestATransactionIsSentOnlyWhenEveryItemIsBuilt(t *testing.T) {
	key := item{manifest.AttrUserID: attrS("alice")}
	set := expression.Set(expression.Name("n"), expression.Value(1))
	for _, tc := range []struct {
		name     string
		update   expression.UpdateBuilder
		wantSent bool
	}{
		{"every item built: sent once", set, true},
		{"an item not built: nothing sent", expression.UpdateBuilder{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sent []*dynamodb.TransactWriteItemsInput
			d := NewDynamo(&fakeAPI{transact: func(in *dynamodb.TransactWriteItemsInput) error {
				sent = append(sent, in)
				return nil
			}}, fakeTables)
			var tx txn
			put := tx.add(putItem("T", key, notExists(manifest.AttrUserID)))
			update := tx.add(updateItem("T", key, tc.update, noCondition))
			check := tx.add(conditionCheck("T", key, exists(manifest.AttrUserID)))
			failed, err := d.transact(t.Context(), "test op", &tx)
			if !tc.wantSent {
				if err == nil || !strings.Contains(err.Error(), "store: test op: ") || len(sent) != 0 {
					t.Fatalf("err = %v after %d calls; want the build error named after the operation, nothing sent", err, len(sent))
				}
				return
			}
			if err != nil || failed != nil || len(sent) != 1 {
				t.Fatalf("failed %v, err %v after %d calls; want one call that went through", failed, err, len(sent))
			}
			items := sent[0].TransactItems
			if len(items) != 3 || items[put].Put == nil || items[update].Update == nil || items[check].ConditionCheck == nil {
				t.Errorf("sent %+v, want the put, the update and the check in that order", items)
			}
		})
	}
}

func TestCheckDay(t *testing.T) {
	for _, tc := range []struct {
		day string
		ok  bool
	}{
		{"2026-03-01", true},
		{"2024-02-29", true},
		{"2026-02-29", false},
		{"2026-3-01", false},
		{"2026-03-01 ", false},
		{"+2026-03-01", false},
		{"", false},
	} {
		if err := checkDay(tc.day); (err == nil) != tc.ok {
			t.Errorf("checkDay(%q) = %v, want ok=%v", tc.day, err, tc.ok)
		}
	}
}

// wire must predict what the SDK's JSON encoder sends for any string.
func FuzzWireMatchesTheSDKEncoder(f *testing.F) {
	for _, seed := range []string{"plain", "caf\xe9", "\xff\xfe", "\xed\xa0\x80", "ok \u2028 ok", "\x00\x7f", "\xf0\x9f\x98"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := smithyjson.NewEncoder()
		enc.Value.String(s)
		var sent string
		if err := json.Unmarshal(enc.Bytes(), &sent); err != nil {
			t.Fatalf("SDK encoding of %q does not decode: %v", s, err)
		}
		if got := wire(s); got != sent {
			t.Errorf("wire(%q) = %q, the SDK sends %q", s, got, sent)
		}
	})
}
