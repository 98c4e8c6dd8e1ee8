package store

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/tokens"
)

// How a reply ends in the store. Each way gives back what the acceptance
// took (settle) in the same transaction that records the end, conditional
// on the reply's running entry still being there: whichever way comes
// first settles the reply, and any later one finds nothing to give back.

var zeroUsage tokens.Usage

// Finish is everything FinishReply writes.
type Finish struct {
	// Reply is the reply as accepted: its day, reservation (as extended,
	// if it was) and running entry.
	Reply Reply
	// Message is the assistant message in its final form.
	Message Message
	// Keep is how long the ended reply stays resumable.
	Keep time.Duration
	// InputBytes is what the conversation's next request resends before
	// its new message (Conversation.InputBytes); 0 leaves it as it is.
	InputBytes int64
}

// FinishReply stores a reply's end in one transaction: the message, the
// conversation touched (its replying mark cleared, its input size kept),
// the live record ended, the reply out of the running set, the quota
// counter settled from the reservation to the real figure and the usage
// row. Nothing a client does can make it fail: the live record's
// listeners are not part of its condition (the job reads them again once
// the end is stored, and a resume after that replays the stored message).
// ErrNotFound: the conversation was deleted meanwhile; then only the usage
// is written (the tokens were spent) and nothing of the conversation is
// left. ErrClaimed: the reply was settled already. ErrContention: retry.
func (d *Dynamo) FinishReply(ctx context.Context, f Finish) error {
	m, r := f.Message, f.Reply
	if err := checkMessage(m); err != nil {
		return err
	}
	var tx txn
	stored := tx.add(putItem(d.tables.Messages, messageItem(m), exists(manifest.AttrMessageID)))
	// The mark is this reply's: another could only have replaced it after
	// it lapsed (20 minutes), longer than a reply job can run.
	touch := expression.Set(expression.Name(manifest.AttrUpdatedAt), expression.Value(fixedTime(m.CreatedAt))).
		Remove(expression.Name(attrReplying)).Remove(expression.Name(attrUntil))
	if f.InputBytes > 0 {
		touch = touch.Set(expression.Name(attrInput), expression.Value(f.InputBytes))
	}
	touched := tx.add(updateItem(d.tables.Conversations, conversationKey(m.UserID, m.ConversationID), touch, exists(manifest.AttrConversationID)))
	ended := tx.add(updateItem(d.tables.Replies, replyKey(r.MessageID),
		expression.Set(expression.Name(attrStatus), expression.Value(m.Status)).
			Set(expression.Name(manifest.AttrExpiresAt), expression.Value(m.CreatedAt.Add(f.Keep).Unix())),
		exists(manifest.AttrMessageID)))
	running := d.settle(&tx, r, m.Model, m.Usage)
	failed, err := d.transact(ctx, "finish reply", &tx)
	if err != nil || failed == nil {
		return err
	}
	switch {
	case failed[running]:
		return ErrClaimed
	case failed[stored] || failed[touched] || failed[ended]:
		// Deleted with its conversation: settle the tokens alone.
		return d.settleOnly(ctx, r, m.Model, m.Usage)
	}
	return ErrClaimed
}

// settleOnly settles a reply whose conversation is gone and returns
// ErrNotFound, or the failure.
func (d *Dynamo) settleOnly(ctx context.Context, r Reply, model string, u tokens.Usage) error {
	var tx txn
	d.settle(&tx, r, model, u)
	tx.add(deleteItem(d.tables.Replies, replyKey(r.MessageID), noCondition))
	failed, err := d.transact(ctx, "settle reply", &tx)
	if err != nil {
		return err
	}
	if failed != nil {
		return ErrClaimed
	}
	return ErrNotFound
}

// settle adds to tx the items that give back what the acceptance took,
// conditional on the reply still being in the running set (a reply is
// settled once), and count usage u of model. It returns the position of
// the running set's item, whose condition says whether the reply was
// settled before.
func (d *Dynamo) settle(tx *txn, r Reply, model string, u tokens.Usage) int {
	entry := &types.AttributeValueMemberSS{Value: []string{r.LiveEntry}}
	running := tx.add(updateItem(d.tables.Usage, usageKey(r.UserID, liveKey),
		expression.Delete(expression.Name(attrReplies), expression.Value(entry)),
		expression.Contains(expression.Name(attrReplies), r.LiveEntry)))
	tx.add(updateItem(d.tables.Usage, usageKey(r.UserID, quotaKey(r.Day)),
		expression.Add(expression.Name(attrTokens), expression.Value(u.Total()-r.Reserved)).
			Add(expression.Name(attrReserved), expression.Value(-r.Reserved)), noCondition))
	if u.Total() > 0 {
		tx.add(d.usageRow(r, model, u))
	}
	return running
}

// usageRow is the update adding u to the reply's day and model row.
func (d *Dynamo) usageRow(r Reply, model string, u tokens.Usage) (types.TransactWriteItem, error) {
	if err := checkAddUsage(r.UserID, r.Day, model, u); err != nil {
		return types.TransactWriteItem{}, err
	}
	return updateItem(d.tables.Usage, usageKey(r.UserID, usageRowKey(r.Day, model)), addUsage(u), noCondition)
}

