package store

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/tokens"
)

// The reply path's writes. A reply has two items: its assistant message in
// the messages table (what GET /conversations/{id} shows, status and all)
// and its live record in the replies table, keyed by the message id alone
// because stop and resume carry nothing else. Every step that changes more
// than one item is one TransactWriteItems, so that no failure leaves them
// disagreeing:
//
//   - AcceptMessage: the conversation (created or touched), the user's
//     message, the assistant message (status streaming), the live record,
//     the reservation of the reply's max tokens on the day's quota counter
//     and the reply's entry in the user's set of running replies (the
//     in-flight cap), with a saved prompt named by the request checked in
//     passing. One round trip on the path to the first token.
//   - ClaimReply: the job marks the live record claimed, so a second
//     delivery of the same job does nothing, and checks that the
//     conversation is the job's user's.
//   - FinishReply: the assistant message in its final form, the usage row,
//     the quota counter settled from the reservation to the real figure,
//     the entry out of the running set and the live record ended.
//   - FailUnstarted: a job that never ran is failed and its reservation
//     and running entry given back.
var (
	// ErrRateLimited: the user has as many replies running as allowed, or
	// a reply has as many listeners as it keeps.
	ErrRateLimited = errors.New("store: too many running")
	// ErrClaimed: the reply was already claimed (a second delivery of its
	// job) or has ended.
	ErrClaimed = errors.New("store: reply already claimed")
	// ErrEnded: the reply is no longer running.
	ErrEnded = errors.New("store: reply has ended")
	// ErrListenersChanged: a listener joined since the reply's record was
	// read; the finish must serve it first.
	ErrListenersChanged = errors.New("store: reply listeners changed")
	// ErrPromptNotFound is ErrNotFound for the saved prompt a request named.
	ErrPromptNotFound = fmt.Errorf("%w: prompt", ErrNotFound)
)

// Message statuses. A user's message is complete once stored.
const (
	StatusStreaming  = "streaming"
	StatusComplete   = "complete"
	StatusStopped    = "stopped"
	StatusIncomplete = "incomplete"
	StatusFailed     = "failed"
)

// MaxListeners bounds the listeners a reply keeps (each resume adds one),
// so its record stays small whatever a client sends.
const MaxListeners = 32

// liveKey is the usage table's sort key of the user's running replies.
const liveKey = "live"

// Attribute names of the reply path.
const (
	attrStatus    = "status"
	attrFrames    = "frames"
	attrClaimed   = "claimed"
	attrStop      = "stop"
	attrListeners = "listeners"
	attrVersion   = "version"
	attrReserved  = "reserved"
	attrReplies   = "replies"
	attrErrorCode = "errorCode"
	attrModel     = "model"
)

// Frame is one delta or thinking frame of a reply, as a resume replays it:
// how many bytes of the text (or of the thinking text) it carried.
type Frame struct {
	Bytes    int  `dynamodbav:"n"`
	Thinking bool `dynamodbav:"t,omitempty"`
}

// Listener is a connection that asked to follow a running reply, from the
// frame after AfterSeq on.
type Listener struct {
	ConnectionID string
	RequestID    string
	AfterSeq     int
}

// key names a listener in its reply's record: the same resume sent twice
// registers once. Encoded so that no id can be read as a document path
// (dots, brackets).
func (l Listener) key() string {
	return base64.RawURLEncoding.EncodeToString([]byte(l.ConnectionID + "\n" + l.RequestID))
}

