package store

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/tokens"
)

// The golden files pin the stored form of every item: the tables outlive
// any version of this code, so a codec change that renames an attribute,
// turns an N into an S or stores an empty value must fail here first.
var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current code")

// goldenTime has nanoseconds, to pin the fixed-width layout.
var goldenTime = time.Date(2026, 3, 1, 12, 34, 56, 120000000, time.UTC)

func TestItemsMatchGolden(t *testing.T) {
	usage := tokens.Usage{InputTokens: 1200, OutputTokens: 345, CacheReadInputTokens: 6789, CacheCreationInputTokens: 10}
	cases := []struct {
		name  string
		value any
	}{
		{"connection", Connection{ConnectionID: "conn-1", UserID: "alice", ConnectedAt: goldenTime, ExpiresAt: goldenTime.Add(2 * time.Hour).Truncate(time.Second)}},
		{"conversation", Conversation{UserID: "alice", ConversationID: "conv-1", Title: "Trip to Zürich", PromptID: "prompt-1", CreatedAt: goldenTime, UpdatedAt: goldenTime.Add(time.Minute)}},
		// Empty strings are left out.
		{"conversation without title or prompt", Conversation{UserID: "alice", ConversationID: "conv-2", CreatedAt: goldenTime, UpdatedAt: goldenTime}},
		{"assistant message with usage, cut short", Message{ConversationID: "conv-1", MessageID: "msg-2", UserID: "alice", Role: RoleAssistant, Text: "Take the train.", CreatedAt: goldenTime,
			RequestID: "req-1", Model: "claude-x", StopReason: "end_turn", Incomplete: true, Usage: usage}},
		// Zero counters and a false flag are left out.
		{"user message", Message{ConversationID: "conv-1", MessageID: "msg-1", UserID: "alice", Role: RoleUser, Text: "How do I get there?", CreatedAt: goldenTime, RequestID: "req-1"}},
		{"prompt", Prompt{UserID: "alice", PromptID: "prompt-1", Name: "Travel", Text: "You plan trips.", CreatedAt: goldenTime, UpdatedAt: goldenTime.Add(time.Hour)}},
		{"prompt without name", Prompt{UserID: "alice", PromptID: "prompt-2", Text: "Be brief.", CreatedAt: goldenTime, UpdatedAt: goldenTime}},
	}
	got := map[string]item{}
	for _, c := range cases {
		got[c.name] = encodeItem(t, c.value)
	}
	golden := checkGolden(t, "items.json", got)
	for _, c := range cases {
		it, ok := golden[c.name]
		if !ok {
			continue // checkGolden reported it
		}
		v, err := decodeItem(t, c.value, it)
		if err != nil {
			t.Errorf("%s: decoding the golden item: %v", c.name, err)
		} else if !reflect.DeepEqual(v, c.value) {
			t.Errorf("%s: golden item decodes to\n %+v\nwant\n %+v", c.name, v, c.value)
		}
	}
}

// encodeItem encodes v with the codec of its type.
func encodeItem(t *testing.T, v any) item {
	switch v := v.(type) {
	case Connection:
		return connectionItem(v)
	case Conversation:
		return conversationItem(v)
	case Message:
		return messageItem(v)
	case Prompt:
		return promptItem(v)
	}
	t.Fatalf("no codec for %T", v)
	return nil
}

// decodeItem decodes it with the codec of like's type.
func decodeItem(t *testing.T, like any, it item) (any, error) {
	switch like.(type) {
	case Connection:
		return decodeConnection(it)
	case Conversation:
		return decodeConversation(it)
	case Message:
		return decodeMessage(it)
	case Prompt:
		return decodePrompt(it)
	}
	t.Fatalf("no codec for %T", like)
	return nil, nil
}

// The encoder turns times into UTC; the zone of the value does not matter.
func TestItemTimesAreUTC(t *testing.T) {
	in := goldenTime.In(time.FixedZone("CET", 3600))
	it := conversationItem(Conversation{UserID: "u", ConversationID: "c", CreatedAt: in, UpdatedAt: in})
	for _, name := range []string{"createdAt", "updatedAt"} {
		if got := renderValue(it[name]); !reflect.DeepEqual(got, map[string]any{"S": "2026-03-01T12:34:56.120000000Z"}) {
			t.Errorf("%s = %v, want the UTC time", name, got)
		}
	}
}

// CheckGolden lets the external tests (stored items read back from
// DynamoDB) use the same golden files.
var CheckGolden = checkGolden

// checkGolden compares items, rendered as JSON, with testdata/file (or
// rewrites it under -update) and returns the golden items parsed back.
func checkGolden(t *testing.T, file string, items map[string]item) map[string]item {
	t.Helper()
	got, err := renderItems(items)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", file)
	if *updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("stored items differ from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
	var parsed map[string]map[string]map[string]any
	if err := json.Unmarshal(want, &parsed); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string]item{}
	for name, r := range parsed {
		it := item{}
		for attr, v := range r {
			av, err := parseValue(v)
			if err != nil {
				t.Fatalf("%s: %s.%s: %v", path, name, attr, err)
			}
			it[attr] = av
		}
		out[name] = it
	}
	for name := range items {
		if _, ok := out[name]; !ok {
			t.Errorf("%s has no item %q", path, name)
		}
	}
	return out
}

