package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/manifest"
)

// DynamoAPI is the part of *dynamodb.Client the store uses, so a wrapped
// client (fault injection, metrics) fits as well as the real one.
type DynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

var _ DynamoAPI = (*dynamodb.Client)(nil)

// Dynamo is the Store on DynamoDB. Every write is a single-item put or
// update, conditional where existence matters, or a batch of deletes that
// can be repeated; except creating and deleting a prompt, which change the
// user's prompt counter in the same transaction (promptcount.go), so that
// the per-user limit holds under concurrent creates.
//
// Layout choices a reader of the tables needs:
//   - Times are fixed-width UTC strings (timeLayout), so string order is
//     time order for the byUpdatedAt index; expiresAt alone is epoch
//     seconds, the format TTL reads. TTL deletes late, so reads check it.
//   - Empty strings and zero counters are not stored.
//   - A usage row is keyed "<day>#<model>" and holds the four token
//     counters; "<day>#" is the quota counter with tokens (the day's
//     total) and requests (admissions). Day and model are read back from
//     the key, so no other copy of them can disagree.
//   - A cursor is base64url JSON of the key where its page ended, checked
//     against the caller before use (rules.go).
//   - The prompts table holds, beside a user's prompts, their prompt
//     counter under the sort key promptCounterKey.
type Dynamo struct {
	api    DynamoAPI
	tables config.Tables
	// Now is the clock for expiry checks; time.Now when nil.
	Now func() time.Time
	// pause waits between BatchWriteItem retries; tests skip the wait.
	pause func(ctx context.Context, d time.Duration) error
}

var _ Store = (*Dynamo)(nil)

// batchAttempts bounds BatchWriteItem calls for one batch; with
// batchBackoff doubling up to a second the whole retry takes a few seconds
// at worst, inside any Lambda timeout.
const (
	batchAttempts = 8
	batchBackoff  = 25 * time.Millisecond
	batchMaxPause = time.Second
	batchSize     = 25 // BatchWriteItem's limit
)

// NewDynamo keeps the data in tables through api, in AWS a *dynamodb.Client.
func NewDynamo(api DynamoAPI, tables config.Tables) *Dynamo {
	return &Dynamo{api: api, tables: tables, pause: sleep}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (d *Dynamo) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func conditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

func wrap(op string, err error) error { return fmt.Errorf("store: %s: %w", op, err) }

// setOrRemove sets attr to v, or removes it when v is empty: empty strings
// are not stored.
func setOrRemove(update expression.UpdateBuilder, attr, v string) expression.UpdateBuilder {
	if v == "" {
		return update.Remove(expression.Name(attr))
	}
	return update.Set(expression.Name(attr), expression.Value(v))
}

// keyEquals is the key condition of a query for one partition.
func keyEquals(attr, v string) expression.KeyConditionBuilder {
	return expression.Key(attr).Equal(expression.Value(v))
}

func (d *Dynamo) PutConnection(ctx context.Context, c Connection) error {
	if err := checkConnection(c); err != nil {
		return err
	}
	if err := d.put(ctx, d.tables.Connections, connectionItem(c), noCondition); err != nil {
		return wrap("put connection", err)
	}
	return nil
}

func (d *Dynamo) GetConnection(ctx context.Context, connectionID string) (Connection, error) {
	if !findable(connectionID) {
		return Connection{}, ErrNotFound
	}
	// Consistent: $connect wrote it a moment ago.
	it, err := d.getOne(ctx, d.tables.Connections, item{manifest.AttrConnectionID: attrS(connectionID)}, "get connection")
	if err != nil {
		return Connection{}, err
	}
	c, err := decodeConnection(it)
	if err != nil {
		return Connection{}, err
	}
	if !d.now().Before(c.ExpiresAt) {
		return Connection{}, ErrNotFound
	}
	return c, nil
}

func (d *Dynamo) DeleteConnection(ctx context.Context, connectionID string) error {
	if !findable(connectionID) {
		return nil
	}
	if err := d.del(ctx, d.tables.Connections, item{manifest.AttrConnectionID: attrS(connectionID)}, noCondition); err != nil {
		return wrap("delete connection", err)
	}
	return nil
}

func conversationKey(userID, conversationID string) item {
	return item{manifest.AttrUserID: attrS(userID), manifest.AttrConversationID: attrS(conversationID)}
}

func (d *Dynamo) CreateConversation(ctx context.Context, c Conversation) error {
	if err := checkConversation(c); err != nil {
		return err
	}
	return d.putNew(ctx, d.tables.Conversations, conversationItem(c), manifest.AttrConversationID, "create conversation")
}

// putNew writes an item that must not exist yet (ErrExists otherwise).
func (d *Dynamo) putNew(ctx context.Context, table string, it item, keyAttr, what string) error {
	err := d.put(ctx, table, it, notExists(keyAttr))
	if conditionFailed(err) {
		return ErrExists
	}
	if err != nil {
		return wrap(what, err)
	}
	return nil
}

// getOne reads one item consistently; ErrNotFound when it is absent.
func (d *Dynamo) getOne(ctx context.Context, table string, key item, what string) (item, error) {
	out, err := d.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &table,
		Key:            key,
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, wrap(what, err)
	}
	if out.Item == nil {
		return nil, ErrNotFound
	}
	return out.Item, nil
}