// Reply is a reply's live record. Its tags are the stored attributes,
// but for the listeners (replyRecord).
type Reply struct {
	MessageID      string `dynamodbav:"messageId"`
	UserID         string `dynamodbav:"userId"`
	ConversationID string `dynamodbav:"conversationId"`
	// The connection and request that asked for the reply.
	ConnectionID string     `dynamodbav:"connectionId,omitempty"`
	RequestID    string     `dynamodbav:"requestId,omitempty"`
	Status       string     `dynamodbav:"status"` // streaming until the reply ends, then the message's final status
	Claimed      bool       `dynamodbav:"claimed,omitempty"`
	Stop         bool       `dynamodbav:"stop,omitempty"`
	Listeners    []Listener `dynamodbav:"-"` // in the order they joined
	// Version counts the listeners that joined; a finish is conditional on
	// it, so no listener joins unseen.
	Version int64 `dynamodbav:"version"`
	// What the acceptance took, for the finish to give back: the day and
	// tokens reserved on its quota counter and the entry in the running set.
	Day       string `dynamodbav:"day"`
	Reserved  int64  `dynamodbav:"reserved,omitempty"`
	LiveEntry string `dynamodbav:"live"`
	// Stored as epoch seconds, for TTL.
	ExpiresAt time.Time `dynamodbav:"expiresAt,unixtime"`
}

// Acceptance is everything AcceptMessage writes.
type Acceptance struct {
	// Conversation is created when New, else touched: UpdatedAt, and
	// PromptID when not empty.
	Conversation Conversation
	New          bool
	// CheckPromptID, when not empty, is a saved prompt of the user that
	// must exist (ErrPromptNotFound otherwise).
	CheckPromptID string
	UserMessage   Message
	// Assistant is the reply's message as it starts (status streaming).
	Assistant Message
	Reply     Reply
	// DailyLimit is the day's token limit (0: none); MaxInflight the
	// running replies a user may have.
	DailyLimit  int64
	MaxInflight int
}

// LiveEntry is the entry of a reply in its user's running set: when it
// lapses (a crashed job never gives it back) and the message id.
func LiveEntry(until time.Time, messageID string) string {
	return strconv.FormatInt(until.Unix(), 10) + "/" + messageID
}

func liveEntryLapsed(entry string, now time.Time) bool {
	epoch, _, ok := strings.Cut(entry, "/")
	n, err := strconv.ParseInt(epoch, 10, 64)
	return ok && err == nil && now.Unix() >= n
}

// AcceptMessage stores a request and its reply's start in one transaction.
// Errors: ErrNotFound (the conversation is not the user's or is gone),
// ErrPromptNotFound, ErrQuotaExceeded (the day's counter is at the limit),
// ErrRateLimited (as many replies running as allowed), ErrExists (an id
// collision).
func (d *Dynamo) AcceptMessage(ctx context.Context, a Acceptance) error {
	if err := checkAcceptance(a); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		tx, at := d.acceptTxn(a)
		failed, err := d.transact(ctx, "accept message", &tx)
		if err != nil || failed == nil {
			return err
		}
		switch {
		case failed[at.conversation] && a.New:
			return ErrExists
		case failed[at.conversation]:
			return ErrNotFound
		case failed[at.user], failed[at.assistant], failed[at.live]:
			return ErrExists
		case failed[at.quota]:
			return ErrQuotaExceeded
		case a.CheckPromptID != "" && failed[at.prompt]:
			return ErrPromptNotFound
		}
		// The running set is full; entries of jobs that died without
		// giving theirs back lapse, and are dropped before one retry.
		if attempt > 0 {
			return ErrRateLimited
		}
		if dropped, err := d.dropLapsed(ctx, a.Reply.UserID); err != nil || !dropped {
			return cmp.Or(err, ErrRateLimited)
		}
	}
}

func checkAcceptance(a Acceptance) error {
	if a.New {
		if err := checkConversation(a.Conversation); err != nil {
			return err
		}
	} else {
		var r rules
		r.id("user id", a.Conversation.UserID)
		r.id("conversation id", a.Conversation.ConversationID)
		r.field("prompt id", a.Conversation.PromptID, maxIDBytes)
		r.time("updatedAt", a.Conversation.UpdatedAt)
		if err := r.err(); err != nil {
			return err
		}
	}
	if a.CheckPromptID != "" && !promptFindable(a.Conversation.UserID, a.CheckPromptID) {
		return ErrPromptNotFound
	}
	return errors.Join(checkMessage(a.UserMessage), checkMessage(a.Assistant), checkReserve(a.Reply.UserID, a.Reply.Day))
}

