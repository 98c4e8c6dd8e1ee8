package claude_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/dev/fakemodel"
	"github.com/p2/buddy/lambda/tokens"
)

// sse renders events as the API frames them.
func sse(events ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(events); i += 2 {
		b.WriteString("event: " + events[i] + "\ndata: " + events[i+1] + "\n\n")
	}
	return b.String()
}

const (
	rawStart = `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-raw","content":[],"stop_reason":null,"usage":{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":7,"cache_creation_input_tokens":3}}}`
	rawBlock = `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`
	rawHello = `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}`
	rawWorld = `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" world"}}`
	rawStop  = `{"type":"content_block_stop","index":0}`
	rawDelta = `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}`
	rawEnd   = `{"type":"message_stop"}`
	rawPing  = `{"type":"ping"}`
)

func TestAnthropicStream(t *testing.T) {
	raw := func(body string) func(int, fakemodel.Request, *fakemodel.Plan) {
		return func(_ int, _ fakemodel.Request, p *fakemodel.Plan) { p.Raw = body }
	}
	tests := []struct {
		name      string
		turn      string
		maxTokens int64
		script    func(int, fakemodel.Request, *fakemodel.Plan)

		wantText    string // exact when set
		wantDeltas  int    // when > 0
		wantModel   string
		wantStop    string
		wantUsage   *tokens.Usage
		wantKind    claude.Kind // "" means success
		wantStatus  int
		wantStarted bool
		wantCalls   int
	}{
		{
			name:       "reply streams in order with usage from message_start and message_delta",
			turn:       "hello there [[tokens=20]]",
			wantText:   `Buddy offline stand-in here. You said: "hello there" This reply is generated on this machine so that the whole path `,
			wantDeltas: 20,
			wantModel:  "standin/claude-opus-4-5-20251101",
			wantStop:   "end_turn",
			wantUsage:  &tokens.Usage{InputTokens: 3, OutputTokens: 20},
			wantCalls:  1,
		},
		{
			name:       "max_tokens caps the reply and is the stop reason",
			turn:       "hi",
			maxTokens:  5,
			wantText:   `Buddy offline stand-in here. You `,
			wantStop:   "max_tokens",
			wantUsage:  &tokens.Usage{InputTokens: 1, OutputTokens: 5},
			wantCalls:  1,
			wantDeltas: 5,
		},
		{
			name: "pings and unknown events are ignored, cache usage is kept",
			turn: "hi",
			script: raw(sse("ping", rawPing, "message_start", rawStart, "buddy_future_event", `{"type":"buddy_future_event","x":1}`,
				"content_block_start", rawBlock, "ping", rawPing, "content_block_delta", rawHello,
				"content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"some_future_delta","text":"not text"}}`,
				"content_block_delta", rawWorld, "content_block_stop", rawStop, "ping", rawPing,
				"message_delta", rawDelta, "message_stop", rawEnd)),
			wantText:  "Hello world",
			wantModel: "claude-raw",
			wantStop:  "end_turn",
			wantUsage: &tokens.Usage{InputTokens: 10, OutputTokens: 2, CacheReadInputTokens: 7, CacheCreationInputTokens: 3},
			wantCalls: 1,
		},
		{
			name: "input and cache counts repeated in message_delta replace message_start's",
			turn: "hi",
			script: raw(sse("message_start", rawStart, "content_block_start", rawBlock, "content_block_delta", rawHello,
				"content_block_stop", rawStop,
				"message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":12,"output_tokens":2,"cache_read_input_tokens":8,"cache_creation_input_tokens":4}}`,
				"message_stop", rawEnd)),
			wantText:  "Hello",
			wantModel: "claude-raw",
			wantStop:  "end_turn",
			wantUsage: &tokens.Usage{InputTokens: 12, OutputTokens: 2, CacheReadInputTokens: 8, CacheCreationInputTokens: 4},
			wantCalls: 1,
		},
		{
			name: "zero input and cache counts in message_delta keep message_start's",
			turn: "hi",
			script: raw(sse("message_start", rawStart, "content_block_start", rawBlock, "content_block_delta", rawHello,
				"content_block_stop", rawStop,
				"message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":0,"output_tokens":2,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}`,
				"message_stop", rawEnd)),
			wantText:  "Hello",
			wantModel: "claude-raw",
			wantStop:  "end_turn",
			wantUsage: &tokens.Usage{InputTokens: 10, OutputTokens: 2, CacheReadInputTokens: 7, CacheCreationInputTokens: 3},
			wantCalls: 1,
		},
		{
			name: "429 with retry-after is retried, then the reply streams",
			turn: "hi [[tokens=3]]",
			script: func(n int, _ fakemodel.Request, p *fakemodel.Plan) {
				if n == 1 {
					p.Status = 429
					p.Header = http.Header{"Retry-After-Ms": {"1"}, "Retry-After": {"0"}}
				}
			},
			wantText:  "Buddy offline stand-in ",
			wantStop:  "end_turn",
			wantCalls: 2,
		},
		{
			name:       "529 on every attempt ends rate_limited once the retries are spent",
			turn:       "hi [[fault=529]]",
			wantKind:   claude.KindRateLimited,
			wantStatus: 529,
			wantCalls:  3,
		},
		{
			name:       "429 on every attempt ends rate_limited once the retries are spent",
			turn:       "hi [[fault=429]]",
			wantKind:   claude.KindRateLimited,
			wantStatus: 429,
			wantCalls:  3,
		},
		{
			name: "429 asking for a wait beyond the cap fails at once",
			turn: "hi",
			script: func(_ int, _ fakemodel.Request, p *fakemodel.Plan) {
				p.Status = 429
				p.Header = http.Header{"Retry-After": {"3600"}}
			},
			wantKind:   claude.KindRateLimited,
			wantStatus: 429,
			wantCalls:  1,
		},
		{
			name:       "500 on every attempt ends upstream_error",
			turn:       "hi [[fault=500]]",
			wantKind:   claude.KindUpstream,
			wantStatus: 500,
			wantCalls:  3,
		},
		{
			name:      "a fault limited to the first attempt is retried away",
			turn:      "hi [[fault=529]] [[times=1]] [[tokens=2]]",
			wantText:  "Buddy offline ",
			wantStop:  "end_turn",
			wantCalls: 2,
		},
		{
			name:       "400 is bad_request and not retried",
			turn:       "hi [[fault=400]]",
			wantKind:   claude.KindBadRequest,
			wantStatus: 400,
			wantCalls:  1,
		},
		{
			name:       "413 is bad_request",
			turn:       "hi [[fault=413]]",
			wantKind:   claude.KindBadRequest,
			wantStatus: 413,
			wantCalls:  1,
		},
		{
			name:       "403 is upstream_error: our configuration, not the user's request",
			turn:       "hi [[fault=403]]",
			wantKind:   claude.KindUpstream,
			wantStatus: 403,
			wantCalls:  1,
		},
		{
			name:        "overloaded error event after text is rate_limited and started",
			turn:        "hi [[fault=midstream]] [[after=3]]",
			wantText:    "Buddy offline stand-in ",
			wantModel:   "standin/claude-opus-4-5-20251101",
			wantUsage:   &tokens.Usage{InputTokens: 3, OutputTokens: 1},
			wantKind:    claude.KindRateLimited,
			wantStarted: true,
			wantCalls:   1,
		},
		{
			name:      "overloaded error event before any text is not started",
			turn:      "hi [[fault=midstream]] [[after=0]]",
			wantText:  "",
			wantModel: "standin/claude-opus-4-5-20251101",
			wantKind:  claude.KindRateLimited,
			wantCalls: 1,
		},
		{
			name: "api_error event after text is upstream_error",
			turn: "hi",
			script: raw(sse("message_start", rawStart, "content_block_start", rawBlock, "content_block_delta", rawHello,
				"error", `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`)),
			wantText:    "Hello",
			wantKind:    claude.KindUpstream,
			wantStarted: true,
			wantCalls:   1,
		},
		{
			name:        "a stream cut before message_stop is upstream_error",
			turn:        "hi",
			script:      raw(sse("message_start", rawStart, "content_block_start", rawBlock, "content_block_delta", rawHello)),
			wantText:    "Hello",
			wantUsage:   &tokens.Usage{InputTokens: 10, OutputTokens: 1, CacheReadInputTokens: 7, CacheCreationInputTokens: 3},
			wantKind:    claude.KindUpstream,
			wantStarted: true,
			wantCalls:   1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm, url := startFake(t, fakemodel.Options{Script: tt.script})
			m := claude.NewAnthropic(claude.AnthropicOptions{Keys: staticKeys("sk-ant-test"), BaseURL: url})
			req := request(tt.turn)
			if tt.maxTokens > 0 {
				req.MaxTokens = tt.maxTokens
			}
			h := &recorder{}
			res, err := m.Stream(context.Background(), req, h)

			if tt.wantKind == "" {
				if err != nil {
					t.Fatalf("Stream: %v", err)
				}
			} else {
				var e *claude.Error
				if !errors.As(err, &e) {
					t.Fatalf("Stream error = %v, want a *claude.Error of kind %s", err, tt.wantKind)
				}
				if e.Kind != tt.wantKind || e.Status != tt.wantStatus || e.Started != tt.wantStarted {
					t.Errorf("error = {Kind %s, Status %d, Started %v}, want {%s, %d, %v} (%v)",
						e.Kind, e.Status, e.Started, tt.wantKind, tt.wantStatus, tt.wantStarted, err)
				}
			}
			if tt.wantText != "" || tt.wantKind != "" {
				if got := h.text(); got != tt.wantText {
					t.Errorf("text = %q, want %q", got, tt.wantText)
				}
			}
			if tt.wantDeltas > 0 && len(h.texts) != tt.wantDeltas {
				t.Errorf("OnText called %d times, want %d", len(h.texts), tt.wantDeltas)
			}
			if tt.wantModel != "" && (h.model != tt.wantModel || res.Model != tt.wantModel || h.starts != 1) {
				t.Errorf("OnStart(%q) ×%d, Result.Model %q; want %q once", h.model, h.starts, res.Model, tt.wantModel)
			}
			if res.StopReason != tt.wantStop {
				t.Errorf("StopReason = %q, want %q", res.StopReason, tt.wantStop)
			}
			if tt.wantUsage != nil && res.Usage != *tt.wantUsage {
				t.Errorf("Usage = %+v, want %+v", res.Usage, *tt.wantUsage)
			}
			if got := fm.Calls(); got != tt.wantCalls {
				t.Errorf("upstream saw %d requests, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestAnthropicRefreshesKeyOnceOn401(t *testing.T) {
	tests := []struct {
		name        string
		serverKey   string
		wantErr     bool
		wantLastKey string
	}{
		{name: "a rotated key is fetched again and the call succeeds", serverKey: "sk-ant-new", wantLastKey: "sk-ant-new"},
		{name: "a second 401 is upstream_error", serverKey: "sk-ant-nobody-has", wantErr: true, wantLastKey: "sk-ant-new"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm, url := startFake(t, fakemodel.Options{APIKey: tt.serverKey})
			keys := &rotatingKeys{keys: []string{"sk-ant-old", "sk-ant-new"}}
			m := claude.NewAnthropic(claude.AnthropicOptions{Keys: keys, BaseURL: url})
			h := &recorder{}
			_, err := m.Stream(context.Background(), request("hi [[tokens=2]]"), h)
			switch {
			case tt.wantErr:
				var e *claude.Error
				if !errors.As(err, &e) || e.Kind != claude.KindUpstream || e.Status != http.StatusUnauthorized {
					t.Errorf("Stream error = %v, want upstream_error with status 401", err)
				}
				if err != nil && strings.Contains(err.Error(), "sk-ant-") {
					t.Errorf("error %q shows an API key", err)
				}
			case err != nil:
				t.Fatalf("Stream: %v", err)
			case h.text() != "Buddy offline ":
				t.Errorf("text = %q", h.text())
			}
			if keys.invalidations != 1 || fm.Calls() != 2 {
				t.Errorf("Invalidate called %d times over %d requests, want once over 2", keys.invalidations, fm.Calls())
			}
			if last, _ := fm.LastRequest(); last.Header.Get("x-api-key") != tt.wantLastKey {
				t.Errorf("last request used another key than %q", tt.wantLastKey)
			}
		})
	}
}

func TestAnthropicStopsUpstreamWhenTheCallerStops(t *testing.T) {
	errStop := errors.New("client left")
	tests := []struct {
		name string
		h    *recorder
		// cancelAt cancels the caller's context with errStop at that text.
		cancelAt  int
		wantTexts int
	}{
		{name: "an OnText error cancels the upstream request", h: &recorder{failAt: 3, textErr: errStop}, wantTexts: 3},
		{name: "an OnStart error cancels the upstream request", h: &recorder{startErr: errStop}, wantTexts: 0},
		{name: "the caller's cancellation cancels the upstream request and carries its cause", h: &recorder{}, cancelAt: 2, wantTexts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm, url := startFake(t, fakemodel.Options{})
			m := claude.NewAnthropic(claude.AnthropicOptions{Keys: staticKeys("sk-ant-test"), BaseURL: url})
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			var h claude.Handler = tt.h
			if tt.cancelAt > 0 {
				h = &cancelling{recorder: tt.h, at: tt.cancelAt, cancel: func() { cancel(errStop) }}
			}
			// The stand-in sends 5 deltas and then holds the stream open, so
			// only our cancellation can end it.
			res, err := m.Stream(ctx, request("hi [[fault=hang]] [[after=5]]"), h)
			if !errors.Is(err, errStop) {
				t.Fatalf("Stream error = %v, want it to wrap %v", err, errStop)
			}
			if len(tt.h.texts) != tt.wantTexts {
				t.Errorf("OnText called %d times, want %d", len(tt.h.texts), tt.wantTexts)
			}
			if res.Model == "" || res.Usage.InputTokens == 0 {
				t.Errorf("Result = %+v, want what message_start counted", res)
			}
			wait := t.Context()
			if err := fm.WaitClientGone(wait, 1); err != nil {
				t.Errorf("upstream stream was not stopped: %v", err)
			}
		})
	}
}

