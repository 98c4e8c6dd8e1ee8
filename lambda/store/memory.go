package store

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/p2/buddy/lambda/tokens"
)

// Memory is the Store in memory, for fuzzing and fast handler tests. It
// follows Dynamo in everything a caller can observe: the same validation,
// conditions, cursors, quota rule, and values that come back exactly as
// DynamoDB returns them (times through the stored string form, expiry in
// whole seconds, invalid UTF-8 replaced as the SDK's encoder does). The
// conformance suite runs against both.
//
// The one difference: conversations updated at the same instant are listed
// by descending id here, while DynamoDB leaves their order unspecified.
type Memory struct {
	// Now is the clock for expiry checks; time.Now when nil.
	Now func() time.Time

	mu            sync.Mutex
	connections   map[string]Connection
	conversations map[string]map[string]Conversation // user → conversation id
	messages      map[string]map[string]Message      // conversation → message id
	prompts       map[string]map[string]Prompt       // user → prompt id
	usage         map[string]map[string]tokens.Usage // user → "<day>#<model>"
	quota         map[string]map[string]int64        // user → day → tokens
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty store.
func NewMemory() *Memory {
	return &Memory{
		connections:   map[string]Connection{},
		conversations: map[string]map[string]Conversation{},
		messages:      map[string]map[string]Message{},
		prompts:       map[string]map[string]Prompt{},
		usage:         map[string]map[string]tokens.Usage{},
		quota:         map[string]map[string]int64{},
	}
}

func (s *Memory) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// lock fails like an SDK call would on a done context, so callers see the
// same errors from both stores.
func (s *Memory) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	return nil
}

// inner returns m[k], creating it.
func inner[V any](m map[string]map[string]V, k string) map[string]V {
	in := m[k]
	if in == nil {
		in = map[string]V{}
		m[k] = in
	}
	return in
}

// stored puts v through the item form Dynamo writes and reads, so that
// Memory returns what DynamoDB would.
func stored[T any](v T, encode func(T) item, decode func(item) (T, error)) T {
	it := encode(v)
	for k, a := range it {
		if s, ok := a.(*types.AttributeValueMemberS); ok {
			it[k] = attrS(wire(s.Value))
		}
	}
	out, err := decode(it)
	if err != nil {
		panic("store: Memory cannot read back its own item: " + err.Error())
	}
	return out
}

func (s *Memory) PutConnection(ctx context.Context, c Connection) error {
	if err := checkConnection(c); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	c = stored(c, connectionItem, decodeConnection)
	s.connections[c.ConnectionID] = c
	return nil
}

func (s *Memory) GetConnection(ctx context.Context, connectionID string) (Connection, error) {
	if !findable(connectionID) {
		return Connection{}, ErrNotFound
	}
	if err := s.lock(ctx); err != nil {
		return Connection{}, err
	}
	defer s.mu.Unlock()
	c, ok := s.connections[wire(connectionID)]
	if !ok || !s.now().Before(c.ExpiresAt) {
		return Connection{}, ErrNotFound
	}
	return c, nil
}

func (s *Memory) DeleteConnection(ctx context.Context, connectionID string) error {
	if !findable(connectionID) {
		return nil
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.connections, wire(connectionID))
	return nil
}

func (s *Memory) CreateConversation(ctx context.Context, c Conversation) error {
	if err := checkConversation(c); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	c = stored(c, conversationItem, decodeConversation)
	convs := inner(s.conversations, c.UserID)
	if _, ok := convs[c.ConversationID]; ok {
		return ErrExists
	}
	convs[c.ConversationID] = c
	return nil
}

func (s *Memory) GetConversation(ctx context.Context, userID, conversationID string) (Conversation, error) {
	if !findable(userID, conversationID) {
		return Conversation{}, ErrNotFound
	}
	if err := s.lock(ctx); err != nil {
		return Conversation{}, err
	}
	defer s.mu.Unlock()
	c, ok := s.conversations[wire(userID)][wire(conversationID)]
	if !ok {
		return Conversation{}, ErrNotFound
	}
	return c, nil
}

