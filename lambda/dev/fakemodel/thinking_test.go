package fakemodel_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/p2/buddy/lambda/dev/fakemodel"
)

const (
	opus   = "claude-opus-4-5-20251101"
	sonnet = "claude-sonnet-4-5-20250929"
	haiku  = "claude-haiku-4-5-20251001"
)

var effortBeta = http.Header{"Anthropic-Beta": {fakemodel.EffortBeta}}

// withThinking enables thinking with budget and max_tokens.
func withThinking(budget, maxTokens int) func(map[string]any) {
	return func(b map[string]any) {
		b["thinking"] = map[string]any{"type": "enabled", "budget_tokens": budget}
		b["max_tokens"] = maxTokens
	}
}

func set(k string, v any) func(map[string]any) { return func(b map[string]any) { b[k] = v } }

// blockText concatenates the deltas of kind (text_delta, thinking_delta,
// signature_delta) and counts them.
func blockText(events []event, kind string) (text string, n int) {
	field := map[string]string{"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "signature"}[kind]
	for _, e := range events {
		if e.name != "content_block_delta" {
			continue
		}
		d := e.data["delta"].(map[string]any)
		if d["type"] == kind {
			text += d[field].(string)
			n++
		}
	}
	return text, n
}

// shape is the stream with deltas collapsed: "message_start,
// content_block_start:thinking, thinking_delta*7, ...", which is what the
// protocol pins.
func shape(events []event) string {
	var out []string
	last, run := "", 0
	flush := func() {
		if run > 1 {
			out[len(out)-1] += "*" + itoa(run)
		}
	}
	for _, e := range events {
		name := e.name
		switch e.name {
		case "ping":
			continue
		case "content_block_start":
			name += ":" + e.data["content_block"].(map[string]any)["type"].(string)
		case "content_block_delta":
			name = e.data["delta"].(map[string]any)["type"].(string)
		}
		if name == last {
			run++
			continue
		}
		flush()
		out = append(out, name)
		last, run = name, 1
	}
	flush()
	return strings.Join(out, ",")
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestThinkingStreamsBeforeTheText(t *testing.T) {
	tests := []struct {
		name         string
		text         string
		edit         func(map[string]any)
		wantShape    string
		wantThinking int
		wantText     int
		wantStop     string
	}{
		{
			name: "thinking comes first, then a signature, then the text", text: "why? [[tokens=5]] [[thinking=7]]", edit: withThinking(2048, 4096),
			wantShape: "message_start,content_block_start:thinking,thinking_delta*7,signature_delta,content_block_stop," +
				"content_block_start:text,text_delta*5,content_block_stop,message_delta,message_stop",
			wantThinking: 7, wantText: 5, wantStop: "end_turn",
		},
		{
			name: "the default thinking is a few dozen tokens", text: "why? [[tokens=3]]", edit: withThinking(1024, 2048),
			wantShape: "message_start,content_block_start:thinking,thinking_delta*32,signature_delta,content_block_stop," +
				"content_block_start:text,text_delta*3,content_block_stop,message_delta,message_stop",
			wantThinking: fakemodel.DefaultThinkingTokens, wantText: 3, wantStop: "end_turn",
		},
		{
			name: "thinking never exceeds the budget, and the text gets what max_tokens leaves", text: "why? [[thinking=5000]] [[tokens=5000]]", edit: withThinking(1024, 1500),
			wantShape: "message_start,content_block_start:thinking,thinking_delta*1024,signature_delta,content_block_stop," +
				"content_block_start:text,text_delta*476,content_block_stop,message_delta,message_stop",
			wantThinking: 1024, wantText: 476, wantStop: "max_tokens",
		},
		{
			name: "without thinking in the request a thinking directive is ignored", text: "why? [[thinking=9]] [[tokens=2]]",
			wantShape: "message_start,content_block_start:text,text_delta*2,content_block_stop,message_delta,message_stop",
			wantText:  2, wantStop: "end_turn",
		},
		{
			name: "disabled thinking streams no thinking", text: "why? [[tokens=2]]", edit: set("thinking", map[string]any{"type": "disabled"}),
			wantShape: "message_start,content_block_start:text,text_delta*2,content_block_stop,message_delta,message_stop",
			wantText:  2, wantStop: "end_turn",
		},
		{
			name: "a midstream fault counts thinking deltas too", text: "why? [[thinking=4]] [[fault=midstream]] [[after=6]]", edit: withThinking(1024, 2048),
			wantShape: "message_start,content_block_start:thinking,thinking_delta*4,signature_delta,content_block_stop," +
				"content_block_start:text,text_delta*2,error",
			wantThinking: 4, wantText: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := start(t, fakemodel.Options{})
			edits := []func(map[string]any){}
			if tt.edit != nil {
				edits = append(edits, tt.edit)
			}
			res := post(context.Background(), t, url+"/v1/messages", body(tt.text, edits...), nil)
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			events := readSSE(t, res.Body)
			if got := shape(events); got != tt.wantShape {
				t.Fatalf("stream:\n got  %s\n want %s", got, tt.wantShape)
			}
			thinking, nThinking := blockText(events, "thinking_delta")
			_, nText := blockText(events, "text_delta")
			if nThinking != tt.wantThinking || nText != tt.wantText {
				t.Errorf("%d thinking and %d text deltas, want %d and %d", nThinking, nText, tt.wantThinking, tt.wantText)
			}
			if tt.wantThinking > 0 && !strings.HasPrefix(thinking, "Stand-in thinking about: why?") {
				t.Errorf("thinking = %q", thinking)
			}
			if tt.wantStop == "" {
				return
			}
			md := events[len(events)-2].data
			usage := md["usage"].(map[string]any)
			if md["delta"].(map[string]any)["stop_reason"] != tt.wantStop || usage["output_tokens"] != float64(tt.wantThinking+tt.wantText) {
				t.Errorf("message_delta = %v, want %s and output_tokens counting thinking and text (%d)", md, tt.wantStop, tt.wantThinking+tt.wantText)
			}
		})
	}
}

// TestThinkingBlocksComeBack sends a first turn's thinking block back in the
// second turn, as a client keeping the conversation would.
func TestThinkingBlocksComeBack(t *testing.T) {
	_, url := start(t, fakemodel.Options{})
	first := readSSE(t, post(context.Background(), t, url+"/v1/messages", body("think [[thinking=5]] [[tokens=2]]", withThinking(1024, 2048)), nil).Body)
	thinking, _ := blockText(first, "thinking_delta")
	sig, nSig := blockText(first, "signature_delta")
	if nSig != 1 || sig == "" {
		t.Fatalf("%d signature deltas (%q), want one", nSig, sig)
	}
	reply, _ := blockText(first, "text_delta")

	second := func(assistant []any) map[string]any {
		return body("", withThinking(1024, 2048), set("messages", []any{
			map[string]any{"role": "user", "content": "think [[thinking=5]] [[tokens=2]]"},
			map[string]any{"role": "assistant", "content": assistant},
			map[string]any{"role": "user", "content": "again [[tokens=1]]"},
		}))
	}
	text := map[string]any{"type": "text", "text": reply}
	tests := []struct {
		name       string
		assistant  []any
		wantStatus int
		wantIn     string
	}{
		{"the thinking block with its signature is accepted", []any{map[string]any{"type": "thinking", "thinking": thinking, "signature": sig}, text}, 200, ""},
		{"the thinking block may be left out", []any{text}, 200, ""},
		{"a redacted thinking block is accepted", []any{map[string]any{"type": "redacted_thinking", "data": "opaque"}, text}, 200, ""},
		{"an edited thinking block is refused", []any{map[string]any{"type": "thinking", "thinking": thinking + " more", "signature": sig}, text}, 400,
			"messages.1.content.0: Invalid `signature` in `thinking` block"},
		{"a thinking block without its signature is refused", []any{map[string]any{"type": "thinking", "thinking": thinking}, text}, 400,
			"messages.1.content.0.thinking.signature: Field required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := post(context.Background(), t, url+"/v1/messages", second(tt.assistant), nil)
			checkStatus(t, res, tt.wantStatus, tt.wantIn)
		})
	}
}

