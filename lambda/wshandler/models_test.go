package wshandler_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/pricing"
	"github.com/p2/buddy/lambda/wsapi"
)

const (
	sonnet = "claude-sonnet-4-5-20250929"
	haiku  = "claude-haiku-4-5-20251001"
)

// frame builds a sendMessage with the v2 fields.
func frame(requestID, conversationID, text string, extra map[string]any) string {
	f := map[string]any{"action": "sendMessage", "requestId": requestID, "text": text}
	if conversationID != "" {
		f["conversationId"] = conversationID
	}
	for k, v := range extra {
		f[k] = v
	}
	b, _ := json.Marshal(f)
	return string(b)
}

// checkRefused asserts the answer is a single error frame with code: the
// request was refused before any reply started.
func checkRefused(t *testing.T, frames []wsapi.Frame, code string) {
	t.Helper()
	if len(frames) != 1 || frames[0].Code != code {
		t.Fatalf("answered %+v, want %s", frames, code)
	}
}

// Each model choice: allowed ones answer and stick to the conversation;
// anything else is a bad request that stores nothing and calls nothing.
func TestModelChoice(t *testing.T) {
	tests := []struct {
		name      string
		model     string
		wantModel string // "" when refused
	}{
		{"the default when none is asked for", "", config.DefaultModelID},
		{"an allowed model", sonnet, sonnet},
		{"another allowed model", haiku, haiku},
		{"an unknown model", "claude-ultra-9", ""},
		{"a retired model", "claude-3-opus-20240229", ""},
		{"an allowed model's Bedrock id is not an allowed id", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			conn := h.connect("alice")
			extra := map[string]any{}
			if tt.model != "" {
				extra["model"] = tt.model
			}
			frames := h.send(conn, frame("r1", "", "hi", extra))
			if tt.wantModel == "" {
				checkRefused(t, frames, errcode.BadRequest)
				if c, m := h.counts("alice"); c != 0 || m != 0 || h.model.Calls() != 0 {
					t.Errorf("stored %d conversations, %d messages, called the model %d times", c, m, h.model.Calls())
				}
				return
			}
			checkReply(t, frames, "r1")
			if frames[0].Model != tt.wantModel {
				t.Errorf("start model %q, want %q", frames[0].Model, tt.wantModel)
			}
			if req, _ := h.model.LastRequest(); req.Model != tt.wantModel {
				t.Errorf("upstream model %q", req.Model)
			}
			// A follow-up without a model keeps the conversation's.
			conv := frames[0].ConversationID
			next := h.send(conn, frame("r2", conv, "and then?", nil))
			checkReply(t, next, "r2")
			if next[0].Model != tt.wantModel {
				t.Errorf("follow-up answered by %q, want the conversation's %q", next[0].Model, tt.wantModel)
			}
			_, body := h.http("conversations", "alice", "GET /conversations/{id}", map[string]string{"id": conv}, nil, "")
			if body["model"] != tt.wantModel {
				t.Errorf("conversation model %v", body["model"])
			}
		})
	}
}

// Extended thinking: frames before the answer on one seq counter, stored
// apart; the settings the API refuses with thinking are dropped; bad
// budgets and models are refused before anything is stored.
func TestExtendedThinking(t *testing.T) {
	tests := []struct {
		name   string
		budget int
		model  string
		code   string // "" for a reply
	}{
		{"a budget in bounds", 2048, "", ""},
		{"on Haiku too", 1024, haiku, ""},
		{"below the minimum", 1023, "", errcode.BadRequest},
		{"at the max tokens", 4096, "", errcode.BadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			conn := h.connect("alice")
			extra := map[string]any{"thinking": map[string]any{"budgetTokens": tt.budget}}
			if tt.model != "" {
				extra["model"] = tt.model
			}
			frames := h.send(conn, frame("r1", "", "think first [[thinking=40]]", extra))
			if tt.code != "" {
				checkRefused(t, frames, tt.code)
				if _, m := h.counts("alice"); m != 0 {
					t.Errorf("stored %d messages", m)
				}
				return
			}
			start, end := frames[0], frames[len(frames)-1]
			if end.Type != wsapi.TypeEnd {
				t.Fatalf("reply ended with %+v", end)
			}
			var thinking, answer strings.Builder
			sawDelta := false
			for i, f := range frames[1 : len(frames)-1] {
				if f.Seq == nil || *f.Seq != i || f.MessageID != start.MessageID {
					t.Fatalf("frame %d: %+v is not seq %d of the reply", i, f, i)
				}
				switch f.Type {
				case wsapi.TypeThinking:
					if sawDelta {
						t.Fatalf("thinking after the answer began: %+v", f)
					}
					thinking.WriteString(f.Text)
				case wsapi.TypeDelta:
					sawDelta = true
					answer.WriteString(f.Text)
				}
			}
			if thinking.Len() == 0 || answer.Len() == 0 {
				t.Fatalf("thinking %q, answer %q", thinking.String(), answer.String())
			}
			m := h.storedReply("alice", start.ConversationID, start.MessageID)
			if m.Text != answer.String() || m.Thinking != thinking.String() || m.ThinkingSignature == "" {
				t.Errorf("stored text %q thinking %q signature %q", m.Text, m.Thinking, m.ThinkingSignature)
			}
			req, _ := h.model.LastRequest()
			if req.Has("temperature") || req.Has("top_k") || req.Thinking == nil || req.Thinking.BudgetTokens == nil || *req.Thinking.BudgetTokens != int64(tt.budget) {
				t.Errorf("upstream request: temperature sent %v, top_k sent %v, thinking %+v", req.Has("temperature"), req.Has("top_k"), req.Thinking)
			}
			// The thinking shows in the conversation, apart from the text.
			_, body := h.http("conversations", "alice", "GET /conversations/{id}", map[string]string{"id": start.ConversationID}, nil, "")
			if got := body["messages"].([]any)[1].(map[string]any); got["thinking"] != thinking.String() || got["text"] != answer.String() {
				t.Errorf("GET shows %v", got)
			}
			// A resume replays thinking and answer frames alike.
			other := h.connect("alice")
			resumed := h.send(other, resumeFrame("r2", start.MessageID, -1))
			if len(resumed) != len(frames)-1 || resumed[0].Type != wsapi.TypeThinking || resumed[0].Text != frames[1].Text {
				t.Errorf("resume replayed %d frames starting %+v; the reply had %d", len(resumed), resumed[0], len(frames)-1)
			}
		})
	}
}