func (s *Memory) ListConversations(ctx context.Context, userID string, limit int, cur string) (Page[Conversation], error) {
	var after *cursor
	if cur != "" {
		c, err := decodeCursor(cur, userID)
		if err != nil {
			return Page[Conversation]{}, err
		}
		after = &c
	}
	if !findable(userID) {
		return Page[Conversation]{}, nil
	}
	if err := s.lock(ctx); err != nil {
		return Page[Conversation]{}, err
	}
	all := slices.Collect(maps.Values(s.conversations[wire(userID)]))
	s.mu.Unlock()

	// The index order on the stored strings, as DynamoDB compares them:
	// newest updatedAt first, ties by descending id.
	pos := func(c Conversation) cursor {
		return cursor{UpdatedAt: formatTime(c.UpdatedAt), ConversationID: c.ConversationID}
	}
	desc := func(a, b cursor) int {
		return cmp.Or(cmp.Compare(b.UpdatedAt, a.UpdatedAt), cmp.Compare(b.ConversationID, a.ConversationID))
	}
	slices.SortFunc(all, func(a, b Conversation) int { return desc(pos(a), pos(b)) })
	if after != nil {
		all = slices.DeleteFunc(all, func(c Conversation) bool { return desc(pos(c), *after) <= 0 })
	}
	n := pageSize(limit)
	return pageOf(all[:min(len(all), n+1)], n), nil
}

func (s *Memory) RenameConversation(ctx context.Context, userID, conversationID, title string, at time.Time) (Conversation, error) {
	if !findable(userID, conversationID) {
		return Conversation{}, ErrNotFound
	}
	if err := checkRename(title, at); err != nil {
		return Conversation{}, err
	}
	if err := s.lock(ctx); err != nil {
		return Conversation{}, err
	}
	defer s.mu.Unlock()
	convs := s.conversations[wire(userID)]
	c, ok := convs[wire(conversationID)]
	if !ok {
		return Conversation{}, ErrNotFound
	}
	c.Title, c.UpdatedAt = title, at
	c = stored(c, conversationItem, decodeConversation)
	convs[c.ConversationID] = c
	return c, nil
}

func (s *Memory) TouchConversation(ctx context.Context, userID, conversationID, promptID string, at time.Time) error {
	if !findable(userID, conversationID) {
		return ErrNotFound
	}
	var r rules
	r.field("prompt id", promptID, maxIDBytes)
	r.time("updatedAt", at)
	if err := r.err(); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	convs := s.conversations[wire(userID)]
	c, ok := convs[wire(conversationID)]
	if !ok {
		return ErrNotFound
	}
	c.UpdatedAt = at
	if promptID != "" {
		c.PromptID = promptID
	}
	c = stored(c, conversationItem, decodeConversation)
	convs[c.ConversationID] = c
	return nil
}

