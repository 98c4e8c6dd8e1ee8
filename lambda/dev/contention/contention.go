// Package contention makes DynamoDB Local answer the way DynamoDB does when
// writes meet on the same items. DynamoDB Local runs transactions one at a
// time and never reports a conflict; DynamoDB cancels a TransactWriteItems
// that meets another transaction on one of its items
// (TransactionCanceledException, that item's reason TransactionConflict,
// the others None) and refuses a single-item write to an item a
// transaction holds (TransactionConflictException). API wraps the store's
// client and answers some of the writes so, chosen by the caller, without
// sending them: what the store must survive in AWS can be tested here.
package contention

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/p2/buddy/lambda/store"
)

// Write is what a conflict is decided on: the operation and, for each of
// its items (one for a single-item write), its table and what it does
// ("Put", "Update", "Delete" or "ConditionCheck").
type Write struct {
	Op     string // "TransactWriteItems", "PutItem", "UpdateItem" or "DeleteItem"
	Tables []string
	Ops    []string
}

// Has reports whether the write does op (e.g. "Update") to table.
func (w Write) Has(op, table string) bool {
	for i := range w.Tables {
		if w.Tables[i] == table && w.Ops[i] == op {
			return true
		}
	}
	return false
}

// API is a store.DynamoAPI that answers the writes Conflict picks with a
// conflict instead of sending them; everything else goes to the wrapped
// client.
type API struct {
	store.DynamoAPI
	// Conflict decides whether a write meets a conflict; nil never.
	Conflict func(Write) bool

	injected atomic.Int64
}

// Wrap returns the client with conflicts picked by conflict.
func Wrap(api store.DynamoAPI, conflict func(Write) bool) *API {
	return &API{DynamoAPI: api, Conflict: conflict}
}

// Injected is how many conflicts were answered so far.
func (a *API) Injected() int64 { return a.injected.Load() }

func (a *API) conflicts(w Write) bool {
	if a.Conflict == nil || !a.Conflict(w) {
		return false
	}
	a.injected.Add(1)
	return true
}

func (a *API) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	tables := make([]string, len(in.TransactItems))
	ops := make([]string, len(in.TransactItems))
	for i, it := range in.TransactItems {
		tables[i], ops[i] = itemOf(it)
	}
	if !a.conflicts(Write{Op: "TransactWriteItems", Tables: tables, Ops: ops}) {
		return a.DynamoAPI.TransactWriteItems(ctx, in, optFns...)
	}
	// DynamoDB names the item that met the other transaction; any of them
	// can, and the store must not care which.
	reasons := make([]types.CancellationReason, len(tables))
	codes := make([]string, len(tables))
	hit := rand.IntN(len(tables))
	for i := range reasons {
		codes[i] = "None"
		if i == hit {
			codes[i] = "TransactionConflict"
			reasons[i].Message = aws.String("Transaction is ongoing for the item")
		}
		reasons[i].Code = aws.String(codes[i])
	}
	return nil, &types.TransactionCanceledException{
		Message:             aws.String("Transaction cancelled, please refer cancellation reasons for specific reasons [" + strings.Join(codes, ", ") + "]"),
		CancellationReasons: reasons,
	}
}

func (a *API) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if a.conflicts(Write{Op: "PutItem", Tables: []string{aws.ToString(in.TableName)}, Ops: []string{"Put"}}) {
		return nil, conflictException()
	}
	return a.DynamoAPI.PutItem(ctx, in, optFns...)
}

func (a *API) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if a.conflicts(Write{Op: "UpdateItem", Tables: []string{aws.ToString(in.TableName)}, Ops: []string{"Update"}}) {
		return nil, conflictException()
	}
	return a.DynamoAPI.UpdateItem(ctx, in, optFns...)
}

func (a *API) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if a.conflicts(Write{Op: "DeleteItem", Tables: []string{aws.ToString(in.TableName)}, Ops: []string{"Delete"}}) {
		return nil, conflictException()
	}
	return a.DynamoAPI.DeleteItem(ctx, in, optFns...)
}

func conflictException() error {
	return &types.TransactionConflictException{Message: aws.String("Transaction is ongoing for the item")}
}

func itemOf(it types.TransactWriteItem) (table, op string) {
	switch {
	case it.Put != nil:
		return aws.ToString(it.Put.TableName), "Put"
	case it.Update != nil:
		return aws.ToString(it.Update.TableName), "Update"
	case it.Delete != nil:
		return aws.ToString(it.Delete.TableName), "Delete"
	case it.ConditionCheck != nil:
		return aws.ToString(it.ConditionCheck.TableName), "ConditionCheck"
	}
	return "", ""
}

// Rate picks each write for which pick is true with probability p, from a
// source seeded with seed (so a failing run can be repeated).
func Rate(p float64, seed uint64, pick func(Write) bool) func(Write) bool {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed))
	return func(w Write) bool {
		if pick != nil && !pick(w) {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		return r.Float64() < p
	}
}

// Touches reports whether w writes to table.
func Touches(table string) func(Write) bool {
	return func(w Write) bool { return slices.Contains(w.Tables, table) }
}
