package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/p2/buddy/lambda/obs"
)

// Every write of one item is built one way, as an item of a transaction:
// putItem, updateItem, deleteItem and conditionCheck turn the table, the
// key (or the whole item of a put) and expression builders into one. A
// write that stands alone is that same item sent by itself (put, update,
// del), so a single call and a transaction item are never built apart. A
// transaction is a txn: the list of its items, run by transact.

// noCondition is the zero condition: the write holds whatever is stored.
var noCondition expression.ConditionBuilder

// exists is the condition of a write that must find its item.
func exists(keyAttr string) expression.ConditionBuilder {
	return expression.AttributeExists(expression.Name(keyAttr))
}

// notExists is the condition of a put that must not replace an item.
func notExists(keyAttr string) expression.ConditionBuilder {
	return expression.AttributeNotExists(expression.Name(keyAttr))
}

// conditionExpr is the expression of a put, delete or check: cond, or
// none when it is unset.
func conditionExpr(cond expression.ConditionBuilder) (expression.Expression, error) {
	if !cond.IsSet() {
		return expression.Expression{}, nil
	}
	return expression.NewBuilder().WithCondition(cond).Build()
}

func putItem(table string, it item, cond expression.ConditionBuilder) (types.TransactWriteItem, error) {
	expr, err := conditionExpr(cond)
	if err != nil {
		return types.TransactWriteItem{}, err
	}
	return types.TransactWriteItem{Put: &types.Put{
		TableName:                 aws.String(table),
		Item:                      it,
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	}}, nil
}

func updateItem(table string, key item, update expression.UpdateBuilder, cond expression.ConditionBuilder) (types.TransactWriteItem, error) {
	b := expression.NewBuilder().WithUpdate(update)
	if cond.IsSet() {
		b = b.WithCondition(cond)
	}
	expr, err := b.Build()
	if err != nil {
		return types.TransactWriteItem{}, err
	}
	return types.TransactWriteItem{Update: &types.Update{
		TableName:                 aws.String(table),
		Key:                       key,
		UpdateExpression:          expr.Update(),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	}}, nil
}

func deleteItem(table string, key item, cond expression.ConditionBuilder) (types.TransactWriteItem, error) {
	expr, err := conditionExpr(cond)
	if err != nil {
		return types.TransactWriteItem{}, err
	}
	return types.TransactWriteItem{Delete: &types.Delete{
		TableName:                 aws.String(table),
		Key:                       key,
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	}}, nil
}

func conditionCheck(table string, key item, cond expression.ConditionBuilder) (types.TransactWriteItem, error) {
	expr, err := conditionExpr(cond)
	if err != nil {
		return types.TransactWriteItem{}, err
	}
	return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName:                 aws.String(table),
		Key:                       key,
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	}}, nil
}

// put writes it to table when cond holds; a failed condition is returned
// as is (conditionFailed).
func (d *Dynamo) put(ctx context.Context, table string, it item, cond expression.ConditionBuilder) error {
	w, err := putItem(table, it, cond)
	if err != nil {
		return err
	}
	p := w.Put
	return d.retryConflicts(ctx, func() error {
		_, err := d.api.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                 p.TableName,
			Item:                      p.Item,
			ConditionExpression:       p.ConditionExpression,
			ExpressionAttributeNames:  p.ExpressionAttributeNames,
			ExpressionAttributeValues: p.ExpressionAttributeValues,
		})
		return err
	})
}

// update changes the item at key when cond holds and returns what
// returnValues asks for; a failed condition is returned as is.
func (d *Dynamo) update(ctx context.Context, table string, key item, update expression.UpdateBuilder, cond expression.ConditionBuilder, returnValues types.ReturnValue) (item, error) {
	w, err := updateItem(table, key, update, cond)
	if err != nil {
		return nil, err
	}
	u := w.Update
	var out *dynamodb.UpdateItemOutput
	err = d.retryConflicts(ctx, func() (err error) {
		out, err = d.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 u.TableName,
			Key:                       u.Key,
			UpdateExpression:          u.UpdateExpression,
			ConditionExpression:       u.ConditionExpression,
			ExpressionAttributeNames:  u.ExpressionAttributeNames,
			ExpressionAttributeValues: u.ExpressionAttributeValues,
			ReturnValues:              returnValues,
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out.Attributes, nil
}

// del deletes the item at key when cond holds; a failed condition is
// returned as is.
func (d *Dynamo) del(ctx context.Context, table string, key item, cond expression.ConditionBuilder) error {
	w, err := deleteItem(table, key, cond)
	if err != nil {
		return err
	}
	x := w.Delete
	return d.retryConflicts(ctx, func() error {
		_, err := d.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName:                 x.TableName,
			Key:                       x.Key,
			ConditionExpression:       x.ConditionExpression,
			ExpressionAttributeNames:  x.ExpressionAttributeNames,
			ExpressionAttributeValues: x.ExpressionAttributeValues,
		})
		return err
	})
}

