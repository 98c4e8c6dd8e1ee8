package claude_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/dev/fakemodel"
	"github.com/p2/buddy/lambda/models"
	"github.com/p2/buddy/lambda/tokens"
)

const (
	opus   = "claude-opus-4-5-20251101"
	sonnet = "claude-sonnet-4-5-20250929"
	haiku  = "claude-haiku-4-5-20251001"
)

// thinker is a recorder that also takes thinking, and notes the order in
// which thinking and text arrived.
type thinker struct {
	recorder
	thinking []string
	order    []string // "thinking" or "text", one per call
}

func (t *thinker) OnThinking(_ context.Context, text string) error {
	t.thinking = append(t.thinking, text)
	t.order = append(t.order, "thinking")
	return nil
}

func (t *thinker) OnText(ctx context.Context, text string) error {
	t.order = append(t.order, "text")
	return t.recorder.OnText(ctx, text)
}

// phases collapses order into its runs: ["thinking", "text"] when all
// thinking came before all text.
func (t *thinker) phases() []string {
	return slices.Compact(slices.Clone(t.order))
}

// words is n whitespace-separated words, as the stand-in counts tokens.
func words(n int) string {
	return strings.TrimSpace(strings.Repeat("word ", n))
}

// breakpoints lists the cache breakpoints of a request body as
// "path ttl", in processing order, the top-level one as "cache_control".
func breakpoints(b fakemodel.Request) []string {
	var out []string
	add := func(path string, cc *fakemodel.CacheControl) {
		if cc != nil {
			out = append(out, strings.TrimSpace(path+" "+cc.Type+" "+cc.TTL))
		}
	}
	add("cache_control", b.CacheControl)
	for i, blk := range b.System {
		add(fmt.Sprintf("system.%d", i), blk.CacheControl)
	}
	for i, m := range b.Messages {
		for j, blk := range m.Content {
			add(fmt.Sprintf("messages.%d.content.%d", i, j), blk.CacheControl)
		}
	}
	return out
}

func newAnthropic(t *testing.T, opts fakemodel.Options) (*fakemodel.Server, *claude.Anthropic) {
	t.Helper()
	fm, url := startFake(t, opts)
	return fm, claude.NewAnthropic(claude.AnthropicOptions{Keys: staticKeys("sk-ant-test"), BaseURL: url})
}

