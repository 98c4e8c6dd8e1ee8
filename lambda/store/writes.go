package store

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Every write of one item is built one way, as an item of a transaction:
// putItem, updateItem, deleteItem and conditionCheck turn the table, the
// key (or the whole item of a put) and expression builders into one. A
// write that stands alone is that same item sent by itself (put, update,
// del), so a single call and a transaction item are never built apart.

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
	_, err = d.api.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 p.TableName,
		Item:                      p.Item,
		ConditionExpression:       p.ConditionExpression,
		ExpressionAttributeNames:  p.ExpressionAttributeNames,
		ExpressionAttributeValues: p.ExpressionAttributeValues,
	})
	return err
}

// update changes the item at key when cond holds and returns what
// returnValues asks for; a failed condition is returned as is.
func (d *Dynamo) update(ctx context.Context, table string, key item, update expression.UpdateBuilder, cond expression.ConditionBuilder, returnValues types.ReturnValue) (item, error) {
	w, err := updateItem(table, key, update, cond)
	if err != nil {
		return nil, err
	}
	u := w.Update
	out, err := d.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 u.TableName,
		Key:                       u.Key,
		UpdateExpression:          u.UpdateExpression,
		ConditionExpression:       u.ConditionExpression,
		ExpressionAttributeNames:  u.ExpressionAttributeNames,
		ExpressionAttributeValues: u.ExpressionAttributeValues,
		ReturnValues:              returnValues,
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
	_, err = d.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 x.TableName,
		Key:                       x.Key,
		ConditionExpression:       x.ConditionExpression,
		ExpressionAttributeNames:  x.ExpressionAttributeNames,
		ExpressionAttributeValues: x.ExpressionAttributeValues,
	})
	return err
}