// accepted names the items of AcceptMessage's transaction by position.
type accepted struct {
	conversation, user, assistant, live, quota, running int
	// prompt is the saved prompt's check, when the request named one.
	prompt int
}

// acceptTxn is AcceptMessage's transaction: the conversation, the user's
// message, the assistant message, the live record, the quota counter, the
// running set and, when the request named one, the prompt check.
func (d *Dynamo) acceptTxn(a Acceptance) (txn, accepted) {
	var tx txn
	var at accepted
	if a.New {
		at.conversation = tx.add(putItem(d.tables.Conversations, conversationItem(a.Conversation), notExists(manifest.AttrConversationID)))
	} else {
		c := a.Conversation
		update := expression.Set(expression.Name(manifest.AttrUpdatedAt), expression.Value(fixedTime(c.UpdatedAt)))
		if c.PromptID != "" {
			update = update.Set(expression.Name(manifest.AttrPromptID), expression.Value(c.PromptID))
		}
		if c.Model != "" {
			update = update.Set(expression.Name(attrModel), expression.Value(c.Model))
		}
		at.conversation = tx.add(updateItem(d.tables.Conversations, conversationKey(c.UserID, c.ConversationID), update, exists(manifest.AttrConversationID)))
	}
	newMessage := notExists(manifest.AttrMessageID)
	at.user = tx.add(putItem(d.tables.Messages, messageItem(a.UserMessage), newMessage))
	at.assistant = tx.add(putItem(d.tables.Messages, messageItem(a.Assistant), newMessage))
	at.live = tx.add(putItem(d.tables.Replies, replyItem(a.Reply), newMessage))
	// tokens is the day's committed total: what replies used plus what
	// running ones reserved. A request is admitted while it is below the
	// limit, so concurrent ones overshoot by at most the one admitted last.
	reserve := expression.Add(expression.Name(attrTokens), expression.Value(a.Reply.Reserved)).
		Add(expression.Name(attrReserved), expression.Value(a.Reply.Reserved)).
		Add(expression.Name(attrRequests), expression.Value(1))
	var below expression.ConditionBuilder
	if a.DailyLimit > 0 {
		below = expression.AttributeNotExists(expression.Name(attrTokens)).Or(expression.Name(attrTokens).LessThan(expression.Value(a.DailyLimit)))
	}
	at.quota = tx.add(updateItem(d.tables.Usage, usageKey(a.Reply.UserID, quotaKey(a.Reply.Day)), reserve, below))
	room := expression.AttributeNotExists(expression.Name(attrReplies)).Or(expression.Size(expression.Name(attrReplies)).LessThan(expression.Value(a.MaxInflight)))
	at.running = tx.add(updateItem(d.tables.Usage, usageKey(a.Reply.UserID, liveKey),
		expression.Add(expression.Name(attrReplies), expression.Value(&types.AttributeValueMemberSS{Value: []string{a.Reply.LiveEntry}})), room))
	if a.CheckPromptID != "" {
		at.prompt = tx.add(conditionCheck(d.tables.Prompts, promptKey(a.Conversation.UserID, a.CheckPromptID), exists(manifest.AttrPromptID)))
	}
	return tx, at
}