// checkStatus checks a status and, for an error, that the body is the API's
// invalid_request_error carrying want.
func checkStatus(t *testing.T, res *http.Response, wantStatus int, want string) {
	t.Helper()
	if res.StatusCode != wantStatus {
		var e map[string]any
		_ = json.NewDecoder(res.Body).Decode(&e)
		t.Fatalf("status %d (%v), want %d", res.StatusCode, e, wantStatus)
	}
	if wantStatus == 200 {
		return
	}
	var e struct {
		Type  string
		Error struct{ Type, Message string }
	}
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil || e.Type != "error" || e.Error.Type != "invalid_request_error" || !strings.Contains(e.Error.Message, want) {
		t.Errorf("error = %+v (%v), want invalid_request_error containing %q", e, err, want)
	}
}

func TestThinkingAndEffortAreValidatedLikeTheAPI(t *testing.T) {
	effort := func(e string) func(map[string]any) { return set("output_config", map[string]any{"effort": e}) }
	tests := []struct {
		name       string
		model      string
		edits      []func(map[string]any)
		header     http.Header
		wantStatus int
		wantIn     string
	}{
		{name: "a budget below 1024 is refused", edits: a(withThinking(1000, 4096)), wantStatus: 400,
			wantIn: "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"},
		{name: "a budget of 1024 is accepted", edits: a(withThinking(1024, 1025)), wantStatus: 200},
		{name: "a budget equal to max_tokens is refused", edits: a(withThinking(2048, 2048)), wantStatus: 400,
			wantIn: "`max_tokens` must be greater than `thinking.budget_tokens`"},
		{name: "a budget above max_tokens is refused", edits: a(withThinking(4096, 2048)), wantStatus: 400,
			wantIn: "`max_tokens` must be greater than `thinking.budget_tokens`"},
		{name: "a missing budget is refused", edits: a(set("thinking", map[string]any{"type": "enabled"})), wantStatus: 400,
			wantIn: "thinking.enabled.budget_tokens: Field required"},
		{name: "adaptive thinking is not a 4.5 mode", edits: a(set("thinking", map[string]any{"type": "adaptive"})), wantStatus: 400,
			wantIn: "thinking.type"},
		{name: "thinking with temperature 0.3 is refused", edits: a(withThinking(1024, 2048), set("temperature", 0.3)), wantStatus: 400,
			wantIn: "`temperature` may only be set to 1 when thinking is enabled"},
		{name: "thinking with temperature 1 is accepted", edits: a(withThinking(1024, 2048), set("temperature", 1)), wantStatus: 200},
		{name: "thinking with top_k is refused", edits: a(withThinking(1024, 2048), set("top_k", 40)), wantStatus: 400,
			wantIn: "`top_k` must be unset when thinking is enabled"},
		{name: "thinking with top_p 0.9 is refused", edits: a(withThinking(1024, 2048), set("top_p", 0.9)), wantStatus: 400,
			wantIn: "`top_p` must be between 0.95 and 1 when thinking is enabled"},
		{name: "thinking with top_p 0.95 is accepted", edits: a(withThinking(1024, 2048), set("top_p", 0.95)), wantStatus: 200},
		{name: "temperature with top_p is refused on sonnet 4.5", model: sonnet, edits: a(set("temperature", 0.5), set("top_p", 0.9)), wantStatus: 400,
			wantIn: "temperature and top_p cannot both be specified"},
		{name: "temperature with top_p is refused on haiku 4.5 with thinking too", model: haiku, edits: a(withThinking(1024, 2048), set("temperature", 1), set("top_p", 0.99)),
			wantStatus: 400, wantIn: "temperature and top_p cannot both be specified"},
		{name: "thinking on sonnet and haiku is accepted", model: haiku, edits: a(withThinking(1024, 2048)), wantStatus: 200},
		{name: "thinking with an assistant prefill is refused", edits: a(withThinking(1024, 2048), set("messages", []any{
			map[string]any{"role": "user", "content": "hi [[tokens=1]]"},
			map[string]any{"role": "assistant", "content": "Sure,"},
		})), wantStatus: 400, wantIn: "When `thinking` is enabled, a final `assistant` message must start with a thinking block"},
		{name: "an assistant prefill without thinking is accepted", edits: a(set("messages", []any{
			map[string]any{"role": "user", "content": "hi [[tokens=1]]"},
			map[string]any{"role": "assistant", "content": "Sure,"},
		})), wantStatus: 200},
		{name: "effort low on opus 4.5 with the beta header is accepted", edits: a(effort("low")), header: effortBeta, wantStatus: 200},
		{name: "effort among other betas is accepted", edits: a(effort("medium")),
			header: http.Header{"Anthropic-Beta": {"context-management-2025-06-27," + fakemodel.EffortBeta}}, wantStatus: 200},
		{name: "effort with thinking is accepted", edits: a(effort("high"), withThinking(1024, 2048)), header: effortBeta, wantStatus: 200},
		{name: "effort without the beta header is refused", edits: a(effort("low")), wantStatus: 400,
			wantIn: "output_config: Extra inputs are not permitted"},
		{name: "effort on sonnet 4.5 is refused", model: sonnet, edits: a(effort("low")), header: effortBeta, wantStatus: 400,
			wantIn: "This model does not support the effort parameter."},
		{name: "effort on haiku 4.5 is refused", model: haiku, edits: a(effort("high")), header: effortBeta, wantStatus: 400,
			wantIn: "This model does not support the effort parameter."},
		{name: "effort max is not an Opus 4.5 level", edits: a(effort("max")), header: effortBeta, wantStatus: 400,
			wantIn: "output_config.effort: Input should be 'low', 'medium' or 'high'"},
		{name: "an empty effort is refused", edits: a(effort("")), header: effortBeta, wantStatus: 400,
			wantIn: "output_config.effort"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := start(t, fakemodel.Options{})
			b := body("hi [[tokens=1]]", tt.edits...)
			if tt.model != "" {
				b["model"] = tt.model
			}
			checkStatus(t, post(context.Background(), t, url+"/v1/messages", b, tt.header), tt.wantStatus, tt.wantIn)
		})
	}
}