// retryConflicts runs a single-item write, again after a pause while
// DynamoDB refuses it for meeting a transaction on the same item
// (TransactionConflictException, which the SDK does not retry). When the
// conflicts persist it returns ErrContention with DynamoDB's error.
func (d *Dynamo) retryConflicts(ctx context.Context, write func() error) error {
	pause := batchBackoff
	for attempt := 1; ; attempt++ {
		err := write()
		var conflict *types.TransactionConflictException
		if !errors.As(err, &conflict) {
			return err
		}
		obs.CountConflict(ctx)
		if attempt == batchAttempts {
			return fmt.Errorf("%w: %w", ErrContention, err)
		}
		if err := d.pause(ctx, jitter(pause)); err != nil {
			return err
		}
		pause = min(2*pause, batchMaxPause)
	}
}

// txn is one TransactWriteItems being built: its items in order and the
// first that could not be built, which transact returns. add gives each
// item's position, the name by which the caller reads whose condition
// failed, so a transaction reads as the list of its writes.
type txn struct {
	items []types.TransactWriteItem
	err   error
}

// add appends an item as putItem, updateItem, deleteItem or
// conditionCheck return it: tx.add(putItem(...)).
func (t *txn) add(w types.TransactWriteItem, err error) int {
	if t.err == nil {
		t.err = err
	}
	t.items = append(t.items, w)
	return len(t.items) - 1
}

// Cancellation reason codes of a transaction (types.CancellationReason).
const (
	reasonConditionFailed = "ConditionalCheckFailed"
	reasonConflict        = "TransactionConflict"
)

// transact runs one transaction and, when conditions cancelled it, returns
// which items' conditions failed (nil when it went through). DynamoDB
// also cancels a transaction that meets another on the same item (a
// TransactionConflict: one user's concurrent sends and finishes all write
// their day's counter and running set); such a transaction is run again
// after a pause, doubling and jittered so that the ones that met do not
// meet again, a bounded number of times, and then fails with
// ErrContention: the caller decides whether to answer rate_limited (an
// acceptance) or to keep trying (a finish, which must land). Every
// conflict is counted for the summary line's TransactionConflicts metric.
func (d *Dynamo) transact(ctx context.Context, what string, tx *txn) ([]bool, error) {
	if tx.err != nil {
		return nil, wrap(what, tx.err)
	}
	pause := batchBackoff
	for attempt := 1; ; attempt++ {
		_, err := d.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: tx.items})
		codes := cancellationCodes(err)
		switch {
		case err == nil:
			return nil, nil
		case slices.Contains(codes, reasonConditionFailed):
			failed := make([]bool, len(tx.items))
			for i := range failed {
				failed[i] = i < len(codes) && codes[i] == reasonConditionFailed
			}
			return failed, nil
		case !slices.Contains(codes, reasonConflict):
			return nil, wrap(what, err)
		}
		obs.CountConflict(ctx)
		if attempt == batchAttempts {
			return nil, fmt.Errorf("store: %s: %w: %w", what, ErrContention, err)
		}
		if err := d.pause(ctx, jitter(pause)); err != nil {
			return nil, wrap(what, err)
		}
		pause = min(2*pause, batchMaxPause)
	}
}

// cancellationCodes are the reason codes of a cancelled transaction, one
// per item, or nil for any other outcome.
func cancellationCodes(err error) []string {
	var tc *types.TransactionCanceledException
	if !errors.As(err, &tc) {
		return nil
	}
	codes := make([]string, len(tc.CancellationReasons))
	for i, r := range tc.CancellationReasons {
		codes[i] = aws.ToString(r.Code)
	}
	return codes
}
