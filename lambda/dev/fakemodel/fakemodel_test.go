package fakemodel_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/p2/buddy/lambda/dev/fakemodel"
)

func start(t *testing.T, opts fakemodel.Options) (*fakemodel.Server, string) {
	t.Helper()
	fm := fakemodel.New(opts)
	ts := httptest.NewServer(fm)
	t.Cleanup(func() { fm.Close(); ts.Close() })
	return fm, ts.URL
}

func body(text string, edits ...func(map[string]any)) map[string]any {
	b := map[string]any{
		"model":      "claude-opus-4-5-20251101",
		"max_tokens": 1024,
		"stream":     true,
		"messages":   []any{map[string]any{"role": "user", "content": text}},
	}
	for _, e := range edits {
		e(b)
	}
	return b
}

func post(ctx context.Context, t *testing.T, url string, b any, header http.Header) *http.Response {
	t.Helper()
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("x-api-key", "sk-ant-test")
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

type event struct {
	name string
	data map[string]any
}

// readSSE parses a whole text/event-stream body, checking that every
// event's data.type equals its name, as the API guarantees.
func readSSE(t *testing.T, r io.Reader) []event {
	t.Helper()
	var events []event
	var name string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var data map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &data); err != nil {
				t.Fatalf("event %s: data is not JSON: %v", name, err)
			}
			if data["type"] != name {
				t.Errorf("event %s carries data.type %v", name, data["type"])
			}
			events = append(events, event{name, data})
		case line == "":
		default:
			t.Errorf("unexpected line %q", line)
		}
	}
	return events
}

func names(events []event) string {
	var out []string
	for _, e := range events {
		out = append(out, e.name)
	}
	return strings.Join(out, ",")
}

func deltaText(events []event) (text string, n int) {
	for _, e := range events {
		if e.name == "content_block_delta" {
			text += e.data["delta"].(map[string]any)["text"].(string)
			n++
		}
	}
	return text, n
}

func TestStreamFollowsTheMessagesProtocol(t *testing.T) {
	_, url := start(t, fakemodel.Options{})
	res := post(context.Background(), t, url+"/v1/messages", body("Tell me about Go please [[tokens=17]]", func(b map[string]any) {
		b["system"] = "Be brief."
	}), nil)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	events := readSSE(t, res.Body)
	want := "message_start,content_block_start,ping" + strings.Repeat(",content_block_delta", 16) + ",ping,content_block_delta" +
		",content_block_stop,message_delta,message_stop"
	if got := names(events); got != want {
		t.Fatalf("events:\n got  %s\n want %s", got, want)
	}
	msg := events[0].data["message"].(map[string]any)
	usage := msg["usage"].(map[string]any)
	if msg["model"] != "standin/claude-opus-4-5-20251101" || usage["input_tokens"] != float64(8) {
		t.Errorf("message_start = %v, want the stand-in model and 8 input tokens (words of system and messages)", msg)
	}
	text, n := deltaText(events)
	if wantText := `Buddy offline stand-in here. You said: "Tell me about Go please" This reply is generated on this `; text != wantText {
		t.Errorf("text = %q, want %q", text, wantText)
	}
	md := events[len(events)-2].data
	if md["delta"].(map[string]any)["stop_reason"] != "end_turn" || md["usage"].(map[string]any)["output_tokens"] != float64(n) {
		t.Errorf("message_delta = %v, want end_turn and output_tokens %d", md, n)
	}
}