func (s *Memory) DeleteConversation(ctx context.Context, userID, conversationID string) error {
	if !findable(userID, conversationID) {
		return ErrNotFound
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	user, id := wire(userID), wire(conversationID)
	_, ok := s.conversations[user][id]
	delete(s.conversations[user], id)
	// Like Dynamo: only the caller's messages, and swept even when the
	// conversation is already gone.
	maps.DeleteFunc(s.messages[id], func(_ string, m Message) bool { return m.UserID == user })
	if !ok {
		return ErrNotFound
	}
	return nil
}

func (s *Memory) PutMessage(ctx context.Context, m Message) error {
	if err := checkMessage(m); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	m = stored(m, messageItem, decodeMessage)
	inner(s.messages, m.ConversationID)[m.MessageID] = m
	return nil
}

func (s *Memory) ListMessages(ctx context.Context, conversationID string) ([]Message, error) {
	if !findable(conversationID) {
		return nil, nil
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	return sortedValues(s.messages[wire(conversationID)]), nil
}

// sortedValues lists m by key, as a DynamoDB query lists by sort key; nil
// when empty, as Dynamo's listings are.
func sortedValues[V any](m map[string]V) []V {
	var out []V
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

func (s *Memory) CreatePrompt(ctx context.Context, p Prompt) error {
	if err := checkPrompt(p); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	p = stored(p, promptItem, decodePrompt)
	ps := inner(s.prompts, p.UserID)
	if _, ok := ps[p.PromptID]; ok {
		return ErrExists
	}
	ps[p.PromptID] = p
	return nil
}

func (s *Memory) GetPrompt(ctx context.Context, userID, promptID string) (Prompt, error) {
	if !findable(userID, promptID) {
		return Prompt{}, ErrNotFound
	}
	if err := s.lock(ctx); err != nil {
		return Prompt{}, err
	}
	defer s.mu.Unlock()
	p, ok := s.prompts[wire(userID)][wire(promptID)]
	if !ok {
		return Prompt{}, ErrNotFound
	}
	return p, nil
}

func (s *Memory) ListPrompts(ctx context.Context, userID string) ([]Prompt, error) {
	if !findable(userID) {
		return nil, nil
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	return sortedValues(s.prompts[wire(userID)]), nil
}

func (s *Memory) UpdatePrompt(ctx context.Context, p Prompt) (Prompt, error) {
	if !findable(p.UserID, p.PromptID) {
		return Prompt{}, ErrNotFound
	}
	if err := checkPromptUpdate(p); err != nil {
		return Prompt{}, err
	}
	if err := s.lock(ctx); err != nil {
		return Prompt{}, err
	}
	defer s.mu.Unlock()
	ps := s.prompts[wire(p.UserID)]
	old, ok := ps[wire(p.PromptID)]
	if !ok {
		return Prompt{}, ErrNotFound
	}
	old.Name, old.Text, old.UpdatedAt = p.Name, p.Text, p.UpdatedAt
	old = stored(old, promptItem, decodePrompt)
	ps[old.PromptID] = old
	return old, nil
}

func (s *Memory) DeletePrompt(ctx context.Context, userID, promptID string) error {
	if !findable(userID, promptID) {
		return ErrNotFound
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	ps := s.prompts[wire(userID)]
	if _, ok := ps[wire(promptID)]; !ok {
		return ErrNotFound
	}
	delete(ps, wire(promptID))
	return nil
}

// ReserveQuota admits while the day's tokens are below limit. Dynamo also
// counts admitted requests on the counter item; nothing reads that count,
// so Memory does not keep it.
func (s *Memory) ReserveQuota(ctx context.Context, userID, day string, limit int64) error {
	if err := checkReserve(userID, day); err != nil {
		return err
	}
	if limit <= 0 {
		return nil
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if s.quota[wire(userID)][day] >= limit {
		return ErrQuotaExceeded
	}
	return nil
}

func (s *Memory) AddUsage(ctx context.Context, userID, day, model string, u tokens.Usage) error {
	if err := checkAddUsage(userID, day, model, u); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	user := wire(userID)
	rows := inner(s.usage, user)
	key := usageRowKey(day, wire(model))
	row := rows[key]
	row.InputTokens += u.InputTokens
	row.OutputTokens += u.OutputTokens
	row.CacheReadInputTokens += u.CacheReadInputTokens
	row.CacheCreationInputTokens += u.CacheCreationInputTokens
	rows[key] = row
	inner(s.quota, user)[day] += u.Total()
	return nil
}

func (s *Memory) ListUsage(ctx context.Context, userID, from, to string) ([]UsageRow, error) {
	if err := checkUsageRange(from, to); err != nil {
		return nil, err
	}
	if from > to || !findable(userID) {
		return nil, nil
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var rows []UsageRow
	for k, u := range s.usage[wire(userID)] {
		day, model, _ := splitUsageKey(k)
		if from <= day && day <= to {
			rows = append(rows, UsageRow{Day: day, Model: model, Usage: u})
		}
	}
	sortUsage(rows)
	return rows, nil
}