func TestThinking(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name        string
		edit        func(*claude.Request)
		wantDropped []string
		check       func(fakemodel.Request) string
	}{
		{
			name:        "thinking on drops the configured temperature and top_k and reports them",
			wantDropped: []string{"temperature", "top_k"},
			check: func(b fakemodel.Request) string {
				if b.Thinking == nil || b.Thinking.Type != "enabled" || b.Thinking.BudgetTokens == nil || *b.Thinking.BudgetTokens != 1024 {
					return fmt.Sprintf("thinking = %+v, want enabled with budget 1024", b.Thinking)
				}
				if b.Has("temperature") || b.Has("top_k") || b.Has("top_p") {
					return "temperature, top_k or top_p was sent with thinking"
				}
				return ""
			},
		},
		{
			name: "temperature 1 is kept",
			edit: func(r *claude.Request) { r.Temperature, r.TopK = f(1), 0 },
			check: func(b fakemodel.Request) string {
				if b.Temperature == nil || *b.Temperature != 1 {
					return "temperature 1 was not sent"
				}
				return ""
			},
		},
		{
			name: "top_p within 0.95..1 is kept",
			edit: func(r *claude.Request) { r.Temperature, r.TopP, r.TopK = nil, f(0.97), 0 },
			check: func(b fakemodel.Request) string {
				if b.TopP == nil || *b.TopP != 0.97 {
					return "top_p 0.97 was not sent"
				}
				return ""
			},
		},
		{
			name:        "top_p below 0.95 is dropped",
			edit:        func(r *claude.Request) { r.Temperature, r.TopP, r.TopK = nil, f(0.9), 0 },
			wantDropped: []string{"top_p"},
			check: func(b fakemodel.Request) string {
				if b.Has("top_p") {
					return "top_p 0.9 was sent with thinking"
				}
				return ""
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm, m := newAnthropic(t, fakemodel.Options{})
			req := request("hi [[tokens=4]] [[thinking=6]]")
			req.MaxTokens, req.ThinkingBudget = 2048, 1024
			if tt.edit != nil {
				tt.edit(&req)
			}
			h := &thinker{}
			res, err := m.Stream(context.Background(), req, h)
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			if !slices.Equal(res.Dropped, tt.wantDropped) {
				t.Errorf("Dropped = %q, want %q", res.Dropped, tt.wantDropped)
			}
			body, _ := fm.LastRequest()
			if problem := tt.check(body); problem != "" {
				t.Errorf("request body: %s", problem)
			}
			if got := h.phases(); !slices.Equal(got, []string{"thinking", "text"}) {
				t.Errorf("handler calls ran %q, want all thinking, then all text", got)
			}
			if got := strings.Join(h.thinking, ""); got != "Stand-in thinking about: hi The user" {
				t.Errorf("thinking = %q", got)
			}
			if len(h.texts) != 4 || !strings.HasPrefix(h.text(), "Buddy offline stand-in") {
				t.Errorf("text = %q in %d deltas, want the 4-token reply", h.text(), len(h.texts))
			}
			if !strings.HasPrefix(res.ThinkingSignature, "standin") {
				t.Errorf("ThinkingSignature = %q, want the stand-in's signature", res.ThinkingSignature)
			}
			if res.Usage.OutputTokens != 10 {
				t.Errorf("output tokens = %d, want 10: thinking counts as output", res.Usage.OutputTokens)
			}
		})
	}
}

func TestThinkingWithoutThinkingHandler(t *testing.T) {
	_, m := newAnthropic(t, fakemodel.Options{})
	req := request("hi [[tokens=3]]")
	req.MaxTokens, req.ThinkingBudget = 2048, 1024
	h := &recorder{}
	res, err := m.Stream(context.Background(), req, h)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if h.text() != "Buddy offline stand-in " || res.ThinkingSignature == "" {
		t.Errorf("text = %q, signature %q: a plain Handler should get the text alone", h.text(), res.ThinkingSignature)
	}
}

func TestThinkingErrorAfterThinkingIsStarted(t *testing.T) {
	_, m := newAnthropic(t, fakemodel.Options{})
	req := request("hi [[fault=midstream]] [[after=2]]")
	req.MaxTokens, req.ThinkingBudget = 2048, 1024
	h := &thinker{}
	_, err := m.Stream(context.Background(), req, h)
	var e *claude.Error
	if !errors.As(err, &e) || !e.Started || len(h.thinking) != 2 || len(h.texts) != 0 {
		t.Errorf("Stream error = %v after %d thinking and %d text deltas, want a started error after 2 thinking deltas", err, len(h.thinking), len(h.texts))
	}
}