// Effort goes to models that take it and is refused elsewhere.
func TestEffort(t *testing.T) {
	tests := []struct {
		name, model, effort, code string
	}{
		{"low on Opus", "", "low", ""},
		{"high on Opus", "", "high", ""},
		{"on Sonnet", sonnet, "low", errcode.BadRequest},
		{"an unknown level", "", "max", errcode.BadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			conn := h.connect("alice")
			extra := map[string]any{"effort": tt.effort}
			if tt.model != "" {
				extra["model"] = tt.model
			}
			frames := h.send(conn, frame("r1", "", "hi", extra))
			if tt.code != "" {
				checkRefused(t, frames, tt.code)
				return
			}
			checkReply(t, frames, "r1")
			if req, _ := h.model.LastRequest(); req.OutputConfig == nil || req.OutputConfig.Effort == nil || *req.OutputConfig.Effort != tt.effort {
				t.Errorf("upstream output_config %+v", req.OutputConfig)
			}
		})
	}
}

// Prompt caching is on by default: the second turn reads the first
// turn's prefix from the cache; the cost of each reply is its usage at
// list prices, and /usage says what caching saved.
func TestPromptCachingAndCost(t *testing.T) {
	long := strings.Repeat("context ", 1500) // above Sonnet's 1024-token minimum
	tests := []struct {
		name        string
		promptCache string
		wantRead    bool
	}{
		{"on by default", "", true},
		{"one hour", config.PromptCache1h, true},
		{"off", config.PromptCacheOff, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{promptCache: tt.promptCache})
			conn := h.connect("alice")
			first := h.send(conn, frame("r1", "", long, map[string]any{"model": sonnet}))
			checkReply(t, first, "r1")
			second := h.send(conn, frame("r2", first[0].ConversationID, "and now?", nil))
			_, end := checkReply(t, second, "r2")
			if got := end.Usage.CacheReadInputTokens > 0; got != tt.wantRead {
				t.Errorf("second turn read %d tokens from the cache", end.Usage.CacheReadInputTokens)
			}
			if tt.promptCache == config.PromptCache1h && end.Usage.CacheWrite1hInputTokens == 0 {
				t.Errorf("1h cache wrote %+v", end.Usage)
			}
			// The reply's cost is its usage at list prices.
			p, _ := pricing.Lookup(sonnet)
			want := p.Cost(pricing.Of(*end.Usage))
			if end.CostUSD == nil || math.Abs(*end.CostUSD-want) > 1e-6 {
				t.Errorf("costUsd %v, want %v for %+v", end.CostUSD, want, end.Usage)
			}
			m := h.storedReply("alice", second[0].ConversationID, second[0].MessageID)
			if math.Abs(m.CostUSD-want) > 1e-6 || m.Model == "" {
				t.Errorf("stored cost %v model %q", m.CostUSD, m.Model)
			}
			_, usage := h.http("usage", "alice", "GET /usage", nil, nil, "")
			totals := usage["totals"].(map[string]any)
			if saved, _ := totals["savedUsd"].(float64); (saved != 0) != (tt.promptCache != config.PromptCacheOff) {
				t.Errorf("savedUsd %v", totals["savedUsd"])
			}
			today := usage["today"].(map[string]any)
			if today["used"].(float64) == 0 || today["reserved"].(float64) != 0 {
				t.Errorf("today %v", today)
			}
		})
	}
}