// addUsage adds u's counters to a usage row.
func addUsage(u tokens.Usage) expression.UpdateBuilder {
	return expression.Add(expression.Name(attrInputTokens), expression.Value(u.InputTokens)).
		Add(expression.Name(attrOutputTokens), expression.Value(u.OutputTokens)).
		Add(expression.Name(attrCacheRead), expression.Value(u.CacheReadInputTokens)).
		Add(expression.Name(attrCacheCreation), expression.Value(u.CacheCreationInputTokens)).
		Add(expression.Name(attrCacheWrite5m), expression.Value(u.CacheWrite5mInputTokens)).
		Add(expression.Name(attrCacheWrite1h), expression.Value(u.CacheWrite1hInputTokens))
}

// ExtendReservation adds extra tokens to a running reply's reservation,
// when the day's counter has room for them within limit (0: none): the
// reply job found its request larger than the acceptance's bound (a
// conversation stored before its size was kept, a saved prompt that grew).
// ErrQuotaExceeded: no room; ErrNotFound: the reply is gone or ended.
func (d *Dynamo) ExtendReservation(ctx context.Context, r Reply, extra, limit int64) error {
	if extra <= 0 {
		return nil
	}
	if limit > 0 && extra > limit {
		return ErrQuotaExceeded
	}
	var room expression.ConditionBuilder
	if limit > 0 {
		room = roomFor(limit, extra)
	}
	var tx txn
	quota := tx.add(updateItem(d.tables.Usage, usageKey(r.UserID, quotaKey(r.Day)),
		expression.Add(expression.Name(attrTokens), expression.Value(extra)).
			Add(expression.Name(attrReserved), expression.Value(extra)), room))
	tx.add(updateItem(d.tables.Replies, replyKey(r.MessageID),
		expression.Add(expression.Name(attrReserved), expression.Value(extra)), d.running(r.UserID)))
	failed, err := d.transact(ctx, "extend reservation", &tx)
	switch {
	case err != nil || failed == nil:
		return err
	case failed[quota]:
		return ErrQuotaExceeded
	}
	return ErrNotFound
}

// How failReply finds the reply it fails.
type failWhen int

const (
	failUnclaimed failWhen = iota // a job that never ran: only while unclaimed
	failRunning                   // a claimed reply whose finish could not be stored
	failLapsed                    // a reply whose job died: its entry lapsed
)

// FailUnstarted fails a reply whose job never ran (Lambda gave up on the
// invocation, or its conversation was deleted before it ran): its message
// and record say failed with code, and its reservation and running entry
// are given back. ErrClaimed: the job did run (it settles itself);
// ErrNotFound: the reply is gone (what it took was given back all the
// same).
func (d *Dynamo) FailUnstarted(ctx context.Context, r Reply, code string) error {
	return d.failReply(ctx, r, failUnclaimed, code, "", zeroUsage)
}

// MarkFailed fails a claimed reply whose finish could not be stored: its
// message and record say failed with code, usage u of model is counted and
// what the acceptance took is given back.
func (d *Dynamo) MarkFailed(ctx context.Context, r Reply, code, model string, u tokens.Usage) error {
	return d.failReply(ctx, r, failRunning, code, model, u)
}

// failReply is the transaction of FailUnstarted, MarkFailed and a lapsed
// reply: the record and message failed, the reply settled.
func (d *Dynamo) failReply(ctx context.Context, r Reply, when failWhen, code, model string, u tokens.Usage) error {
	if !findable(r.MessageID, r.UserID, r.ConversationID) {
		return ErrNotFound
	}
	failedStatus := expression.Set(expression.Name(attrStatus), expression.Value(StatusFailed))
	cond := d.running(r.UserID)
	if when == failUnclaimed {
		cond = d.unclaimed(r.UserID)
	}
	var tx txn
	record := tx.add(updateItem(d.tables.Replies, replyKey(r.MessageID), failedStatus, cond))
	running := d.settle(&tx, r, model, u)
	// The message is the last item: a transaction without it is the same
	// one, for a conversation deleted meanwhile.
	msg := tx.add(updateItem(d.tables.Messages, messageKey(r.ConversationID, r.MessageID),
		failedStatus.Set(expression.Name(attrErrorCode), expression.Value(code)), exists(manifest.AttrMessageID)))
	failed, err := d.transact(ctx, "fail reply", &tx)
	if err != nil {
		return err
	}
	switch {
	case failed == nil:
		d.clearReplying(ctx, r)
		return nil
	case failed[record]:
		if _, err := d.GetReply(ctx, r.MessageID); !errors.Is(err, ErrNotFound) {
			if err != nil {
				return err
			}
			return ErrClaimed
		}
		// Deleted with its conversation before it ran: what it took is
		// given back all the same.
		var give txn
		d.settle(&give, r, model, u)
		if _, err := d.transact(ctx, "give back reply", &give); err != nil {
			return err
		}
		return ErrNotFound
	case failed[running]:
		return ErrClaimed
	case failed[msg]:
		tx.items = tx.items[:msg]
		_, err := d.transact(ctx, "fail reply", &tx)
		return err
	}
	return ErrClaimed
}

// clearReplying takes the conversation's replying mark off, if it is still
// this reply's. Best effort: a mark left behind lapses by itself.
func (d *Dynamo) clearReplying(ctx context.Context, r Reply) {
	_, _ = d.update(ctx, d.tables.Conversations, conversationKey(r.UserID, r.ConversationID),
		expression.Remove(expression.Name(attrReplying)).Remove(expression.Name(attrUntil)),
		expression.Name(attrReplying).Equal(expression.Value(r.MessageID)), types.ReturnValueNone)
}