// cancelling cancels the caller's context at the at-th text, as the reply
// job's deadline or a departed client does.
type cancelling struct {
	*recorder
	at     int
	cancel func()
}

func (c *cancelling) OnText(ctx context.Context, text string) error {
	err := c.recorder.OnText(ctx, text)
	if len(c.texts) == c.at {
		c.cancel()
	}
	return err
}

func TestAnthropicIdleTimeout(t *testing.T) {
	tests := []struct {
		name        string
		turn        string
		wantStarted bool
	}{
		{name: "a stream silent after message_start times out", turn: "hi [[fault=hang]]"},
		{name: "a stream silent after some text times out as started", turn: "hi [[fault=hang]] [[after=2]]", wantStarted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm, url := startFake(t, fakemodel.Options{})
			// Long enough that the text before the silence always arrives
			// first, even on a loaded machine under -race.
			m := claude.NewAnthropic(claude.AnthropicOptions{Keys: staticKeys("sk-ant-test"), BaseURL: url, IdleTimeout: time.Second})
			_, err := m.Stream(context.Background(), request(tt.turn), &recorder{})
			var e *claude.Error
			if !errors.As(err, &e) || e.Kind != claude.KindUpstream || !errors.Is(err, claude.ErrIdleTimeout) || e.Started != tt.wantStarted {
				t.Fatalf("Stream error = %#v (%v), want upstream_error wrapping ErrIdleTimeout, Started %v", e, err, tt.wantStarted)
			}
			wait := t.Context()
			if err := fm.WaitClientGone(wait, 1); err != nil {
				t.Errorf("the timed-out stream was not closed: %v", err)
			}
		})
	}
}