// TestRefusedBeforeAnyCall pins the requests the client refuses itself,
// with bad_request and without calling either provider.
func TestRefusedBeforeAnyCall(t *testing.T) {
	tests := []struct {
		name            string
		bedrock         bool
		edit            func(*claude.Request)
		wantUnsupported string // the feature, when an *UnsupportedError is expected
	}{
		{name: "a thinking budget below 1024", edit: func(r *claude.Request) { r.ThinkingBudget = 1000 }},
		{name: "a thinking budget not below max tokens", edit: func(r *claude.Request) { r.MaxTokens, r.ThinkingBudget = 1024, 1024 }},
		{name: "a negative thinking budget", edit: func(r *claude.Request) { r.ThinkingBudget = -1 }},
		{name: "an unknown effort", edit: func(r *claude.Request) { r.Effort = "max" }},
		{name: "an unknown cache TTL", edit: func(r *claude.Request) { r.CacheTTL = "10m" }},
		{name: "effort on Sonnet 4.5", edit: func(r *claude.Request) { r.Model, r.Effort = sonnet, "low" }, wantUnsupported: "effort"},
		{name: "effort on Haiku 4.5 through Bedrock", bedrock: true, edit: func(r *claude.Request) { r.Model, r.Effort = haiku, "low" }, wantUnsupported: "effort"},
		{
			name:    "a 1h cache TTL through Bedrock for a model it cannot place",
			bedrock: true,
			edit: func(r *claude.Request) {
				r.Model, r.CacheTTL = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc", "1h"
			},
			wantUnsupported: "1h cache TTL",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm := fakemodel.New(fakemodel.Options{})
			ts := httptest.NewServer(fm)
			t.Cleanup(func() { fm.Close(); ts.Close() })
			var m claude.Streamer = claude.NewAnthropic(claude.AnthropicOptions{Keys: staticKeys("sk-ant-test"), BaseURL: ts.URL})
			if tt.bedrock {
				t.Setenv("AWS_BEARER_TOKEN_BEDROCK", "")
				b, err := claude.NewBedrock(context.Background(), bedrockConfig(ts.URL), claude.BedrockOptions{})
				if err != nil {
					t.Fatal(err)
				}
				m = b
			}
			req := request("hi")
			tt.edit(&req)
			_, err := m.Stream(context.Background(), req, &recorder{})
			if claude.KindOf(err) != claude.KindBadRequest || fm.Calls() != 0 {
				t.Fatalf("Stream error = %v after %d calls, want bad_request and no call", err, fm.Calls())
			}
			var u *claude.UnsupportedError
			switch {
			case tt.wantUnsupported == "" && errors.As(err, &u):
				t.Errorf("error %v is an UnsupportedError; the request is invalid everywhere", err)
			case tt.wantUnsupported != "" && (!errors.As(err, &u) || u.Feature != tt.wantUnsupported || u.Model != req.Model):
				t.Errorf("error %v, want an UnsupportedError for %q on %q", err, tt.wantUnsupported, req.Model)
			case tt.wantUnsupported != "" && tt.bedrock != (u.Provider == "bedrock"):
				t.Errorf("UnsupportedError names provider %q", u.Provider)
			}
		})
	}
}

func TestEffortRequest(t *testing.T) {
	tests := []struct {
		name       string
		effort     string
		wantEffort string // "" means no output_config and no beta flag
	}{
		{name: "effort is sent in output_config with the beta header", effort: "low", wantEffort: "low"},
		{name: "high effort is sent as asked", effort: "high", wantEffort: "high"},
		{name: "no effort sends neither output_config nor the beta header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm, m := newAnthropic(t, fakemodel.Options{})
			req := request("hi [[tokens=2]]")
			req.Effort = tt.effort
			if _, err := m.Stream(context.Background(), req, &recorder{}); err != nil {
				t.Fatalf("Stream: %v", err)
			}
			body, _ := fm.LastRequest()
			beta := strings.Join(body.Header.Values("anthropic-beta"), ",")
			switch {
			case tt.wantEffort == "" && (body.Has("output_config") || beta != ""):
				t.Errorf("output_config %v, anthropic-beta %q sent without effort", body.OutputConfig, beta)
			case tt.wantEffort != "" && (body.OutputConfig == nil || body.OutputConfig.Effort == nil || *body.OutputConfig.Effort != tt.wantEffort):
				t.Errorf("output_config = %+v, want effort %q", body.OutputConfig, tt.wantEffort)
			case tt.wantEffort != "" && beta != models.EffortBeta:
				t.Errorf("anthropic-beta = %q, want %q", beta, models.EffortBeta)
			}
		})
	}
}