// renderItems writes items as JSON with one attribute a line, sorted, so
// a diff of the golden file reads attribute by attribute.
func renderItems(items map[string]item) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("{")
	for i, name := range slices.Sorted(maps.Keys(items)) {
		if i > 0 {
			b.WriteString(",")
		}
		k, _ := json.Marshal(name)
		fmt.Fprintf(&b, "\n  %s: {", k)
		for j, attr := range slices.Sorted(maps.Keys(items[name])) {
			if j > 0 {
				b.WriteString(",")
			}
			k, _ := json.Marshal(attr)
			v, err := json.Marshal(renderValue(items[name][attr]))
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(&b, "\n    %s: %s", k, v)
		}
		b.WriteString("\n  }")
	}
	b.WriteString("\n}\n")
	return b.Bytes(), nil
}

// renderValue is DynamoDB's own JSON form of a value ({"S": "..."}) for
// the types the store writes; anything else shows up as a difference.
func renderValue(v types.AttributeValue) map[string]any {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return map[string]any{"S": v.Value}
	case *types.AttributeValueMemberN:
		return map[string]any{"N": v.Value}
	case *types.AttributeValueMemberBOOL:
		return map[string]any{"BOOL": v.Value}
	case *types.AttributeValueMemberSS:
		return map[string]any{"SS": v.Value}
	case *types.AttributeValueMemberL:
		l := make([]any, len(v.Value))
		for i, e := range v.Value {
			l[i] = renderValue(e)
		}
		return map[string]any{"L": l}
	case *types.AttributeValueMemberM:
		m := map[string]any{}
		for k, e := range v.Value {
			m[k] = renderValue(e)
		}
		return map[string]any{"M": m}
	default:
		return map[string]any{"unexpected": fmt.Sprintf("%T", v)}
	}
}

func parseValue(r map[string]any) (types.AttributeValue, error) {
	if len(r) == 1 {
		if v, ok := r["S"].(string); ok {
			return &types.AttributeValueMemberS{Value: v}, nil
		}
		if v, ok := r["N"].(string); ok {
			return &types.AttributeValueMemberN{Value: v}, nil
		}
		if v, ok := r["BOOL"].(bool); ok {
			return &types.AttributeValueMemberBOOL{Value: v}, nil
		}
		if v, ok := r["SS"].([]any); ok {
			ss := &types.AttributeValueMemberSS{}
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("%v is not a string set", r)
				}
				ss.Value = append(ss.Value, s)
			}
			return ss, nil
		}
		if v, ok := r["L"].([]any); ok {
			l := &types.AttributeValueMemberL{Value: []types.AttributeValue{}}
			for _, e := range v {
				em, _ := e.(map[string]any)
				av, err := parseValue(em)
				if err != nil {
					return nil, err
				}
				l.Value = append(l.Value, av)
			}
			return l, nil
		}
		if v, ok := r["M"].(map[string]any); ok {
			m := &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}}
			for k, e := range v {
				em, _ := e.(map[string]any)
				av, err := parseValue(em)
				if err != nil {
					return nil, err
				}
				m.Value[k] = av
			}
			return m, nil
		}
	}
	return nil, fmt.Errorf("%v is not an S, N, BOOL, SS, L or M value", r)
}

// Struct tags cannot name constants, so this ties the records' attribute
// names to lambda/manifest (keys, indexes and TTL of the table definitions)
// and to the names the store's update expressions use.
func TestItemAttributeNames(t *testing.T) {
	full := tokens.Usage{InputTokens: 1, OutputTokens: 1, CacheReadInputTokens: 1, CacheCreationInputTokens: 1}
	counters := []string{attrInputTokens, attrOutputTokens, attrCacheRead, attrCacheCreation}
	for _, tc := range []struct {
		name string
		it   item
		want []string
	}{
		{"connection", connectionItem(Connection{ConnectionID: "c", UserID: "u", ExpiresAt: goldenTime}),
			[]string{manifest.AttrConnectionID, manifest.AttrUserID, manifest.AttrExpiresAt, "connectedAt"}},
		{"conversation", conversationItem(Conversation{UserID: "u", ConversationID: "c", Title: "t", PromptID: "p"}),
			[]string{manifest.AttrUserID, manifest.AttrConversationID, manifest.AttrPromptID, manifest.AttrUpdatedAt, attrTitle, "createdAt"}},
		{"message", messageItem(Message{ConversationID: "c", MessageID: "m", UserID: "u", Role: RoleUser, Text: "x", RequestID: "r", Model: "m", StopReason: "s", Incomplete: true, Usage: full}),
			append([]string{manifest.AttrConversationID, manifest.AttrMessageID, manifest.AttrUserID, attrText, "role", "createdAt", "requestId", "model", "stopReason", "incomplete"}, counters...)},
		{"prompt", promptItem(Prompt{UserID: "u", PromptID: "p", Name: "n", Text: "x"}),
			[]string{manifest.AttrUserID, manifest.AttrPromptID, manifest.AttrUpdatedAt, attrName, attrText, "createdAt"}},
		{"prompt counter", promptCounterItem("u", 1),
			[]string{manifest.AttrUserID, manifest.AttrPromptID, attrPrompts}},
		{"usage row", marshal(usageRowRecord{Key: "k", Usage: full}),
			append([]string{manifest.AttrUsageKey}, counters...)},
	} {
		got := slices.Sorted(maps.Keys(tc.it))
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s attributes = %v, want %v", tc.name, got, tc.want)
		}
	}
}