func TestDirectives(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		maxTokens int
		// sends is how many identical requests are made; the last is checked.
		sends      int
		wantStatus int
		wantError  string // error type of the JSON body or of the error event
		wantDeltas int
		wantStop   string
		wantEnd    string // name of the last event of a 200
	}{
		{name: "tokens sets the reply length", text: "hi [[tokens=3]]", wantStatus: 200, wantDeltas: 3, wantStop: "end_turn", wantEnd: "message_stop"},
		{name: "max_tokens caps the reply", text: "hi [[tokens=10]]", maxTokens: 4, wantStatus: 200, wantDeltas: 4, wantStop: "max_tokens", wantEnd: "message_stop"},
		{name: "the default length is DefaultTokens", text: "hi", wantStatus: 200, wantDeltas: fakemodel.DefaultTokens, wantStop: "end_turn", wantEnd: "message_stop"},
		{name: "rate and ttft pace but deliver the whole reply", text: "hi [[rate=2000]] [[ttft=1]] [[tokens=3]]", wantStatus: 200, wantDeltas: 3, wantStop: "end_turn", wantEnd: "message_stop"},
		{name: "tokens=0 is an empty reply", text: "hi [[tokens=0]]", wantStatus: 200, wantDeltas: 0, wantStop: "end_turn", wantEnd: "message_stop"},
		{name: "fault=429 is a rate_limit_error", text: "hi [[fault=429]]", wantStatus: 429, wantError: "rate_limit_error"},
		{name: "fault=529 is an overloaded_error", text: "hi [[fault=529]]", wantStatus: 529, wantError: "overloaded_error"},
		{name: "fault=500 is an api_error", text: "hi [[fault=500]]", wantStatus: 500, wantError: "api_error"},
		{name: "fault=midstream sends half the reply then an overloaded error event", text: "hi [[fault=midstream]] [[tokens=6]]", wantStatus: 200, wantDeltas: 3, wantError: "overloaded_error", wantEnd: "error"},
		{name: "after moves the midstream fault", text: "hi [[fault=midstream]] [[after=1]]", wantStatus: 200, wantDeltas: 1, wantError: "overloaded_error", wantEnd: "error"},
		{name: "times=1 lets the second identical request through", text: "hi [[fault=529]] [[times=1]] [[tokens=2]]", sends: 2, wantStatus: 200, wantDeltas: 2, wantStop: "end_turn", wantEnd: "message_stop"},
		{name: "times=2 still faults the second identical request", text: "hi [[fault=529]] [[times=2]]", sends: 2, wantStatus: 529, wantError: "overloaded_error"},
		{name: "an unknown directive is refused", text: "hi [[frobnicate=1]]", wantStatus: 400, wantError: "invalid_request_error"},
		{name: "a bad fault is refused", text: "hi [[fault=sometimes]]", wantStatus: 400, wantError: "invalid_request_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := start(t, fakemodel.Options{})
			b := body(tt.text, func(b map[string]any) {
				if tt.maxTokens > 0 {
					b["max_tokens"] = tt.maxTokens
				}
			})
			var res *http.Response
			for range max(1, tt.sends) {
				res = post(context.Background(), t, url+"/v1/messages", b, nil)
			}
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if res.StatusCode != 200 {
				var e struct {
					Type  string
					Error struct{ Type, Message string }
				}
				if err := json.NewDecoder(res.Body).Decode(&e); err != nil || e.Type != "error" || e.Error.Type != tt.wantError || e.Error.Message == "" {
					t.Errorf("error body = %+v (%v), want type %s", e, err, tt.wantError)
				}
				if ra := res.Header.Get("retry-after"); (tt.wantStatus >= 429) != (ra == "0") {
					t.Errorf("retry-after = %q for status %d", ra, tt.wantStatus)
				}
				return
			}
			events := readSSE(t, res.Body)
			if _, n := deltaText(events); n != tt.wantDeltas {
				t.Errorf("%d deltas, want %d", n, tt.wantDeltas)
			}
			last := events[len(events)-1]
			if last.name != tt.wantEnd {
				t.Fatalf("stream ends with %s, want %s", last.name, tt.wantEnd)
			}
			if tt.wantEnd == "error" {
				if got := last.data["error"].(map[string]any)["type"]; got != tt.wantError {
					t.Errorf("error event type %v, want %s", got, tt.wantError)
				}
				return
			}
			if stop := events[len(events)-2].data["delta"].(map[string]any)["stop_reason"]; stop != tt.wantStop {
				t.Errorf("stop_reason %v, want %s", stop, tt.wantStop)
			}
		})
	}
}