func a(edits ...func(map[string]any)) []func(map[string]any) { return edits }

func TestEffortShortensTheDefaultReply(t *testing.T) {
	tests := []struct {
		name                     string
		effort                   string
		text                     string
		wantThinking, wantDeltas int
	}{
		{name: "no effort is the full default", text: "hi", wantThinking: 32, wantDeltas: 40},
		{name: "high is the same as none", effort: "high", text: "hi", wantThinking: 32, wantDeltas: 40},
		{name: "medium is three quarters", effort: "medium", text: "hi", wantThinking: 24, wantDeltas: 30},
		{name: "low is half", effort: "low", text: "hi", wantThinking: 16, wantDeltas: 20},
		{name: "directives still set exact lengths", effort: "low", text: "hi [[tokens=7]] [[thinking=9]]", wantThinking: 9, wantDeltas: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := start(t, fakemodel.Options{})
			edits := a(withThinking(1024, 4096))
			if tt.effort != "" {
				edits = append(edits, set("output_config", map[string]any{"effort": tt.effort}))
			}
			res := post(context.Background(), t, url+"/v1/messages", body(tt.text, edits...), effortBeta)
			events := readSSE(t, res.Body)
			_, nThinking := blockText(events, "thinking_delta")
			_, nText := blockText(events, "text_delta")
			if nThinking != tt.wantThinking || nText != tt.wantDeltas {
				t.Errorf("%d thinking and %d text deltas, want %d and %d", nThinking, nText, tt.wantThinking, tt.wantDeltas)
			}
		})
	}
}