func TestPromptCacheBreakpoints(t *testing.T) {
	long := words(1100) // 5,500 bytes: past every model's minimum
	tests := []struct {
		name   string
		model  string
		ttl    string
		system string
		turns  []claude.Turn
		want   []string
	}{
		{
			name: "off sends no breakpoint", model: sonnet, ttl: "", system: long,
			turns: []claude.Turn{{Role: "user", Text: long}},
		},
		{
			name: "off spelled out sends no breakpoint", model: sonnet, ttl: "off", system: long,
			turns: []claude.Turn{{Role: "user", Text: long}},
		},
		{
			name: "5m marks the system prompt and the newest user turn, without a ttl", model: sonnet, ttl: "5m", system: long,
			turns: []claude.Turn{{Role: "user", Text: "one"}, {Role: "assistant", Text: "two"}, {Role: "user", Text: "three"}},
			want:  []string{"system.0 ephemeral", "messages.2.content.0 ephemeral"},
		},
		{
			name: "1h marks the same blocks with ttl 1h", model: opus, ttl: "1h", system: long,
			turns: []claude.Turn{{Role: "user", Text: "one"}, {Role: "assistant", Text: "two"}, {Role: "user", Text: "three"}},
			want:  []string{"system.0 ephemeral 1h", "messages.2.content.0 ephemeral 1h"},
		},
		{
			name: "the newest user turn is marked even when an assistant turn follows it", model: sonnet, ttl: "5m", system: long,
			turns: []claude.Turn{{Role: "user", Text: "one"}, {Role: "assistant", Text: "two"}},
			want:  []string{"system.0 ephemeral", "messages.0.content.0 ephemeral"},
		},
		{
			name: "a short prompt gets no breakpoint", model: sonnet, ttl: "5m", system: "Be brief.",
			turns: []claude.Turn{{Role: "user", Text: "hi"}},
		},
		{
			name: "a system prompt below the minimum is skipped while the longer prefix is marked", model: sonnet, ttl: "5m",
			system: words(100), // 500 bytes, below Sonnet's 1024
			turns:  []claude.Turn{{Role: "user", Text: words(200)}},
			want:   []string{"messages.0.content.0 ephemeral"},
		},
		{
			name: "the same prompt is below Opus's larger minimum", model: opus, ttl: "5m",
			system: words(100),
			turns:  []claude.Turn{{Role: "user", Text: words(200)}},
		},
		{
			name: "no system prompt marks the newest user turn alone", model: haiku, ttl: "5m",
			turns: []claude.Turn{{Role: "user", Text: long}},
			want:  []string{"messages.0.content.0 ephemeral"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm, m := newAnthropic(t, fakemodel.Options{Tokens: 1})
			req := request("")
			req.Model, req.CacheTTL, req.System, req.Turns = tt.model, tt.ttl, tt.system, tt.turns
			if _, err := m.Stream(context.Background(), req, &recorder{}); err != nil {
				t.Fatalf("Stream: %v", err)
			}
			body, _ := fm.LastRequest()
			if got := breakpoints(body); !slices.Equal(got, tt.want) {
				t.Errorf("breakpoints = %q, want %q", got, tt.want)
			}
			if body.System.Text() != tt.system || len(body.Messages) != len(tt.turns) {
				t.Errorf("the prompt was changed: system %d bytes, %d messages", len(body.System.Text()), len(body.Messages))
			}
		})
	}
}