func TestAnthropicRequestBody(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name   string
		edit   func(*claude.Request)
		check  func(fakemodel.Request) string // returns a problem, or ""
		reject bool
	}{
		{
			name: "temperature is sent alone with top_k",
			edit: func(r *claude.Request) { r.Temperature, r.TopK = f(0.3), 40 },
			check: func(b fakemodel.Request) string {
				if b.Temperature == nil || *b.Temperature != 0.3 || b.Has("top_p") || b.TopK == nil || *b.TopK != 40 {
					return "want temperature 0.3, top_k 40, no top_p"
				}
				return ""
			},
		},
		{
			name: "top_p is sent alone",
			edit: func(r *claude.Request) { r.Temperature, r.TopP = nil, f(0.9) },
			check: func(b fakemodel.Request) string {
				if b.Has("temperature") || b.TopP == nil || *b.TopP != 0.9 {
					return "want top_p 0.9 and no temperature"
				}
				return ""
			},
		},
		{
			name: "top_k 0 and no sampling fields are omitted",
			edit: func(r *claude.Request) { r.Temperature, r.TopK = nil, 0 },
			check: func(b fakemodel.Request) string {
				for _, k := range []string{"top_k", "temperature", "top_p"} {
					if b.Has(k) {
						return k + " was sent"
					}
				}
				return ""
			},
		},
		{
			name: "an empty system prompt is omitted",
			edit: func(r *claude.Request) { r.System = "" },
			check: func(b fakemodel.Request) string {
				if b.Has("system") {
					return "system was sent"
				}
				return ""
			},
		},
		{
			name: "system, model, max_tokens and the turns are sent in order",
			edit: func(r *claude.Request) {
				r.System, r.MaxTokens = "Be brief.", 77
				r.Turns = []claude.Turn{{Role: "user", Text: "one"}, {Role: "assistant", Text: "two"}, {Role: "user", Text: "three"}}
			},
			check: func(b fakemodel.Request) string {
				var got []string
				for _, m := range b.Messages {
					got = append(got, m.Role+":"+m.Content.Text())
				}
				if b.System.Text() != "Be brief." || b.Model != "claude-opus-4-5-20251101" || b.MaxTokens != 77 || !b.Stream ||
					strings.Join(got, ",") != "user:one,assistant:two,user:three" {
					return "got system " + b.System.Text() + ", model " + b.Model + ", turns " + strings.Join(got, ",")
				}
				return ""
			},
		},
		{
			name:   "temperature with top_p is rejected before any call",
			edit:   func(r *claude.Request) { r.Temperature, r.TopP = f(0.3), f(0.9) },
			reject: true,
		},
		{
			name:   "a turn with an unknown role is rejected before any call",
			edit:   func(r *claude.Request) { r.Turns = append(r.Turns, claude.Turn{Role: "system", Text: "x"}) },
			reject: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm, url := startFake(t, fakemodel.Options{Tokens: 1})
			m := claude.NewAnthropic(claude.AnthropicOptions{Keys: staticKeys("sk-ant-test"), BaseURL: url})
			req := request("hi")
			tt.edit(&req)
			_, err := m.Stream(context.Background(), req, &recorder{})
			if tt.reject {
				if claude.KindOf(err) != claude.KindBadRequest || fm.Calls() != 0 {
					t.Errorf("Stream error = %v after %d calls, want bad_request and no call", err, fm.Calls())
				}
				return
			}
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			body, ok := fm.LastRequest()
			if !ok {
				t.Fatal("no request recorded")
			}
			if problem := tt.check(body); problem != "" {
				t.Errorf("request body: %s", problem)
			}
		})
	}
}

func TestAnthropicNetworkErrorIsUpstream(t *testing.T) {
	// A port that was just free: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	m := claude.NewAnthropic(claude.AnthropicOptions{Keys: staticKeys("sk-ant-test"), BaseURL: url, MaxRetries: -1})
	_, err = m.Stream(context.Background(), request("hi"), &recorder{})
	var e *claude.Error
	if !errors.As(err, &e) || e.Kind != claude.KindUpstream || e.Status != 0 {
		t.Errorf("Stream error = %v, want upstream_error without status", err)
	}
}

func TestAnthropicWithoutKeySourceFails(t *testing.T) {
	fm, url := startFake(t, fakemodel.Options{})
	m := claude.NewAnthropic(claude.AnthropicOptions{BaseURL: url})
	_, err := m.Stream(context.Background(), request("hi"), &recorder{})
	if claude.KindOf(err) != claude.KindUpstream || fm.Calls() != 0 {
		t.Errorf("Stream error = %v after %d calls, want upstream_error and no call", err, fm.Calls())
	}
}