func TestNonStreamingThinkingIsTheFirstBlock(t *testing.T) {
	_, url := start(t, fakemodel.Options{})
	res := post(context.Background(), t, url+"/v1/messages", body("hi [[tokens=3]] [[thinking=4]]", withThinking(1024, 2048), func(b map[string]any) { delete(b, "stream") }), nil)
	var m struct {
		Content []struct{ Type, Text, Thinking, Signature string }
		Usage   struct {
			OutputTokens int `json:"output_tokens"`
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if len(m.Content) != 2 || m.Content[0].Type != "thinking" || m.Content[0].Thinking != "Stand-in thinking about: hi" ||
		m.Content[0].Signature == "" || m.Content[1].Type != "text" || m.Usage.OutputTokens != 7 {
		t.Errorf("message = %+v, want a thinking block of 4 words with a signature, then the text, 7 output tokens", m)
	}
}

// TestTheSDKReadsThinkingAndEffort drives the stand-in with the real SDK, so
// a field the stand-in names wrongly shows up as a missing value here.
func TestTheSDKReadsThinkingAndEffort(t *testing.T) {
	_, url := start(t, fakemodel.Options{})
	client := anthropic.NewClient(option.WithBaseURL(url), option.WithAPIKey("sk-ant-test"), option.WithMaxRetries(0),
		option.WithHeader("anthropic-beta", fakemodel.EffortBeta))
	stream := client.Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{
		Model:        opus,
		MaxTokens:    2048,
		Thinking:     anthropic.ThinkingConfigParamOfEnabled(1024),
		OutputConfig: anthropic.OutputConfigParam{Effort: anthropic.OutputConfigEffortLow},
		Messages:     []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hello [[tokens=3]] [[thinking=5]]"))},
	})
	var msg anthropic.Message
	for stream.Next() {
		if err := msg.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) != 2 || msg.Content[0].Type != "thinking" || msg.Content[0].Thinking != "Stand-in thinking about: hello The" ||
		msg.Content[0].Signature == "" || msg.Content[1].Text != `Buddy offline stand-in ` || msg.Usage.OutputTokens != 8 {
		t.Errorf("accumulated %+v", msg)
	}

	// The accumulated thinking block goes back as it came.
	second, err := client.Messages.New(context.Background(), anthropic.MessageNewParams{
		Model:     opus,
		MaxTokens: 2048,
		Thinking:  anthropic.ThinkingConfigParamOfEnabled(1024),
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock("hello [[tokens=3]] [[thinking=5]]")),
			msg.ToParam(),
			anthropic.NewUserMessage(anthropic.NewTextBlock("and then? [[tokens=1]] [[thinking=1]]")),
		},
	})
	if err != nil {
		t.Fatalf("second turn with the thinking block sent back: %v", err)
	}
	if second.Usage.OutputTokens != 2 {
		t.Errorf("second turn usage %+v", second.Usage)
	}
}