// TestPromptCacheAcrossTurns runs a conversation's first two turns through
// the stand-in, which caches as the API documents: the first writes the
// prefix, the second reads it.
func TestPromptCacheAcrossTurns(t *testing.T) {
	tests := []struct {
		name   string
		model  string
		ttl    string
		system string
	}{
		{name: "Sonnet 4.5 with 5-minute entries", model: sonnet, ttl: "5m", system: words(1100)},
		{name: "Opus 4.5 with 1-hour entries", model: opus, ttl: "1h", system: words(4200)},
		{name: "Haiku 4.5 with 5-minute entries", model: haiku, ttl: "5m", system: words(4200)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, m := newAnthropic(t, fakemodel.Options{Tokens: 3})
			req := request("hi")
			req.Model, req.CacheTTL, req.System = tt.model, tt.ttl, tt.system

			h := &recorder{}
			first, err := m.Stream(context.Background(), req, h)
			if err != nil {
				t.Fatalf("first turn: %v", err)
			}
			write5m, write1h := first.Usage.CacheCreationInputTokens, int64(0)
			if tt.ttl == "1h" {
				write5m, write1h = 0, first.Usage.CacheCreationInputTokens
			}
			if first.Usage.CacheCreationInputTokens == 0 || first.Usage.CacheReadInputTokens != 0 ||
				first.Usage.CacheWrite5mInputTokens != write5m || first.Usage.CacheWrite1hInputTokens != write1h {
				t.Errorf("first turn usage = %+v, want a %s cache write and no read", first.Usage, tt.ttl)
			}

			req.Turns = append(req.Turns, claude.Turn{Role: "assistant", Text: h.text()}, claude.Turn{Role: "user", Text: "and again"})
			second, err := m.Stream(context.Background(), req, &recorder{})
			if err != nil {
				t.Fatalf("second turn: %v", err)
			}
			if second.Usage.CacheReadInputTokens != first.Usage.CacheCreationInputTokens {
				t.Errorf("second turn read %d tokens from the cache, want the %d the first wrote (usage %+v)",
					second.Usage.CacheReadInputTokens, first.Usage.CacheCreationInputTokens, second.Usage)
			}
			if second.Usage.CacheCreationInputTokens == 0 {
				t.Errorf("second turn usage = %+v, want its new messages written", second.Usage)
			}
		})
	}
}

// TestCacheUsageSplit pins how the write split is read from message_start.
func TestCacheUsageSplit(t *testing.T) {
	start := func(usage string) string {
		return `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-raw","content":[],"stop_reason":null,"usage":` + usage + `}}`
	}
	tests := []struct {
		name  string
		ttl   string
		usage string
		want  tokens.Usage
	}{
		{
			name:  "the split is taken as reported, the total kept",
			ttl:   "1h",
			usage: `{"input_tokens":5,"output_tokens":1,"cache_read_input_tokens":7,"cache_creation_input_tokens":30,"cache_creation":{"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":20}}`,
			want:  tokens.Usage{InputTokens: 5, OutputTokens: 2, CacheReadInputTokens: 7, CacheCreationInputTokens: 30, CacheWrite5mInputTokens: 10, CacheWrite1hInputTokens: 20},
		},
		{
			name:  "a total without a split is of the request's TTL",
			ttl:   "1h",
			usage: `{"input_tokens":5,"output_tokens":1,"cache_read_input_tokens":0,"cache_creation_input_tokens":30}`,
			want:  tokens.Usage{InputTokens: 5, OutputTokens: 2, CacheCreationInputTokens: 30, CacheWrite1hInputTokens: 30},
		},
		{
			name:  "a total without a split and caching off stays unsplit",
			usage: `{"input_tokens":5,"output_tokens":1,"cache_read_input_tokens":0,"cache_creation_input_tokens":30}`,
			want:  tokens.Usage{InputTokens: 5, OutputTokens: 2, CacheCreationInputTokens: 30},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := sse("message_start", start(tt.usage), "content_block_start", rawBlock, "content_block_delta", rawHello,
				"content_block_stop", rawStop, "message_delta", rawDelta, "message_stop", rawEnd)
			_, m := newAnthropic(t, fakemodel.Options{Script: func(_ int, _ fakemodel.Request, p *fakemodel.Plan) { p.Raw = body }})
			req := request("hi")
			req.CacheTTL = tt.ttl
			res, err := m.Stream(context.Background(), req, &recorder{})
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			if res.Usage != tt.want {
				t.Errorf("Usage = %+v, want %+v", res.Usage, tt.want)
			}
		})
	}
}

