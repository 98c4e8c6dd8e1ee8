package store

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/p2/buddy/lambda/manifest"
)

// The reply path's writes. A reply has two items: its assistant message in
// the messages table (what GET /conversations/{id} shows, status and all)
// and its live record in the replies table, keyed by the message id alone
// because stop and resume carry nothing else. Every step that changes more
// than one item is one TransactWriteItems, so that no failure leaves them
// disagreeing:
//
//   - AcceptMessage: the conversation (created or touched, and marked
//     replying so that no second message follows a reply still
//     streaming), the user's message, the assistant message (status
//     streaming), the live record, the reservation on the day's quota
//     counter (an upper bound of the request's input plus its max tokens)
//     and the reply's entry in the user's set of running replies (the
//     in-flight cap), with a saved prompt named by the request checked in
//     passing. One round trip on the path to the first token.
//   - ClaimReply: the job marks the live record claimed, so a second
//     delivery of the same job does nothing, and checks that the
//     conversation is the job's user's.
//   - FinishReply (settle.go): the assistant message in its final form,
//     the usage row, the quota counter settled from the reservation to the
//     real figure, the entry out of the running set, the conversation's
//     mark cleared and the live record ended.
//   - FailUnstarted (settle.go): a job that never ran is failed and its
//     reservation and running entry given back.
//
// What a reply took (its reservation and running entry) is given back
// exactly once: every give-back is conditional on the entry still being in
// the running set, and removes it.
var (
	// ErrRateLimited: the user has as many replies running as allowed, or
	// a reply has as many listeners as it keeps.
	ErrRateLimited = errors.New("store: too many running")
	// ErrClaimed: the reply was already claimed (a second delivery of its
	// job) or has ended.
	ErrClaimed = errors.New("store: reply already claimed")
	// ErrEnded: the reply is no longer running.
	ErrEnded = errors.New("store: reply has ended")
	// ErrPromptTooLarge is wrapped by PromptSizeError.
	ErrPromptTooLarge = errors.New("store: the saved prompt is larger than its allowance")
	// ErrListening: the connection follows the reply already (a resume
	// from it changes nothing).
	ErrListening = errors.New("store: connection follows the reply already")
	// ErrReplyRunning: the conversation has a reply still streaming, which
	// a new message would follow.
	ErrReplyRunning = errors.New("store: a reply is still streaming in the conversation")
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

// MaxListeners bounds the connections following a reply besides the one
// that asked for it (a connection counts once however often it resumes;
// one that is gone is dropped by the reply's job), so its record and its
// posts stay bounded whatever clients send.
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
	attrReserved  = "reserved"
	attrReplies   = "replies"
	attrErrorCode = "errorCode"
	attrModel     = "model"
	attrReplying  = "replying"
	attrUntil     = "replyingUntil"
	attrInput     = "inputBytes"

	attrAttachments = "attachments"
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

// listenerKey names a connection in its reply's record: a connection
// listens once, whatever it sends. Encoded so that no id can be read as a
// document path (dots, brackets).
func listenerKey(connectionID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(connectionID))
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
	// must exist (ErrPromptNotFound otherwise) and, when PromptAllowance
	// is set, be at most that many bytes (a *PromptSizeError otherwise):
	// the reservation counted no more for it.
	CheckPromptID   string
	PromptAllowance int64
	UserMessage     Message
	// Assistant is the reply's message as it starts (status streaming).
	Assistant Message
	Reply     Reply
	// DailyLimit is the day's token limit (0: none): the request is
	// admitted only when the day's counter (used plus reserved) leaves
	// room for Reply.Reserved. MaxInflight is the running replies a user
	// may have.
	DailyLimit  int64
	MaxInflight int
	// ReplyingUntil is when the conversation's replying mark lapses, should
	// the reply's job die without clearing it.
	ReplyingUntil time.Time
}

// attachments are the upload ids the user's message carries.
func (a Acceptance) attachments() []string {
	ids := make([]string, len(a.UserMessage.Attachments))
	for i, at := range a.UserMessage.Attachments {
		ids[i] = at.ID
	}
	return ids
}

