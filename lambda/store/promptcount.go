package store

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/p2/buddy/lambda/manifest"
)

// The per-user prompt limit. Counting a user's prompts and then creating
// one races: concurrent creates all pass the count. So each user has a
// counter item in the prompts table (sort key promptCounterKey, attribute
// attrPrompts), and creating a prompt puts it and adds one to the counter
// in a single TransactWriteItems, on condition that the counter is below
// the limit; deleting one removes it and subtracts one in a single
// transaction too. The counter is therefore always the number of prompts,
// and no number of concurrent creates passes the limit.
//
// Users whose prompts predate the counter (and new users) have no counter
// item: the first counted write finds it missing, creates it from a count
// of their prompts, and runs again. While it is missing no counted write
// changes their prompts, and it is only created where it does not exist,
// so a count that raced with another creation is never stored.

// promptCounterKey is the counter's sort key. Prompt ids are ULIDs, and
// the store refuses this one as a prompt id, so it is never a prompt's.
const promptCounterKey = "#count"

// Why a counted write is run again.
var (
	// errNoCounter: the user has no prompt counter yet.
	errNoCounter = errors.New("store: the user has no prompt counter")
	// errCountChanged: the counter refused a create, but has room by the
	// time it is read (another write created it, or a delete made room).
	errCountChanged = errors.New("store: the prompt counter changed")
)

// countedAttempts bounds the runs of one counted write: the first, one
// after creating the counter, and a few after it changed in between.
const countedAttempts = 4

func isPromptCounter(it item) bool {
	k, _ := it[manifest.AttrPromptID].(*types.AttributeValueMemberS)
	return k != nil && k.Value == promptCounterKey
}

func (d *Dynamo) CreatePrompt(ctx context.Context, p Prompt, limit int) error {
	if err := checkPrompt(p); err != nil {
		return err
	}
	return d.counted(ctx, p.UserID, "create prompt", func() error { return d.createCounted(ctx, p, limit) })
}

func (d *Dynamo) DeletePrompt(ctx context.Context, userID, promptID string) error {
	if !promptFindable(userID, promptID) {
		return ErrNotFound
	}
	return d.counted(ctx, userID, "delete prompt", func() error { return d.deleteCounted(ctx, userID, promptID) })
}

// counted runs a counted write, again after creating the user's counter
// when it has none, or when the counter changed between the write and the
// read that explained its refusal.
func (d *Dynamo) counted(ctx context.Context, userID, what string, write func() error) error {
	for attempt := 1; ; attempt++ {
		err := write()
		noCounter := errors.Is(err, errNoCounter)
		if !noCounter && !errors.Is(err, errCountChanged) {
			return err
		}
		if attempt == countedAttempts {
			return wrap(what, err)
		}
		if noCounter {
			if err := d.startPromptCounter(ctx, userID); err != nil {
				return err
			}
		}
	}
}

// createCounted puts p and counts it, if the counter has room.
func (d *Dynamo) createCounted(ctx context.Context, p Prompt, limit int) error {
	room := exists(attrPrompts)
	if limit > 0 {
		room = room.And(expression.Name(attrPrompts).LessThan(expression.Value(limit)))
	}
	var tx txn
	put := tx.add(putItem(d.tables.Prompts, promptItem(p), notExists(manifest.AttrPromptID)))
	tx.add(d.countPrompt(p.UserID, 1, room))
	failed, err := d.transact(ctx, "create prompt", &tx)
	if err != nil || failed == nil {
		return err
	}
	if failed[put] {
		return ErrExists
	}
	return d.noRoom(ctx, p.UserID, limit)
}

// noRoom tells why the counter refused a create: it is at the limit
// (ErrLimit), it does not exist yet, or it has changed since.
func (d *Dynamo) noRoom(ctx context.Context, userID string, limit int) error {
	it, err := d.getOne(ctx, d.tables.Prompts, promptKey(userID, promptCounterKey), "read prompt counter")
	if errors.Is(err, ErrNotFound) {
		return errNoCounter
	}
	if err != nil {
		return err
	}
	c, err := unmarshal[promptCounterRecord](it)
	if err != nil {
		return err
	}
	if limit <= 0 || c.Prompts < limit {
		return errCountChanged
	}
	return ErrLimit
}

// deleteCounted deletes the prompt and uncounts it.
func (d *Dynamo) deleteCounted(ctx context.Context, userID, promptID string) error {
	var tx txn
	del := tx.add(deleteItem(d.tables.Prompts, promptKey(userID, promptID), exists(manifest.AttrPromptID)))
	tx.add(d.countPrompt(userID, -1, exists(attrPrompts)))
	failed, err := d.transact(ctx, "delete prompt", &tx)
	if err != nil || failed == nil {
		return err
	}
	if failed[del] {
		return ErrNotFound
	}
	return errNoCounter
}

// countPrompt is the update adding delta to the user's counter when cond
// holds.
func (d *Dynamo) countPrompt(userID string, delta int, cond expression.ConditionBuilder) (types.TransactWriteItem, error) {
	return updateItem(d.tables.Prompts, promptKey(userID, promptCounterKey), expression.Add(expression.Name(attrPrompts), expression.Value(delta)), cond)
}

// startPromptCounter creates the user's counter from a count of their
// prompts, unless another write created it first (its count is as good).
func (d *Dynamo) startPromptCounter(ctx context.Context, userID string) error {
	ps, err := d.ListPrompts(ctx, userID)
	if err != nil {
		return err
	}
	err = d.putNew(ctx, d.tables.Prompts, promptCounterItem(userID, len(ps)), manifest.AttrPromptID, "start prompt counter")
	if errors.Is(err, ErrExists) {
		return nil
	}
	return err
}

// jitter is a random pause between d/2 and d.
func jitter(d time.Duration) time.Duration { return d/2 + rand.N(d/2+1) }