// runningEntries reads the user's running set, split into the entries
// that still hold and those that lapsed.
func (d *Dynamo) runningEntries(ctx context.Context, userID string) (live, lapsed []string, err error) {
	it, err := d.getOne(ctx, d.tables.Usage, usageKey(userID, liveKey), "read running replies")
	if errors.Is(err, ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	set, _ := it[attrReplies].(*types.AttributeValueMemberSS)
	if set == nil {
		return nil, nil, nil
	}
	now := d.now()
	for _, e := range set.Value {
		if liveEntryLapsed(e, now) {
			lapsed = append(lapsed, e)
		} else {
			live = append(live, e)
		}
	}
	return live, lapsed, nil
}

// dropLapsed removes lapsed entries from the user's running set and
// reports whether there were any.
func (d *Dynamo) dropLapsed(ctx context.Context, userID string) (bool, error) {
	_, lapsed, err := d.runningEntries(ctx, userID)
	if err != nil || len(lapsed) == 0 {
		return false, err
	}
	if err := d.leaveRunning(ctx, userID, lapsed...); err != nil {
		return false, err
	}
	return true, nil
}

// leaveRunning takes entries out of the user's running set.
func (d *Dynamo) leaveRunning(ctx context.Context, userID string, entries ...string) error {
	_, err := d.update(ctx, d.tables.Usage, usageKey(userID, liveKey),
		expression.Delete(expression.Name(attrReplies), expression.Value(&types.AttributeValueMemberSS{Value: entries})), noCondition, types.ReturnValueNone)
	if err != nil {
		return wrap("leave running replies", err)
	}
	return nil
}

// Running reports the user's running replies (lapsed entries excluded).
func (d *Dynamo) Running(ctx context.Context, userID string) (int, error) {
	if !findable(userID) {
		return 0, nil
	}
	live, _, err := d.runningEntries(ctx, userID)
	return len(live), err
}

func replyKey(messageID string) item { return item{manifest.AttrMessageID: attrS(messageID)} }

// GetReply reads a reply's live record, consistently. Another user's
// reply is ErrNotFound only for callers that check UserID; the job reads
// its own.
func (d *Dynamo) GetReply(ctx context.Context, messageID string) (Reply, error) {
	if !findable(messageID) {
		return Reply{}, ErrNotFound
	}
	it, err := d.getOne(ctx, d.tables.Replies, replyKey(messageID), "get reply")
	if err != nil {
		return Reply{}, err
	}
	return decodeReply(it)
}

// getOwnReply is GetReply for userID: another user's reply is not found.
func (d *Dynamo) getOwnReply(ctx context.Context, userID, messageID string) (Reply, error) {
	r, err := d.GetReply(ctx, messageID)
	if err == nil && r.UserID != wire(userID) {
		return Reply{}, ErrNotFound
	}
	return r, err
}

// ClaimReply marks the reply claimed by its job, if nothing claimed it
// before, and checks in the same transaction that the conversation is
// still the user's. ErrClaimed: it was claimed (or failed) before;
// ErrNotFound: the reply or its conversation is gone.
func (d *Dynamo) ClaimReply(ctx context.Context, r Reply) error {
	if !findable(r.MessageID, r.UserID, r.ConversationID) {
		return ErrNotFound
	}
	var tx txn
	tx.add(updateItem(d.tables.Replies, replyKey(r.MessageID),
		expression.Set(expression.Name(attrClaimed), expression.Value(true)), d.unclaimed(r.UserID)))
	owned := tx.add(conditionCheck(d.tables.Conversations, conversationKey(r.UserID, r.ConversationID), exists(manifest.AttrConversationID)))
	failed, err := d.transact(ctx, "claim reply", &tx)
	if err != nil || failed == nil {
		return err
	}
	if failed[owned] {
		return ErrNotFound
	}
	if _, err := d.GetReply(ctx, r.MessageID); errors.Is(err, ErrNotFound) {
		return ErrNotFound
	}
	return ErrClaimed
}

// AddListener registers l to follow the user's running reply and returns
// the record with it. ErrNotFound: no such reply of the user's; ErrEnded
// (with the record): it is no longer running; ErrRateLimited: it has
// MaxListeners already.
func (d *Dynamo) AddListener(ctx context.Context, userID, messageID string, l Listener) (Reply, error) {
	if !findable(userID, messageID) || !findable(l.ConnectionID) {
		return Reply{}, ErrNotFound
	}
	var r rules
	r.field("request id", l.RequestID, maxFieldBytes)
	if l.AfterSeq < -1 {
		r.errs = append(r.errs, fmt.Sprintf("afterSeq %d is below -1", l.AfterSeq))
	}
	if err := r.err(); err != nil {
		return Reply{}, err
	}
	update := expression.Set(expression.Name(attrListeners+"."+l.key()), expression.Value(listenerRecord{ConnectionID: l.ConnectionID, RequestID: l.RequestID, AfterSeq: l.AfterSeq, Joined: fixedTime(d.now())})).
		Add(expression.Name(attrVersion), expression.Value(1))
	cond := d.running(userID).And(expression.Size(expression.Name(attrListeners)).LessThan(expression.Value(MaxListeners)))
	rec, err := d.updateReply(ctx, messageID, update, cond)
	if err == nil || !conditionFailed(err) {
		return rec, err
	}
	rec, err = d.getOwnReply(ctx, userID, messageID)
	switch {
	case err != nil:
		return Reply{}, err
	case rec.Status != StatusStreaming:
		return rec, ErrEnded
	}
	return rec, ErrRateLimited
}

// RequestStop asks the user's running reply to stop. ErrNotFound: no such
// reply of the user's; ErrEnded: it is no longer running.
func (d *Dynamo) RequestStop(ctx context.Context, userID, messageID string) error {
	if !findable(userID, messageID) {
		return ErrNotFound
	}
	_, err := d.updateReply(ctx, messageID, expression.Set(expression.Name(attrStop), expression.Value(true)), d.running(userID))
	if err == nil || !conditionFailed(err) {
		return err
	}
	if _, err := d.getOwnReply(ctx, userID, messageID); err != nil {
		return err
	}
	return ErrEnded
}

// running is the condition of a change to the user's running reply.
func (d *Dynamo) running(userID string) expression.ConditionBuilder {
	return exists(manifest.AttrMessageID).
		And(expression.Name(manifest.AttrUserID).Equal(expression.Value(userID))).
		And(expression.Name(attrStatus).Equal(expression.Value(StatusStreaming)))
}

// unclaimed is the condition of a change to the user's running reply that
// no job has claimed yet.
func (d *Dynamo) unclaimed(userID string) expression.ConditionBuilder {
	return d.running(userID).And(expression.AttributeNotExists(expression.Name(attrClaimed)))
}

// updateReply updates a live record under cond and returns it as it is
// after; a failed condition is returned as is (conditionFailed).
func (d *Dynamo) updateReply(ctx context.Context, messageID string, update expression.UpdateBuilder, cond expression.ConditionBuilder) (Reply, error) {
	it, err := d.update(ctx, d.tables.Replies, replyKey(messageID), update, cond, types.ReturnValueAllNew)
	if conditionFailed(err) {
		return Reply{}, err
	}
	if err != nil {
		return Reply{}, wrap("update reply", err)
	}
	return decodeReply(it)
}

// CheckpointReply stores the text and frames a running reply has
// produced so far, so a reader of the conversation sees it grow. It
// never brings back a message deleted meanwhile (ErrNotFound).
func (d *Dynamo) CheckpointReply(ctx context.Context, conversationID, messageID, text string, frames []Frame) error {
	var r rules
	r.field("text", text, maxTextBytes)
	if err := r.err(); err != nil {
		return err
	}
	update := expression.Set(expression.Name(attrText), expression.Value(text)).
		Set(expression.Name(attrFrames), expression.Value(frames))
	_, err := d.update(ctx, d.tables.Messages, messageKey(conversationID, messageID), update,
		exists(manifest.AttrMessageID).And(expression.Name(attrStatus).Equal(expression.Value(StatusStreaming))), types.ReturnValueNone)
	if conditionFailed(err) {
		return ErrNotFound
	}
	if err != nil {
		return wrap("checkpoint reply", err)
	}
	return nil
}

func messageKey(conversationID, messageID string) item {
	return item{manifest.AttrConversationID: attrS(conversationID), manifest.AttrMessageID: attrS(messageID)}
}

// GetMessage reads one of the user's messages.
func (d *Dynamo) GetMessage(ctx context.Context, userID, conversationID, messageID string) (Message, error) {
	if !findable(userID, conversationID, messageID) {
		return Message{}, ErrNotFound
	}
	it, err := d.getOne(ctx, d.tables.Messages, messageKey(conversationID, messageID), "get message")
	if err != nil {
		return Message{}, err
	}
	m, err := decodeMessage(it)
	if err == nil && m.UserID != wire(userID) {
		return Message{}, ErrNotFound
	}
	return m, err
}

// Finish is everything FinishReply writes.
type Finish struct {
	// Reply is the record as last read: its Version must still hold.
	Reply Reply
	// Message is the assistant message in its final form.
	Message Message
	// Keep is how long the ended reply stays resumable.
	Keep time.Duration
}

// FinishReply stores a reply's end in one transaction: the message, the
// conversation touched, the live record ended, the reply out of the
// running set, the quota counter settled from the reservation to the real
// figure and the usage row. ErrListenersChanged: a listener joined since
// Reply was read (nothing was written; serve it and finish again).
// ErrNotFound: the conversation was deleted meanwhile; then only the
// usage is written (the tokens were spent) and nothing of the
// conversation is left.
func (d *Dynamo) FinishReply(ctx context.Context, f Finish) error {
	m, r := f.Message, f.Reply
	if err := checkMessage(m); err != nil {
		return err
	}
	var tx txn
	stored := tx.add(putItem(d.tables.Messages, messageItem(m), exists(manifest.AttrMessageID)))
	touched := tx.add(updateItem(d.tables.Conversations, conversationKey(m.UserID, m.ConversationID),
		expression.Set(expression.Name(manifest.AttrUpdatedAt), expression.Value(fixedTime(m.CreatedAt))), exists(manifest.AttrConversationID)))
	ended := tx.add(updateItem(d.tables.Replies, replyKey(r.MessageID),
		expression.Set(expression.Name(attrStatus), expression.Value(m.Status)).
			Set(expression.Name(manifest.AttrExpiresAt), expression.Value(m.CreatedAt.Add(f.Keep).Unix())),
		exists(manifest.AttrMessageID).And(expression.Name(attrVersion).Equal(expression.Value(r.Version)))))
	d.settle(&tx, r, m.Model, m.Usage)
	failed, err := d.transact(ctx, "finish reply", &tx)
	if err != nil || failed == nil {
		return err
	}
	switch {
	case failed[stored] || failed[touched]:
		// Deleted with its conversation: settle the tokens alone.
		return d.settleOnly(ctx, r, m.Model, m.Usage)
	case failed[ended]:
		if _, err := d.GetReply(ctx, r.MessageID); errors.Is(err, ErrNotFound) {
			return d.settleOnly(ctx, r, m.Model, m.Usage)
		}
		return ErrListenersChanged
	}
	// The running entry was given back already: this reply was settled.
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
// settled once), and count usage u of model.
func (d *Dynamo) settle(tx *txn, r Reply, model string, u tokens.Usage) {
	entry := &types.AttributeValueMemberSS{Value: []string{r.LiveEntry}}
	tx.add(updateItem(d.tables.Usage, usageKey(r.UserID, liveKey),
		expression.Delete(expression.Name(attrReplies), expression.Value(entry)),
		expression.Contains(expression.Name(attrReplies), r.LiveEntry)))
	tx.add(updateItem(d.tables.Usage, usageKey(r.UserID, quotaKey(r.Day)),
		expression.Add(expression.Name(attrTokens), expression.Value(u.Total()-r.Reserved)).
			Add(expression.Name(attrReserved), expression.Value(-r.Reserved)), noCondition))
	if u.Total() > 0 {
		tx.add(d.usageRow(r, model, u))
	}
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

// FailUnstarted fails a reply whose job never ran (Lambda gave up on the
// invocation): its message and record say failed with code, and its
// reservation and running entry are given back. ErrClaimed: the job did
// run (it settles itself); ErrNotFound: the reply is gone.
func (d *Dynamo) FailUnstarted(ctx context.Context, r Reply, code string) error {
	if !findable(r.MessageID, r.UserID, r.ConversationID) {
		return ErrNotFound
	}
	failedStatus := expression.Set(expression.Name(attrStatus), expression.Value(StatusFailed))
	var tx txn
	record := tx.add(updateItem(d.tables.Replies, replyKey(r.MessageID), failedStatus, d.unclaimed(r.UserID)))
	d.settle(&tx, r, "", tokens.Usage{})
	msg := tx.add(updateItem(d.tables.Messages, messageKey(r.ConversationID, r.MessageID),
		failedStatus.Set(expression.Name(attrErrorCode), expression.Value(code)), exists(manifest.AttrMessageID)))
	failed, err := d.transact(ctx, "fail reply", &tx)
	if err != nil || failed == nil {
		return err
	}
	switch {
	case failed[record]:
		if _, err := d.GetReply(ctx, r.MessageID); err != nil {
			return err
		}
		return ErrClaimed
	case failed[msg]:
		// The conversation was deleted: give back what was taken all the
		// same (the message is the last item).
		tx.items = tx.items[:msg]
		_, err := d.transact(ctx, "fail reply", &tx)
		return err
	}
	return ErrClaimed
}

// MarkFailed sets a reply's message and record to failed with code: the
// last resort when its finish could not be stored. Best effort by nature.
func (d *Dynamo) MarkFailed(ctx context.Context, r Reply, code string) error {
	failedStatus := expression.Set(expression.Name(attrStatus), expression.Value(StatusFailed))
	var tx txn
	tx.add(updateItem(d.tables.Messages, messageKey(r.ConversationID, r.MessageID),
		failedStatus.Set(expression.Name(attrErrorCode), expression.Value(code)), exists(manifest.AttrMessageID)))
	tx.add(updateItem(d.tables.Replies, replyKey(r.MessageID), failedStatus, exists(manifest.AttrMessageID)))
	_, err := d.transact(ctx, "mark reply failed", &tx)
	return err
}

// replyRecord is a reply's live record as stored: its listeners a map by
// key (Listener.key), so that AddListener sets one in place.
type replyRecord struct {
	Reply
	// Always a map, possibly empty: AddListener sets one of its keys,
	// which needs the map to exist.
	Listeners map[string]listenerRecord `dynamodbav:"listeners"`
}

type listenerRecord struct {
	ConnectionID string    `dynamodbav:"c"`
	RequestID    string    `dynamodbav:"r,omitempty"`
	AfterSeq     int       `dynamodbav:"a"`
	Joined       fixedTime `dynamodbav:"j"`
}

// replyItem is a reply's record as it starts: streaming unless told
// otherwise, and no listeners yet.
func replyItem(r Reply) item {
	r.Status = cmp.Or(r.Status, StatusStreaming)
	return marshal(replyRecord{Reply: r, Listeners: map[string]listenerRecord{}})
}

func decodeReply(it item) (Reply, error) {
	rec, err := unmarshal[replyRecord](it)
	if err != nil {
		return Reply{}, err
	}
	keys := slices.Collect(maps.Keys(rec.Listeners))
	// In the order they joined; the key breaks ties so the order is total.
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(time.Time(rec.Listeners[a].Joined).Compare(time.Time(rec.Listeners[b].Joined)), strings.Compare(a, b))
	})
	r := rec.Reply
	r.Listeners = make([]Listener, len(keys))
	for i, k := range keys {
		l := rec.Listeners[k]
		r.Listeners[i] = Listener{ConnectionID: l.ConnectionID, RequestID: l.RequestID, AfterSeq: l.AfterSeq}
	}
	r.ExpiresAt = r.ExpiresAt.UTC()
	return r, nil
}