// TestBedrockFeatures sends thinking, effort and caching through the SDK's
// Bedrock path to the stand-in, which applies Bedrock's body rules.
func TestBedrockFeatures(t *testing.T) {
	t.Setenv("AWS_BEARER_TOKEN_BEDROCK", "")
	tests := []struct {
		name  string
		edit  func(*claude.Request)
		check func(fakemodel.Request, claude.Result, *thinker) string
	}{
		{
			name: "thinking is sent without temperature and top_k and streams first",
			edit: func(r *claude.Request) { r.MaxTokens, r.ThinkingBudget = 2048, 1024 },
			check: func(b fakemodel.Request, res claude.Result, h *thinker) string {
				switch {
				case b.Thinking == nil || b.Thinking.BudgetTokens == nil || *b.Thinking.BudgetTokens != 1024:
					return fmt.Sprintf("thinking = %+v", b.Thinking)
				case b.Has("temperature") || b.Has("top_k"):
					return "temperature or top_k sent with thinking"
				case !slices.Equal(res.Dropped, []string{"temperature", "top_k"}):
					return fmt.Sprintf("Dropped = %q", res.Dropped)
				case !slices.Equal(h.phases(), []string{"thinking", "text"}) || res.ThinkingSignature == "":
					return fmt.Sprintf("handler calls %q, signature %q", h.phases(), res.ThinkingSignature)
				}
				return ""
			},
		},
		{
			name: "effort goes in the body with the beta flag in anthropic_beta, not in a header",
			edit: func(r *claude.Request) { r.Effort = "medium" },
			check: func(b fakemodel.Request, _ claude.Result, _ *thinker) string {
				switch {
				case b.OutputConfig == nil || b.OutputConfig.Effort == nil || *b.OutputConfig.Effort != "medium":
					return fmt.Sprintf("output_config = %+v", b.OutputConfig)
				case !slices.Equal(b.AnthropicBeta, []string{models.EffortBeta}):
					return fmt.Sprintf("anthropic_beta = %q", b.AnthropicBeta)
				case b.Header.Get("anthropic-beta") != "":
					return "anthropic-beta header sent to Bedrock"
				}
				return ""
			},
		},
		{
			name: "1h breakpoints are placed as on the Anthropic API and the write is split",
			edit: func(r *claude.Request) { r.CacheTTL, r.System = "1h", words(4200) },
			check: func(b fakemodel.Request, res claude.Result, _ *thinker) string {
				if got := breakpoints(b); !slices.Equal(got, []string{"system.0 ephemeral 1h", "messages.0.content.0 ephemeral 1h"}) {
					return fmt.Sprintf("breakpoints = %q", got)
				}
				if u := res.Usage; u.CacheWrite1hInputTokens == 0 || u.CacheWrite1hInputTokens != u.CacheCreationInputTokens {
					return fmt.Sprintf("usage = %+v, want the whole write as 1h", u)
				}
				return ""
			},
		},
		{
			name: "caching off sends no breakpoint",
			edit: func(r *claude.Request) { r.System = words(4200) },
			check: func(b fakemodel.Request, _ claude.Result, _ *thinker) string {
				if got := breakpoints(b); len(got) != 0 {
					return fmt.Sprintf("breakpoints = %q", got)
				}
				return ""
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, fm, check := startBedrock(t, 5*time.Second)
			req := request("hi [[tokens=3]]")
			tt.edit(&req)
			h := &thinker{}
			res, err := m.Stream(context.Background(), req, h)
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			body, _ := fm.LastRequest()
			if !body.Bedrock || body.Model != "us.anthropic.claude-opus-4-5-20251101-v1:0" {
				t.Errorf("request went to %q (Bedrock path: %v)", body.Model, body.Bedrock)
			}
			if problem := tt.check(body, res, h); problem != "" {
				t.Error(problem)
			}
			check.report(t)
		})
	}
}