func (d *Dynamo) GetConversation(ctx context.Context, userID, conversationID string) (Conversation, error) {
	if !findable(userID, conversationID) {
		return Conversation{}, ErrNotFound
	}
	it, err := d.getOne(ctx, d.tables.Conversations, conversationKey(userID, conversationID), "get conversation")
	if err != nil {
		return Conversation{}, err
	}
	return decodeConversation(it)
}

func (d *Dynamo) ListConversations(ctx context.Context, userID string, limit int, cur string) (Page[Conversation], error) {
	expr, err := expression.NewBuilder().WithKeyCondition(keyEquals(manifest.AttrUserID, userID)).Build()
	if err != nil {
		return Page[Conversation]{}, wrap("list conversations", err)
	}
	in := &dynamodb.QueryInput{
		TableName:                 &d.tables.Conversations,
		IndexName:                 aws.String(manifest.IndexConversationsByUpdated),
		KeyConditionExpression:    expr.KeyCondition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		ScanIndexForward:          aws.Bool(false),
	}
	if cur != "" {
		c, err := parseConversationCursor(cur, userID)
		if err != nil {
			return Page[Conversation]{}, err
		}
		in.ExclusiveStartKey = item{
			manifest.AttrUserID:         attrS(c.UserID),
			manifest.AttrConversationID: attrS(c.ConversationID),
			manifest.AttrUpdatedAt:      attrS(c.UpdatedAt),
		}
	}
	if !findable(userID) {
		return Page[Conversation]{}, nil
	}
	// Read one more than the page: whether it exists decides whether there
	// is a next page, so the last page never carries a cursor to nothing
	// (DynamoDB's own LastEvaluatedKey does whenever a page ends exactly).
	n := pageSize(limit, defaultConversationPage, MaxConversationPage)
	var items []Conversation
	for {
		in.Limit = aws.Int32(int32(n + 1 - len(items)))
		out, err := d.api.Query(ctx, in)
		if err != nil {
			return Page[Conversation]{}, wrap("list conversations", err)
		}
		for _, it := range out.Items {
			c, err := decodeConversation(it)
			if err != nil {
				return Page[Conversation]{}, err
			}
			items = append(items, c)
		}
		if len(items) > n || out.LastEvaluatedKey == nil {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return pageOf(items, n), nil
}

// pageOf cuts up to n+1 listed conversations into a page.
func pageOf(items []Conversation, n int) Page[Conversation] {
	if len(items) <= n {
		return Page[Conversation]{Items: items}
	}
	return Page[Conversation]{Items: items[:n], Next: conversationCursorAfter(items[n-1])}
}

func (d *Dynamo) RenameConversation(ctx context.Context, userID, conversationID, title string, at time.Time) (Conversation, error) {
	if !findable(userID, conversationID) {
		return Conversation{}, ErrNotFound
	}
	if err := checkRename(title, at); err != nil {
		return Conversation{}, err
	}
	update := expression.Set(expression.Name(manifest.AttrUpdatedAt), expression.Value(fixedTime(at)))
	update = setOrRemove(update, attrTitle, title)
	it, err := d.update(ctx, d.tables.Conversations, conversationKey(userID, conversationID), update, exists(manifest.AttrConversationID), types.ReturnValueAllNew)
	if conditionFailed(err) {
		return Conversation{}, ErrNotFound
	}
	if err != nil {
		return Conversation{}, wrap("rename conversation", err)
	}
	return decodeConversation(it)
}

func (d *Dynamo) TouchConversation(ctx context.Context, userID, conversationID, promptID string, at time.Time) error {
	if !findable(userID, conversationID) {
		return ErrNotFound
	}
	var r rules
	r.field("prompt id", promptID, maxIDBytes)
	r.time("updatedAt", at)
	if err := r.err(); err != nil {
		return err
	}
	update := expression.Set(expression.Name(manifest.AttrUpdatedAt), expression.Value(fixedTime(at)))
	if promptID != "" {
		update = update.Set(expression.Name(manifest.AttrPromptID), expression.Value(promptID))
	}
	_, err := d.update(ctx, d.tables.Conversations, conversationKey(userID, conversationID), update, exists(manifest.AttrConversationID), types.ReturnValueNone)
	if conditionFailed(err) {
		return ErrNotFound
	}
	if err != nil {
		return wrap("touch conversation", err)
	}
	return nil
}

// DeleteConversation deletes the conversation first, so it is unreachable
// at once, then its messages. When the sweep fails half way the leftovers
// are unreachable (every read goes through GetConversation), and a retried
// delete, though it answers ErrNotFound, sweeps them again.
func (d *Dynamo) DeleteConversation(ctx context.Context, userID, conversationID string) error {
	if !findable(userID, conversationID) {
		return ErrNotFound
	}
	err := d.del(ctx, d.tables.Conversations, conversationKey(userID, conversationID), exists(manifest.AttrConversationID))
	gone := conditionFailed(err)
	if err != nil && !gone {
		return wrap("delete conversation", err)
	}
	// Deleting a running reply's record also stops it: its job finds the
	// record gone at its next look.
	if err := d.deleteMessages(ctx, userID, conversationID); err != nil {
		return err
	}
	if gone {
		return ErrNotFound
	}
	return nil
}

// deleteMessages removes the user's messages of a conversation, one query
// page at a time so memory stays flat for long conversations.
func (d *Dynamo) deleteMessages(ctx context.Context, userID, conversationID string) error {
	return d.ownMessageKeys(ctx, userID, conversationID, "list messages to delete", func(keys []item, uploads []string) error {
		// Upload records go first: their objects are gone already
		// (ConversationUploads), and a record without its messages
		// would be an attachment nobody can delete.
		if err := d.deleteUploads(ctx, userID, uploads); err != nil {
			return err
		}
		for chunk := range slices.Chunk(keys, batchSize) {
			replies := make([]item, len(chunk))
			for i, k := range chunk {
				replies[i] = replyKey(k[manifest.AttrMessageID].(*types.AttributeValueMemberS).Value)
			}
			if err := d.batchDelete(ctx, d.tables.Replies, replies); err != nil {
				return err
			}
			if err := d.batchDelete(ctx, d.tables.Messages, chunk); err != nil {
				return err
			}
		}
		return nil
	})
}

// ConversationUploads lists the uploads the user's messages of a
// conversation carry, so that their objects can be deleted before the
// conversation is (DeleteConversation deletes their records).
func (d *Dynamo) ConversationUploads(ctx context.Context, userID, conversationID string) ([]string, error) {
	if !findable(userID, conversationID) {
		return nil, nil
	}
	var out []string
	err := d.ownMessageKeys(ctx, userID, conversationID, "list attachments", func(_ []item, uploads []string) error {
		out = append(out, uploads...)
		return nil
	})
	return out, err
}

// ownMessageKeys pages through the keys of the user's messages of a
// conversation and the uploads they carry, one query page at a time so
// memory stays flat for long conversations.
func (d *Dynamo) ownMessageKeys(ctx context.Context, userID, conversationID, what string, each func(keys []item, uploads []string) error) error {
	expr, err := expression.NewBuilder().
		WithKeyCondition(keyEquals(manifest.AttrConversationID, conversationID)).
		WithProjection(expression.NamesList(expression.Name(manifest.AttrConversationID), expression.Name(manifest.AttrMessageID),
			expression.Name(manifest.AttrUserID), expression.Name(attrAttachments))).
		Build()
	if err != nil {
		return wrap(what, err)
	}
	in := &dynamodb.QueryInput{
		TableName:                 &d.tables.Messages,
		KeyConditionExpression:    expr.KeyCondition(),
		ProjectionExpression:      expr.Projection(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		ConsistentRead:            aws.Bool(true),
	}
	return d.queryPages(ctx, in, what, func(items []item) error {
		var keys []item
		var uploads []string
		for _, it := range items {
			// Ids are made by the server and never reused, but a message
			// of another user is never this caller's to delete.
			if owner, _ := it[manifest.AttrUserID].(*types.AttributeValueMemberS); owner == nil || owner.Value != wire(userID) {
				continue
			}
			keys = append(keys, item{manifest.AttrConversationID: it[manifest.AttrConversationID], manifest.AttrMessageID: it[manifest.AttrMessageID]})
			var carried struct {
				Attachments []Attachment `dynamodbav:"attachments"`
			}
			if err := attributevalue.UnmarshalMap(it, &carried); err != nil {
				return wrap(what, err)
			}
			for _, a := range carried.Attachments {
				uploads = append(uploads, a.ID)
			}
		}
		return each(keys, uploads)
	})
}

// queryAll decodes every item a query returns, in order, but for those
// decode says are not a T (ok false).
func queryAll[T any](ctx context.Context, d *Dynamo, in *dynamodb.QueryInput, what string, decode func(item) (v T, ok bool, err error)) ([]T, error) {
	var all []T
	err := d.queryPages(ctx, in, what, func(items []item) error {
		for _, it := range items {
			v, ok, err := decode(it)
			if err != nil {
				return err
			}
			if ok {
				all = append(all, v)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return all, nil
}

// queryPages runs a query page by page (the SDK's paginator), handing each
// page's items to each.
func (d *Dynamo) queryPages(ctx context.Context, in *dynamodb.QueryInput, what string, each func([]item) error) error {
	pages := dynamodb.NewQueryPaginator(d.api, in)
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return wrap(what, err)
		}
		if err := each(out.Items); err != nil {
			return err
		}
	}
	return nil
}

// batchDelete deletes up to 25 items, retrying what DynamoDB leaves
// unprocessed (throttling) with a doubling pause, a bounded number of times.
func (d *Dynamo) batchDelete(ctx context.Context, table string, keys []item) error {
	reqs := make([]types.WriteRequest, len(keys))
	for i, k := range keys {
		reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: k}}
	}
	pending := map[string][]types.WriteRequest{table: reqs}
	pause := batchBackoff
	for attempt := 1; ; attempt++ {
		out, err := d.api.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
		if err != nil {
			return wrap("delete messages", err)
		}
		pending = out.UnprocessedItems
		if len(pending[table]) == 0 {
			return nil
		}
		if attempt == batchAttempts {
			return wrap("delete messages", fmt.Errorf("%d deletes still unprocessed after %d attempts", len(pending[table]), attempt))
		}
		if err := d.pause(ctx, pause); err != nil {
			return wrap("delete messages", err)
		}
		pause = min(2*pause, batchMaxPause)
	}
}

func (d *Dynamo) PutMessage(ctx context.Context, m Message) error {
	if err := checkMessage(m); err != nil {
		return err
	}
	if err := d.put(ctx, d.tables.Messages, messageItem(m), noCondition); err != nil {
		return wrap("put message", err)
	}
	return nil
}

func (d *Dynamo) ListMessages(ctx context.Context, conversationID string) ([]Message, error) {
	if !findable(conversationID) {
		return nil, nil
	}
	in, err := consistentQuery(d.tables.Messages, keyEquals(manifest.AttrConversationID, conversationID))
	if err != nil {
		return nil, wrap("list messages", err)
	}
	return queryAll(ctx, d, in, "list messages", func(it item) (Message, bool, error) {
		m, err := decodeMessage(it)
		return m, true, err
	})
}

// ListMessagesPage reads newest first, one DynamoDB query page at a time,
// and stops at the first message that does not fit: a page of large
// messages reads at most one query page (1 MB) more than it returns,
// never the whole conversation.
func (d *Dynamo) ListMessagesPage(ctx context.Context, userID, conversationID string, b MessageBound, cur string) (Page[Message], error) {
	if b.Through != "" && !findable(b.Through) {
		return Page[Message]{}, nil
	}
	in, err := d.ownMessagesNewestFirst(userID, conversationID, b.Through)
	if err != nil {
		return Page[Message]{}, err
	}
	if cur != "" {
		c, err := parseMessageCursor(cur, userID, conversationID)
		if err != nil {
			return Page[Message]{}, err
		}
		in.ExclusiveStartKey = item{manifest.AttrConversationID: attrS(c.ConversationID), manifest.AttrMessageID: attrS(c.MessageID)}
	}
	if !findable(userID, conversationID) {
		return Page[Message]{}, nil
	}
	p := newMessagePage(b)
	for {
		// One more than the page can take: whether it exists decides
		// whether there is an older page (as in ListConversations).
		in.Limit = aws.Int32(int32(p.limit + 1 - len(p.items)))
		out, err := d.api.Query(ctx, in)
		if err != nil {
			return Page[Message]{}, wrap("list messages", err)
		}
		for _, it := range out.Items {
			m, err := decodeMessage(it)
			if err != nil {
				return Page[Message]{}, err
			}
			if !p.add(m) {
				return p.page(true), nil
			}
		}
		if out.LastEvaluatedKey == nil {
			return p.page(false), nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// ownMessagesNewestFirst is the query of a conversation's messages, newest
// first (through that message id, when through is set), that only returns
// the user's own: message ids are never reused across users, but a
// message of another user is never this caller's to read.
func (d *Dynamo) ownMessagesNewestFirst(userID, conversationID, through string) (*dynamodb.QueryInput, error) {
	key := keyEquals(manifest.AttrConversationID, conversationID)
	if through != "" {
		key = key.And(expression.Key(manifest.AttrMessageID).LessThanEqual(expression.Value(through)))
	}
	expr, err := expression.NewBuilder().
		WithKeyCondition(key).
		WithFilter(expression.Name(manifest.AttrUserID).Equal(expression.Value(userID))).
		Build()
	if err != nil {
		return nil, wrap("list messages", err)
	}
	return &dynamodb.QueryInput{
		TableName:                 &d.tables.Messages,
		KeyConditionExpression:    expr.KeyCondition(),
		FilterExpression:          expr.Filter(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		ScanIndexForward:          aws.Bool(false),
		// The reply's history must include the user message stored just
		// before it, and a client reading after a reply's end must see it.
		ConsistentRead: aws.Bool(true),
	}, nil
}

// messagePage collects a page of messages, newest first, within a bound.
type messagePage struct {
	limit int
	bytes int // 0: no byte bound
	size  func(Message) int
	items []Message
	used  int
}

func newMessagePage(b MessageBound) *messagePage {
	size := b.Size
	if size == nil {
		size = func(m Message) int { return len(m.Text) }
	}
	return &messagePage{limit: pageSize(b.Limit, defaultMessagePage, MaxMessagePage), bytes: b.Bytes, size: size}
}

// add takes m, the next older message, when it fits; false means the page
// is full and m starts the next one.
func (p *messagePage) add(m Message) bool {
	if len(p.items) == p.limit {
		return false
	}
	n := p.size(m)
	if len(p.items) > 0 && p.bytes > 0 && p.used+n > p.bytes {
		return false
	}
	p.items = append(p.items, m)
	p.used += n
	return true
}

// page is what was collected, oldest first, with a cursor to the older
// messages when there are more.
func (p *messagePage) page(more bool) Page[Message] {
	slices.Reverse(p.items)
	if !more || len(p.items) == 0 {
		return Page[Message]{Items: p.items}
	}
	return Page[Message]{Items: p.items, Next: messageCursorBefore(p.items[0])}
}

func promptKey(userID, promptID string) item {
	return item{manifest.AttrUserID: attrS(userID), manifest.AttrPromptID: attrS(promptID)}
}

func (d *Dynamo) GetPrompt(ctx context.Context, userID, promptID string) (Prompt, error) {
	if !promptFindable(userID, promptID) {
		return Prompt{}, ErrNotFound
	}
	it, err := d.getOne(ctx, d.tables.Prompts, promptKey(userID, promptID), "get prompt")
	if err != nil {
		return Prompt{}, err
	}
	return decodePrompt(it)
}

// ListPrompts is in key order, which is creation order because prompt ids
// are time-ordered (lambda/ids). The user's prompt counter, in the same
// partition, is left out.
func (d *Dynamo) ListPrompts(ctx context.Context, userID string) ([]Prompt, error) {
	if !findable(userID) {
		return nil, nil
	}
	in, err := consistentQuery(d.tables.Prompts, keyEquals(manifest.AttrUserID, userID))
	if err != nil {
		return nil, wrap("list prompts", err)
	}
	return queryAll(ctx, d, in, "list prompts", func(it item) (Prompt, bool, error) {
		if isPromptCounter(it) {
			return Prompt{}, false, nil
		}
		p, err := decodePrompt(it)
		return p, true, err
	})
}

func (d *Dynamo) UpdatePrompt(ctx context.Context, p Prompt) (Prompt, error) {
	if !promptFindable(p.UserID, p.PromptID) {
		return Prompt{}, ErrNotFound
	}
	if err := checkPromptUpdate(p); err != nil {
		return Prompt{}, err
	}
	update := expression.Set(expression.Name(manifest.AttrUpdatedAt), expression.Value(fixedTime(p.UpdatedAt)))
	update = setOrRemove(update, attrName, p.Name)
	update = setOrRemove(update, attrText, p.Text)
	it, err := d.update(ctx, d.tables.Prompts, promptKey(p.UserID, p.PromptID), update, exists(manifest.AttrPromptID), types.ReturnValueAllNew)
	if conditionFailed(err) {
		return Prompt{}, ErrNotFound
	}
	if err != nil {
		return Prompt{}, wrap("update prompt", err)
	}
	return decodePrompt(it)
}

func usageKey(userID, sortKey string) item {
	return item{manifest.AttrUserID: attrS(userID), manifest.AttrUsageKey: attrS(sortKey)}
}

// Today reads the user's quota counter for day: tokens is what the day
// has committed (used plus reserved by running replies).
func (d *Dynamo) Today(ctx context.Context, userID, day string) (used, reserved int64, err error) {
	if err := checkReserve(userID, day); err != nil {
		return 0, 0, err
	}
	it, err := d.getOne(ctx, d.tables.Usage, usageKey(userID, quotaKey(day)), "read quota counter")
	if errors.Is(err, ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	c, err := unmarshal[quotaCounterRecord](it)
	if err != nil {
		return 0, 0, err
	}
	return c.Tokens - c.Reserved, c.Reserved, nil
}

func (d *Dynamo) ListUsage(ctx context.Context, userID, from, to string) ([]UsageRow, error) {
	if err := checkUsageRange(from, to); err != nil {
		return nil, err
	}
	if from > to || !findable(userID) {
		return nil, nil
	}
	// "<to>$" is the smallest string above every "<to>#<model>" ('$'
	// follows '#'), so the range is exact for any model name.
	days := keyEquals(manifest.AttrUserID, userID).And(expression.Key(manifest.AttrUsageKey).Between(expression.Value(from+"#"), expression.Value(to+"$")))
	in, err := consistentQuery(d.tables.Usage, days)
	if err != nil {
		return nil, wrap("list usage", err)
	}
	rows, err := queryAll(ctx, d, in, "list usage", func(it item) (UsageRow, bool, error) {
		r, err := unmarshal[usageRowRecord](it)
		if err != nil {
			return UsageRow{}, false, err
		}
		day, model, ok := splitUsageKey(r.Key) // not ok: the day's quota counter
		return UsageRow{Day: day, Model: model, Usage: r.Usage}, ok, nil
	})
	if err != nil {
		return nil, err
	}
	sortUsage(rows)
	return rows, nil
}

// splitUsageKey splits "<day>#<model>"; the counter "<day>#" is not a row.
func splitUsageKey(k string) (day, model string, ok bool) {
	const n = len("2006-01-02#")
	if len(k) <= n || k[n-1] != '#' {
		return "", "", false
	}
	return k[:n-1], k[n:], true
}

// sortUsage orders by day then model. Key order already is that order; the
// sort makes it independent of how DynamoDB collates.
func sortUsage(rows []UsageRow) {
	slices.SortFunc(rows, func(a, b UsageRow) int {
		return cmp.Or(cmp.Compare(a.Day, b.Day), cmp.Compare(a.Model, b.Model))
	})
}

// consistentQuery is a strongly consistent query of table by a key
// condition: every list the store answers reads its own writes.
func consistentQuery(table string, key expression.KeyConditionBuilder) (*dynamodb.QueryInput, error) {
	expr, err := expression.NewBuilder().WithKeyCondition(key).Build()
	if err != nil {
		return nil, err
	}
	return &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		KeyConditionExpression:    expr.KeyCondition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		ConsistentRead:            aws.Bool(true),
	}, nil
}