// AcceptMessage stores a request and its reply's start in one transaction.
// Errors: ErrNotFound (the conversation is not the user's or is gone),
// ErrReplyRunning (a reply is still streaming in it), ErrPromptNotFound,
// ErrQuotaExceeded (the day's counter leaves no room for the reservation),
// ErrRateLimited (as many replies running as allowed), ErrExists (an id
// collision), ErrContention (the user's own concurrent writes kept
// meeting this one), and for an upload the message carries: ErrNotFound,
// ErrNotReady, ErrAttached (to another conversation), each naming it.
func (d *Dynamo) AcceptMessage(ctx context.Context, a Acceptance) error {
	if err := checkAcceptance(a); err != nil {
		return err
	}
	if a.DailyLimit > 0 && a.Reply.Reserved > a.DailyLimit {
		return ErrQuotaExceeded
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
			c, err := d.GetConversation(ctx, a.Conversation.UserID, a.Conversation.ConversationID)
			if err != nil {
				return err
			}
			if c.Replying != "" {
				return ErrReplyRunning
			}
			return ErrNotFound
		case failed[at.user], failed[at.assistant], failed[at.live]:
			return ErrExists
		case a.CheckPromptID != "" && failed[at.prompt]:
			p, err := d.GetPrompt(ctx, a.Conversation.UserID, a.CheckPromptID)
			switch {
			case errors.Is(err, ErrNotFound):
				return ErrPromptNotFound
			case err != nil:
				return err
			}
			return &PromptSizeError{Bytes: int64(len(p.Text))}
		}
		for i, id := range a.attachments() {
			if failed[at.uploads+i] {
				return d.whyNotAttached(ctx, a.Conversation.UserID, a.Conversation.ConversationID, id)
			}
		}
		// The day's room or the running set is short. Replies whose jobs
		// died without settling still hold theirs until their entries
		// lapse; those are given back before one retry.
		refusal := ErrRateLimited
		if failed[at.quota] {
			refusal = ErrQuotaExceeded
		}
		if attempt > 0 {
			return refusal
		}
		if reclaimed, err := d.reclaimLapsed(ctx, a.Reply.UserID); err != nil || !reclaimed {
			return cmp.Or(err, refusal)
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
	for _, id := range a.attachments() {
		if !findable(id) {
			return fmt.Errorf("%w: upload %q", ErrNotFound, id)
		}
	}
	return errors.Join(checkMessage(a.UserMessage), checkMessage(a.Assistant), checkReserve(a.Reply.UserID, a.Reply.Day))
}

// accepted names the items of AcceptMessage's transaction by position.
type accepted struct {
	conversation, user, assistant, live, quota, running int
	// prompt is the saved prompt's check, when the request named one.
	prompt int
	// uploads is the first of the attached uploads' items, in order.
	uploads int
}

// acceptTxn is AcceptMessage's transaction: the conversation, the user's
// message, the assistant message, the live record, the quota counter, the
// running set and, when the request named one, the prompt check.
func (d *Dynamo) acceptTxn(a Acceptance) (txn, accepted) {
	var tx txn
	var at accepted
	c := a.Conversation
	c.Replying, c.ReplyingUntil = a.Reply.MessageID, a.ReplyingUntil.Unix()
	if a.New {
		at.conversation = tx.add(putItem(d.tables.Conversations, conversationItem(c), notExists(manifest.AttrConversationID)))
	} else {
		update := expression.Set(expression.Name(manifest.AttrUpdatedAt), expression.Value(fixedTime(c.UpdatedAt))).
			Set(expression.Name(attrReplying), expression.Value(c.Replying)).
			Set(expression.Name(attrUntil), expression.Value(c.ReplyingUntil))
		if c.PromptID != "" {
			update = update.Set(expression.Name(manifest.AttrPromptID), expression.Value(c.PromptID))
		}
		if c.Model != "" {
			update = update.Set(expression.Name(attrModel), expression.Value(c.Model))
		}
		// No message may follow a reply still streaming; a mark whose job
		// died lapses.
		idle := expression.AttributeNotExists(expression.Name(attrUntil)).
			Or(expression.Name(attrUntil).LessThanEqual(expression.Value(d.now().Unix())))
		at.conversation = tx.add(updateItem(d.tables.Conversations, conversationKey(c.UserID, c.ConversationID), update,
			exists(manifest.AttrConversationID).And(idle)))
	}
	newMessage := notExists(manifest.AttrMessageID)
	at.user = tx.add(putItem(d.tables.Messages, messageItem(a.UserMessage), newMessage))
	at.assistant = tx.add(putItem(d.tables.Messages, messageItem(a.Assistant), newMessage))
	at.live = tx.add(putItem(d.tables.Replies, replyItem(a.Reply), newMessage))
	// tokens is the day's committed total: what replies used plus what
	// running ones reserved. A request is admitted only when its own
	// reservation fits beside it, so however many arrive at once the
	// committed total stays within the limit.
	reserve := expression.Add(expression.Name(attrTokens), expression.Value(a.Reply.Reserved)).
		Add(expression.Name(attrReserved), expression.Value(a.Reply.Reserved)).
		Add(expression.Name(attrRequests), expression.Value(1))
	var below expression.ConditionBuilder
	if a.DailyLimit > 0 {
		below = roomFor(a.DailyLimit, a.Reply.Reserved)
	}
	at.quota = tx.add(updateItem(d.tables.Usage, usageKey(a.Reply.UserID, quotaKey(a.Reply.Day)), reserve, below))
	room := expression.AttributeNotExists(expression.Name(attrReplies)).Or(expression.Size(expression.Name(attrReplies)).LessThan(expression.Value(a.MaxInflight)))
	at.running = tx.add(updateItem(d.tables.Usage, usageKey(a.Reply.UserID, liveKey),
		expression.Add(expression.Name(attrReplies), expression.Value(&types.AttributeValueMemberSS{Value: []string{a.Reply.LiveEntry}})), room))
	if a.CheckPromptID != "" {
		cond := exists(manifest.AttrPromptID)
		if a.PromptAllowance > 0 {
			cond = cond.And(expression.AttributeNotExists(expression.Name(attrText)).
				Or(expression.Size(expression.Name(attrText)).LessThanEqual(expression.Value(a.PromptAllowance))))
		}
		at.prompt = tx.add(conditionCheck(d.tables.Prompts, promptKey(a.Conversation.UserID, a.CheckPromptID), cond))
	}
	at.uploads = len(tx.items)
	for _, id := range a.attachments() {
		tx.add(d.attachUpload(a.Conversation.UserID, c.ConversationID, id))
	}
	return tx, at
}

// roomFor is the condition of a quota counter with room for n more tokens
// within limit (n ≤ limit).
func roomFor(limit, n int64) expression.ConditionBuilder {
	return expression.AttributeNotExists(expression.Name(attrTokens)).
		Or(expression.Name(attrTokens).LessThanEqual(expression.Value(limit - n)))
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

// AddListener registers l's connection to follow the user's running reply
// and returns the record with it. A connection follows a reply once: a
// resume from one that does already (or that asked for the reply) changes
// nothing and answers ErrListening. ErrNotFound: no such reply of the
// user's; ErrEnded (with the record): it is no longer running;
// ErrRateLimited: MaxListeners connections follow it already.
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
	slot := expression.Name(attrListeners + "." + listenerKey(l.ConnectionID))
	update := expression.Set(slot, expression.Value(listenerRecord{ConnectionID: l.ConnectionID, RequestID: l.RequestID, AfterSeq: l.AfterSeq, Joined: fixedTime(d.now())}))
	cond := d.running(userID).
		And(expression.AttributeNotExists(slot)).
		And(expression.Name(manifest.AttrConnectionID).NotEqual(expression.Value(l.ConnectionID))).
		And(expression.Size(expression.Name(attrListeners)).LessThan(expression.Value(MaxListeners)))
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
	case rec.ConnectionID == l.ConnectionID || slices.ContainsFunc(rec.Listeners, func(x Listener) bool { return x.ConnectionID == l.ConnectionID }):
		return rec, ErrListening
	}
	return rec, ErrRateLimited
}

// RemoveListeners forgets connections that no longer follow a reply (its
// job found them gone), so that their places can be taken again.
func (d *Dynamo) RemoveListeners(ctx context.Context, messageID string, connectionIDs ...string) error {
	if len(connectionIDs) == 0 || !findable(messageID) {
		return nil
	}
	var update expression.UpdateBuilder
	for _, c := range connectionIDs {
		update = update.Remove(expression.Name(attrListeners + "." + listenerKey(c)))
	}
	_, err := d.update(ctx, d.tables.Replies, replyKey(messageID), update, exists(manifest.AttrMessageID), types.ReturnValueNone)
	if err != nil && !conditionFailed(err) {
		return wrap("remove listeners", err)
	}
	return nil
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

// replyRecord is a reply's live record as stored: its listeners a map by
// connection (listenerKey), so that AddListener sets one in place.
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

// PromptSizeError: the saved prompt an acceptance named is larger than
// its allowance; Bytes is its size, to accept again with.
type PromptSizeError struct{ Bytes int64 }

func (e *PromptSizeError) Error() string {
	return fmt.Sprintf("store: the saved prompt has %d bytes, more than its allowance", e.Bytes)
}

func (e *PromptSizeError) Unwrap() error { return ErrPromptTooLarge }