func TestHangHoldsTheStreamUntilTheClientLeaves(t *testing.T) {
	fm, url := start(t, fakemodel.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	res := post(ctx, t, url+"/v1/messages", body("hi [[fault=hang]] [[after=2]]"), nil)
	sc := bufio.NewScanner(res.Body)
	var deltas int
	for deltas < 2 && sc.Scan() {
		if sc.Text() == "event: content_block_delta" {
			deltas++
		}
	}
	if fm.ClientGone() != 0 {
		t.Fatal("a client counted as gone while still reading")
	}
	cancel()
	wait := t.Context()
	if err := fm.WaitClientGone(wait, 1); err != nil {
		t.Fatal(err)
	}
}

func TestRequestsAreValidatedLikeTheAPI(t *testing.T) {
	tests := []struct {
		name       string
		opts       fakemodel.Options
		method     string
		path       string
		header     http.Header
		edit       func(map[string]any)
		wantStatus int
		wantType   string
		wantIn     string
	}{
		{name: "a missing anthropic-version is refused", header: http.Header{"Anthropic-Version": {""}}, wantStatus: 400, wantType: "invalid_request_error", wantIn: "anthropic-version"},
		{name: "a missing API key is unauthorized", header: http.Header{"X-Api-Key": {""}}, wantStatus: 401, wantType: "authentication_error"},
		{name: "a wrong API key is unauthorized", opts: fakemodel.Options{APIKey: "sk-ant-right"}, wantStatus: 401, wantType: "authentication_error"},
		{name: "the expected API key is accepted", opts: fakemodel.Options{APIKey: "sk-ant-test"}, wantStatus: 200},
		{name: "temperature with top_p is refused", edit: func(b map[string]any) { b["temperature"], b["top_p"] = 0.3, 0.9 }, wantStatus: 400, wantType: "invalid_request_error", wantIn: "temperature and top_p cannot both be specified"},
		{name: "temperature above 1 is refused", edit: func(b map[string]any) { b["temperature"] = 1.5 }, wantStatus: 400, wantType: "invalid_request_error", wantIn: "temperature"},
		{name: "a missing model is refused", edit: func(b map[string]any) { delete(b, "model") }, wantStatus: 400, wantType: "invalid_request_error", wantIn: "model"},
		{name: "a missing max_tokens is refused", edit: func(b map[string]any) { delete(b, "max_tokens") }, wantStatus: 400, wantType: "invalid_request_error", wantIn: "max_tokens"},
		{name: "missing messages are refused", edit: func(b map[string]any) { delete(b, "messages") }, wantStatus: 400, wantType: "invalid_request_error", wantIn: "messages"},
		{name: "an unknown role is refused", edit: func(b map[string]any) { b["messages"] = []any{map[string]any{"role": "system", "content": "x"}} }, wantStatus: 400, wantType: "invalid_request_error", wantIn: "role"},
		{name: "an empty text block is refused", edit: func(b map[string]any) { b["messages"] = []any{map[string]any{"role": "user", "content": ""}} }, wantStatus: 400, wantType: "invalid_request_error", wantIn: "non-empty"},
		{name: "content blocks are accepted", edit: func(b map[string]any) {
			b["messages"] = []any{map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": "hi"}}}}
		}, wantStatus: 200},
		{name: "GET is not allowed", method: http.MethodGet, wantStatus: 405, wantType: "invalid_request_error"},
		{name: "an unknown path is not found", path: "/v1/complete", wantStatus: 404, wantType: "not_found_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := start(t, tt.opts)
			b := body("hi [[tokens=1]]")
			if tt.edit != nil {
				tt.edit(b)
			}
			path := "/v1/messages"
			if tt.path != "" {
				path = tt.path
			}
			var res *http.Response
			if tt.method == http.MethodGet {
				r, err := http.Get(url + path)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Body.Close()
				res = r
			} else {
				res = post(context.Background(), t, url+path, b, tt.header)
			}
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus == 200 {
				return
			}
			var e struct {
				Error struct{ Type, Message string }
			}
			if err := json.NewDecoder(res.Body).Decode(&e); err != nil || e.Error.Type != tt.wantType || !strings.Contains(e.Error.Message, tt.wantIn) {
				t.Errorf("error = %+v (%v), want type %s with %q", e.Error, err, tt.wantType, tt.wantIn)
			}
		})
	}
}

func TestNonStreamingRequestGetsOneMessage(t *testing.T) {
	_, url := start(t, fakemodel.Options{})
	res := post(context.Background(), t, url+"/v1/messages", body("hi [[tokens=3]]", func(b map[string]any) { delete(b, "stream") }), nil)
	var m struct {
		Type, Model string
		StopReason  string `json:"stop_reason"`
		Content     []struct{ Type, Text string }
		Usage       struct {
			InputTokens  int `json:"input_tokens"`
			OutputTokens int `json:"output_tokens"`
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if m.Type != "message" || m.Model != "standin/claude-opus-4-5-20251101" || m.StopReason != "end_turn" || len(m.Content) != 1 ||
		m.Content[0].Text != "Buddy offline stand-in " || m.Usage.OutputTokens != 3 || m.Usage.InputTokens != 2 {
		t.Errorf("message = %+v", m)
	}
}

func TestScriptAndObservations(t *testing.T) {
	fm, url := start(t, fakemodel.Options{Script: func(n int, req fakemodel.Request, p *fakemodel.Plan) {
		if n == 1 {
			p.Status = 429
			p.Header = http.Header{"Retry-After-Ms": {"1"}}
		}
		p.Tokens = 2
	}})
	first := post(context.Background(), t, url+"/v1/messages", body("one"), nil)
	if first.StatusCode != 429 || first.Header.Get("retry-after-ms") != "1" || first.Header.Get("retry-after") != "" {
		t.Errorf("first call: status %d, retry-after-ms %q, retry-after %q; want the scripted 429 only",
			first.StatusCode, first.Header.Get("retry-after-ms"), first.Header.Get("retry-after"))
	}
	second := post(context.Background(), t, url+"/v1/messages", body("two", func(b map[string]any) { b["top_k"] = 40 }), nil)
	if _, n := deltaText(readSSE(t, second.Body)); second.StatusCode != 200 || n != 2 {
		t.Errorf("second call: status %d with %d deltas, want the scripted 200 with 2", second.StatusCode, n)
	}
	reqs := fm.Requests()
	last, _ := fm.LastRequest()
	if fm.Calls() != 2 || len(reqs) != 2 || reqs[0].Messages[0].Content.Text() != "one" || !last.Has("top_k") || *last.TopK != 40 || last.Has("temperature") {
		t.Errorf("calls %d, requests %+v", fm.Calls(), reqs)
	}
	if last.Header.Get("X-Api-Key") != "sk-ant-test" {
		t.Error("the request headers were not recorded")
	}
}

// readEventStream decodes Bedrock's event stream into the API events its
// chunks carry; an exception ends it as an event named after its type.
func readEventStream(t *testing.T, r io.Reader) []event {
	t.Helper()
	dec := eventstream.NewDecoder()
	var events []event
	for {
		msg, err := dec.Decode(r, nil)
		if err == io.EOF {
			return events
		}
		if err != nil {
			t.Fatalf("decode event stream: %v", err)
		}
		switch msg.Headers.Get(":message-type").String() {
		case "event":
			var chunk struct{ Bytes string }
			if err := json.Unmarshal(msg.Payload, &chunk); err != nil {
				t.Fatal(err)
			}
			raw, err := base64.StdEncoding.DecodeString(chunk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			var data map[string]any
			if err := json.Unmarshal(raw, &data); err != nil {
				t.Fatal(err)
			}
			events = append(events, event{data["type"].(string), data})
		case "exception":
			events = append(events, event{name: msg.Headers.Get(":exception-type").String()})
		}
	}
}

func TestBedrockPath(t *testing.T) {
	const path = "/model/us.anthropic.claude-opus-4-5-20251101-v1%3A0/invoke-with-response-stream"
	signed := http.Header{"Authorization": {"AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00"}}
	bedrockBody := func(text string, edits ...func(map[string]any)) map[string]any {
		b := body(text, func(b map[string]any) {
			delete(b, "model")
			delete(b, "stream")
			b["anthropic_version"] = "bedrock-2023-05-31"
		})
		for _, e := range edits {
			e(b)
		}
		return b
	}
	tests := []struct {
		name       string
		header     http.Header
		body       map[string]any
		wantStatus int
		wantEvents string
	}{
		{name: "the reply streams as event-stream chunks without pings", header: signed, body: bedrockBody("hi [[tokens=2]]"), wantStatus: 200,
			wantEvents: "message_start,content_block_start,content_block_delta,content_block_delta,content_block_stop,message_delta,message_stop"},
		{name: "a midstream fault is a throttling exception", header: signed, body: bedrockBody("hi [[fault=midstream]] [[after=1]]"), wantStatus: 200,
			wantEvents: "message_start,content_block_start,content_block_delta,throttlingException"},
		{name: "an unsigned request is refused", body: bedrockBody("hi"), wantStatus: 403},
		{name: "a model in the body is refused", header: signed, body: bedrockBody("hi", func(b map[string]any) { b["model"] = "x" }), wantStatus: 400},
		{name: "a missing anthropic_version is refused", header: signed, body: bedrockBody("hi", func(b map[string]any) { delete(b, "anthropic_version") }), wantStatus: 400},
		{name: "fault=429 is a ThrottlingException", header: signed, body: bedrockBody("hi [[fault=429]]"), wantStatus: 429},
		{name: "thinking streams first on Bedrock too", header: signed, wantStatus: 200,
			body: bedrockBody("hi [[tokens=1]] [[thinking=2]]", func(b map[string]any) {
				b["thinking"] = map[string]any{"type": "enabled", "budget_tokens": 1024}
				b["max_tokens"] = 2048
			}),
			wantEvents: "message_start,content_block_start,content_block_delta,content_block_delta,content_block_delta,content_block_stop," +
				"content_block_start,content_block_delta,content_block_stop,message_delta,message_stop"},
		{name: "effort takes its beta flag in the body on Bedrock", header: signed, wantStatus: 200,
			body: bedrockBody("hi [[tokens=1]]", func(b map[string]any) {
				b["output_config"] = map[string]any{"effort": "low"}
				b["anthropic_beta"] = []string{fakemodel.EffortBeta}
			}),
			wantEvents: "message_start,content_block_start,content_block_delta,content_block_stop,message_delta,message_stop"},
		{name: "effort without its beta flag is refused on Bedrock", header: signed, wantStatus: 400,
			body: bedrockBody("hi [[tokens=1]]", func(b map[string]any) { b["output_config"] = map[string]any{"effort": "low"} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm, url := start(t, fakemodel.Options{})
			res := post(context.Background(), t, url+path, tt.body, tt.header)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if res.StatusCode != 200 {
				var e struct{ Message string }
				if err := json.NewDecoder(res.Body).Decode(&e); err != nil || e.Message == "" || res.Header.Get("x-amzn-ErrorType") == "" {
					t.Errorf("error = %+v (%v) type %q, want Bedrock's {message} and x-amzn-ErrorType", e, err, res.Header.Get("x-amzn-ErrorType"))
				}
				return
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/vnd.amazon.eventstream" {
				t.Errorf("content type %q", ct)
			}
			events := readEventStream(t, res.Body)
			if got := names(events); got != tt.wantEvents {
				t.Errorf("events:\n got  %s\n want %s", got, tt.wantEvents)
			}
			if model := events[0].data["message"].(map[string]any)["model"]; model != "standin/us.anthropic.claude-opus-4-5-20251101-v1:0" {
				t.Errorf("model %v, want the stand-in of the path's model", model)
			}
			if last, _ := fm.LastRequest(); !last.Bedrock || last.Model != "us.anthropic.claude-opus-4-5-20251101-v1:0" || !last.Stream {
				t.Errorf("recorded %+v", last)
			}
		})
	}
}

func TestRequestsKeepsTheMostRecent(t *testing.T) {
	fm, url := start(t, fakemodel.Options{Tokens: 1})
	const sent = 70
	for i := range sent {
		post(context.Background(), t, url+"/v1/messages", body(fmt.Sprintf("message %d", i)), nil)
	}
	reqs := fm.Requests()
	if len(reqs) == 0 || len(reqs) >= sent || reqs[len(reqs)-1].Messages[0].Content.Text() != fmt.Sprintf("message %d", sent-1) {
		t.Errorf("kept %d requests, want fewer than %d ending with the last", len(reqs), sent)
	}
}
