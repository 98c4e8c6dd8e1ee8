package wsapi_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/wsapi"
)

func TestParseClientFrame(t *testing.T) {
	long := strings.Repeat("r", wsapi.MaxRequestIDLen)
	tests := []struct {
		name     string
		frame    string
		want     wsapi.ClientFrame
		wantCode string
		wantMsg  string // substring of the message
		wantReq  string // requestId the error answers
	}{
		{
			name:  "sendMessage with every field is accepted",
			frame: `{"action":"sendMessage","requestId":"req-1","conversationId":"01JABCDEFGHJKMNPQRSTVWXYZ0","promptId":"01JABCDEFGHJKMNPQRSTVWXYZ1","text":"Hello <b>&</b> 👋"}`,
			want: wsapi.ClientFrame{Action: "sendMessage", RequestID: "req-1", ConversationID: "01JABCDEFGHJKMNPQRSTVWXYZ0",
				PromptID: "01JABCDEFGHJKMNPQRSTVWXYZ1", Text: "Hello <b>&</b> 👋"},
		},
		{
			name:  "sendMessage without ids starts a conversation",
			frame: ` {"text":"hi","requestId":"a.b_c:d-1","action":"sendMessage"}` + "\n",
			want:  wsapi.ClientFrame{Action: "sendMessage", RequestID: "a.b_c:d-1", Text: "hi"},
		},
		{
			name:  "ids of the wrong shape are carried for the caller to answer not_found",
			frame: `{"action":"sendMessage","requestId":"r","conversationId":"someone-elses","promptId":"../x","text":"hi"}`,
			want:  wsapi.ClientFrame{Action: "sendMessage", RequestID: "r", ConversationID: "someone-elses", PromptID: "../x", Text: "hi"},
		},
		{
			name:  "empty conversationId means a new conversation",
			frame: `{"action":"sendMessage","requestId":"r","conversationId":"","text":"hi"}`,
			want:  wsapi.ClientFrame{Action: "sendMessage", RequestID: "r", Text: "hi"},
		},
		{
			name:  "requestId of the maximum length is accepted",
			frame: `{"action":"sendMessage","requestId":"` + long + `","text":"hi"}`,
			want:  wsapi.ClientFrame{Action: "sendMessage", RequestID: long, Text: "hi"},
		},
		{
			name:  "escaped text is decoded",
			frame: `{"action":"sendMessage","requestId":"r","text":"line\n\"quoted\" \u00e9"}`,
			want:  wsapi.ClientFrame{Action: "sendMessage", RequestID: "r", Text: "line\n\"quoted\" é"},
		},
		{
			name:  "sendMessage with attachments may have no text",
			frame: `{"action":"sendMessage","requestId":"r","attachments":["01JABCDEFGHJKMNPQRSTVWXYZ0","01JABCDEFGHJKMNPQRSTVWXYZ1"]}`,
			want:  wsapi.ClientFrame{Action: "sendMessage", RequestID: "r", Attachments: []string{"01JABCDEFGHJKMNPQRSTVWXYZ0", "01JABCDEFGHJKMNPQRSTVWXYZ1"}},
		},
		{
			name:  "sendMessage with attachments and text",
			frame: `{"action":"sendMessage","requestId":"r","text":"what is this?","attachments":["a"]}`,
			want:  wsapi.ClientFrame{Action: "sendMessage", RequestID: "r", Text: "what is this?", Attachments: []string{"a"}},
		},
		{name: "21 attachments are refused", frame: `{"action":"sendMessage","requestId":"r","attachments":[` + strings.Repeat(`"a",`, 20) + `"b"]}`,
			wantCode: errcode.BadRequest, wantMsg: "1 to 20 distinct upload ids", wantReq: "r"},
		{name: "an empty attachments list is refused", frame: `{"action":"sendMessage","requestId":"r","text":"hi","attachments":[]}`,
			wantCode: errcode.BadRequest, wantMsg: "attachments", wantReq: "r"},
		{name: "the same attachment twice is refused", frame: `{"action":"sendMessage","requestId":"r","attachments":["a","a"]}`,
			wantCode: errcode.BadRequest, wantMsg: "distinct", wantReq: "r"},
		{name: "an attachment that is not a string is refused", frame: `{"action":"sendMessage","requestId":"r","attachments":[7]}`,
			wantCode: errcode.BadRequest, wantMsg: "attachments", wantReq: "r"},
		{name: "attachments on a stop are refused", frame: `{"action":"stop","requestId":"r","messageId":"m","attachments":["a"]}`,
			wantCode: errcode.BadRequest, wantMsg: "attachments", wantReq: "r"},
		{name: "ping is accepted", frame: `{"action":"ping"}`, want: wsapi.ClientFrame{Action: "ping"}},
		{name: "ping with a requestId is accepted", frame: `{"action":"ping","requestId":"p1"}`, want: wsapi.ClientFrame{Action: "ping", RequestID: "p1"}},

		{name: "empty frame is refused", frame: ``, wantCode: errcode.BadRequest, wantMsg: "empty"},
		{name: "invalid JSON is refused", frame: `{"action":"ping",}`, wantCode: errcode.BadRequest, wantMsg: "not valid JSON"},
		{name: "JSON cut off after a key is refused", frame: `{"action":`, wantCode: errcode.BadRequest, wantMsg: "ends early"},
		{name: "single-quoted JSON is refused", frame: `{'action':'ping'}`, wantCode: errcode.BadRequest, wantMsg: "not valid JSON (at offset 1)"},
		{name: "trailing garbage is refused", frame: `{"action":"ping"} x`, wantCode: errcode.BadRequest, wantMsg: "after the JSON object"},
		{name: "a second object is refused", frame: `{"action":"ping"}{"action":"ping"}`, wantCode: errcode.BadRequest, wantMsg: "after the JSON object"},
		{name: "an array is refused", frame: `[{"action":"ping"}]`, wantCode: errcode.BadRequest, wantMsg: "must be a JSON object"},
		{name: "a string is refused", frame: `"ping"`, wantCode: errcode.BadRequest, wantMsg: "must be a JSON object"},
		{name: "null is refused", frame: `null`, wantCode: errcode.BadRequest, wantMsg: "must be a JSON object"},
		{name: "invalid UTF-8 is refused", frame: "{\"action\":\"sendMessage\",\"requestId\":\"r\",\"text\":\"\xff\"}", wantCode: errcode.BadRequest, wantMsg: "UTF-8"},
		{name: "unknown action is refused", frame: `{"action":"deleteEverything","requestId":"r9"}`, wantCode: errcode.BadRequest, wantMsg: "unknown action", wantReq: "r9"},
		{name: "empty action is refused", frame: `{"action":"","requestId":"r9"}`, wantCode: errcode.BadRequest, wantMsg: "unknown action", wantReq: "r9"},
		{name: "action with other case is refused", frame: `{"action":"SendMessage","requestId":"r","text":"hi"}`, wantCode: errcode.BadRequest, wantMsg: "unknown action", wantReq: "r"},
		{name: "missing action is refused", frame: `{"requestId":"r1","text":"hi"}`, wantCode: errcode.BadRequest, wantMsg: `"action" is required`, wantReq: "r1"},
		{name: "missing requestId is refused", frame: `{"action":"sendMessage","text":"hi"}`, wantCode: errcode.BadRequest, wantMsg: `"requestId" is required`},
		{name: "missing text is refused", frame: `{"action":"sendMessage","requestId":"r2"}`, wantCode: errcode.BadRequest, wantMsg: `"text" is required`, wantReq: "r2"},
		{name: "empty text is refused", frame: `{"action":"sendMessage","requestId":"r3","text":""}`, wantCode: errcode.BadRequest, wantMsg: "must not be empty", wantReq: "r3"},
		{name: "blank text is refused", frame: `{"action":"sendMessage","requestId":"r3","text":" \n\t "}`, wantCode: errcode.BadRequest, wantMsg: "must not be empty", wantReq: "r3"},
		{name: "numeric text is refused", frame: `{"action":"sendMessage","requestId":"r4","text":42}`, wantCode: errcode.BadRequest, wantMsg: `"text" must be a string, not a number`, wantReq: "r4"},
		{name: "huge number is a wrong type, not broken JSON", frame: `{"action":"sendMessage","requestId":"r4","text":1e999}`, wantCode: errcode.BadRequest, wantMsg: "not a number", wantReq: "r4"},
		{name: "null conversationId is refused", frame: `{"action":"sendMessage","requestId":"r5","conversationId":null,"text":"hi"}`, wantCode: errcode.BadRequest, wantMsg: "not null", wantReq: "r5"},
		{name: "object action is refused", frame: `{"action":{"name":"ping"}}`, wantCode: errcode.BadRequest, wantMsg: "not an object"},
		{name: "numeric requestId is refused", frame: `{"action":"ping","requestId":7}`, wantCode: errcode.BadRequest, wantMsg: `"requestId" must be a string, not a number`},
		{name: "boolean promptId is refused", frame: `{"action":"sendMessage","requestId":"r","promptId":true,"text":"hi"}`, wantCode: errcode.BadRequest, wantMsg: "not a boolean", wantReq: "r"},
		{name: "unknown field is refused by name", frame: `{"action":"sendMessage","requestId":"r6","text":"hi","modelId":"claude-opus"}`, wantCode: errcode.BadRequest, wantMsg: `unknown field "modelId"`, wantReq: "r6"},
		{
			name:  "sendMessage with a model, thinking and effort",
			frame: `{"action":"sendMessage","requestId":"r","text":"hi","model":"claude-opus-4-5-20251101","thinking":{"budgetTokens":2048},"effort":"low"}`,
			want:  wsapi.ClientFrame{Action: "sendMessage", RequestID: "r", Text: "hi", Model: "claude-opus-4-5-20251101", Thinking: wsapi.Thinking{BudgetTokens: 2048}, Effort: "low"},
		},
		{name: "thinking must be an object", frame: `{"action":"sendMessage","requestId":"r","text":"hi","thinking":2048}`, wantCode: errcode.BadRequest, wantMsg: `"thinking" must be an object`, wantReq: "r"},
		{name: "thinking needs a whole budget", frame: `{"action":"sendMessage","requestId":"r","text":"hi","thinking":{"budgetTokens":1.5}}`, wantCode: errcode.BadRequest, wantMsg: `"thinking" must be an object`, wantReq: "r"},
		{name: "thinking takes budgetTokens only", frame: `{"action":"sendMessage","requestId":"r","text":"hi","thinking":{"budgetTokens":2048,"type":"enabled"}}`, wantCode: errcode.BadRequest, wantMsg: `"thinking" must be an object`, wantReq: "r"},
		{name: "stop is accepted", frame: `{"action":"stop","requestId":"s","messageId":"m"}`, want: wsapi.ClientFrame{Action: "stop", RequestID: "s", MessageID: "m"}},
		{name: "resume is accepted", frame: `{"action":"resume","requestId":"s","messageId":"m","afterSeq":-1}`, want: wsapi.ClientFrame{Action: "resume", RequestID: "s", MessageID: "m", AfterSeq: -1}},
		{name: "resume needs afterSeq", frame: `{"action":"resume","requestId":"s","messageId":"m"}`, wantCode: errcode.BadRequest, wantMsg: `"afterSeq" is required`, wantReq: "s"},
		{name: "afterSeq below -1 is refused", frame: `{"action":"resume","requestId":"s","messageId":"m","afterSeq":-2}`, wantCode: errcode.BadRequest, wantMsg: `"afterSeq" must be a whole number`, wantReq: "s"},
		{name: "stop needs a messageId", frame: `{"action":"stop","requestId":"s"}`, wantCode: errcode.BadRequest, wantMsg: `"messageId" is required`, wantReq: "s"},
		{name: "stop takes no text", frame: `{"action":"stop","requestId":"s","messageId":"m","text":"x"}`, wantCode: errcode.BadRequest, wantMsg: `"text" is not allowed in a "stop" frame`, wantReq: "s"},
		{name: "a model is not for a ping", frame: `{"action":"ping","model":"x"}`, wantCode: errcode.BadRequest, wantMsg: `"model" is not allowed in a "ping" frame`},
		{name: "field with other case is unknown", frame: `{"action":"sendMessage","requestID":"r6","text":"hi"}`, wantCode: errcode.BadRequest, wantMsg: `unknown field "requestID"`},
		{name: "huge unknown field name is cut short", frame: `{"` + strings.Repeat("x", 1000) + `":1}`, wantCode: errcode.BadRequest, wantMsg: `"…`},
		{name: "duplicate field is refused", frame: `{"action":"sendMessage","requestId":"r7","text":"hi","text":"bye"}`, wantCode: errcode.BadRequest, wantMsg: `"text" appears more than once`, wantReq: "r7"},
		{name: "duplicate action is refused", frame: `{"action":"ping","action":"sendMessage"}`, wantCode: errcode.BadRequest, wantMsg: `"action" appears more than once`},
		{name: "over-size frame is too large", frame: `{"action":"sendMessage","requestId":"r","text":"` + strings.Repeat("a", wsapi.MaxMessageBytes) + `"}`, wantCode: errcode.TooLarge, wantMsg: "limit is 131072"},
		{name: "over-size text is too large", frame: `{"action":"sendMessage","requestId":"r8","text":"` + strings.Repeat("a", wsapi.MaxTextBytes+1) + `"}`, wantCode: errcode.TooLarge, wantMsg: "limit is 100000", wantReq: "r8"},
		{name: "text of exactly the limit is accepted", frame: `{"action":"sendMessage","requestId":"r","text":"` + strings.Repeat("a", wsapi.MaxTextBytes) + `"}`,
			want: wsapi.ClientFrame{Action: "sendMessage", RequestID: "r", Text: strings.Repeat("a", wsapi.MaxTextBytes)}},
		{name: "requestId with a space is refused", frame: `{"action":"sendMessage","requestId":"a b","text":"hi"}`, wantCode: errcode.BadRequest, wantMsg: "A-Z a-z 0-9"},
		{name: "requestId with markup is refused", frame: `{"action":"sendMessage","requestId":"<script>","text":"hi"}`, wantCode: errcode.BadRequest, wantMsg: "A-Z a-z 0-9"},
		{name: "requestId with non-ASCII is refused", frame: `{"action":"sendMessage","requestId":"réq","text":"hi"}`, wantCode: errcode.BadRequest, wantMsg: "A-Z a-z 0-9"},
		{name: "empty requestId is refused", frame: `{"action":"sendMessage","requestId":"","text":"hi"}`, wantCode: errcode.BadRequest, wantMsg: "1 to 128"},
		{name: "requestId over the maximum is refused", frame: `{"action":"sendMessage","requestId":"` + long + `x","text":"hi"}`, wantCode: errcode.BadRequest, wantMsg: "1 to 128"},
		{name: "ping with text is refused", frame: `{"action":"ping","requestId":"p2","text":"hi"}`, wantCode: errcode.BadRequest, wantMsg: `"text" is not allowed`, wantReq: "p2"},
		{name: "ping with a bad requestId is refused", frame: `{"action":"ping","requestId":"no spaces"}`, wantCode: errcode.BadRequest, wantMsg: "A-Z a-z 0-9"},
		{name: "requestId is recovered from truncated JSON", frame: `{"requestId":"keep-me","action":"sendMessage","text":"unterminated`, wantCode: errcode.BadRequest, wantMsg: "ends early", wantReq: "keep-me"},
		{name: "requestId is recovered after an earlier bad field", frame: `{"text":false,"requestId":"keep-me","action":"sendMessage"}`, wantCode: errcode.BadRequest, wantMsg: `"text" must be a string`, wantReq: "keep-me"},
		{name: "requestId is recovered from a frame with trailing garbage", frame: `{"action":"sendMessage","requestId":"keep-me","text":"hi"}]`, wantCode: errcode.BadRequest, wantMsg: "after the JSON object", wantReq: "keep-me"},
		{name: "an invalid requestId is never echoed", frame: `{"action":"nope","requestId":"<img src=x>"}`, wantCode: errcode.BadRequest, wantMsg: "unknown action"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, perr := wsapi.ParseClientFrame([]byte(tt.frame))
			if tt.wantCode == "" {
				if perr != nil {
					t.Fatalf("refused: %v", perr)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %+v, want %+v", got, tt.want)
				}
				return
			}
			if perr == nil {
				t.Fatalf("accepted %+v, want %s", got, tt.wantCode)
			}
			if perr.Code != tt.wantCode || !strings.Contains(perr.Message, tt.wantMsg) || perr.RequestID != tt.wantReq {
				t.Errorf("got {%s %q requestId %q}, want {%s containing %q requestId %q}",
					perr.Code, perr.Message, perr.RequestID, tt.wantCode, tt.wantMsg, tt.wantReq)
			}
			if !reflect.DeepEqual(got, wsapi.ClientFrame{}) {
				t.Errorf("a refused frame returned fields: %+v", got)
			}
			if len(perr.Message) > 200 {
				t.Errorf("message of %d bytes; keep error frames small", len(perr.Message))
			}
		})
	}
}

// TestBuiltFramesParseAsTheirWireForm: a frame built in code (as a client
// would send it) is accepted or refused exactly as its JSON encoding is.
func TestBuiltFramesParseAsTheirWireForm(t *testing.T) {
	tests := []struct {
		name     string
		frame    wsapi.ClientFrame
		wantCode string
		wantReq  string
	}{
		{"built sendMessage is valid", wsapi.ClientFrame{Action: wsapi.ActionSendMessage, RequestID: "r", Text: "hi"}, "", ""},
		{"built ping is valid", wsapi.ClientFrame{Action: wsapi.ActionPing}, "", ""},
		{"sendMessage without text is refused with its requestId", wsapi.ClientFrame{Action: wsapi.ActionSendMessage, RequestID: "r"}, errcode.BadRequest, "r"},
		{"over-size text is too large", wsapi.ClientFrame{Action: wsapi.ActionSendMessage, RequestID: "r", Text: strings.Repeat("x", wsapi.MaxTextBytes+1)}, errcode.TooLarge, "r"},
		{"no action is refused", wsapi.ClientFrame{}, errcode.BadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			_, perr := wsapi.ParseClientFrame(b)
			switch {
			case tt.wantCode == "" && perr != nil:
				t.Fatalf("refused: %v", perr)
			case tt.wantCode != "" && perr == nil:
				t.Fatalf("accepted, want %s", tt.wantCode)
			case perr != nil && (perr.Code != tt.wantCode || perr.RequestID != tt.wantReq):
				t.Errorf("got %v, want %s answering %q", perr, tt.wantCode, tt.wantReq)
			}
		})
	}
}

// FuzzParseClientFrame: no input panics; every refusal uses a code the
// parser may use and echoes only a valid requestId; every accepted frame
// validates, and survives being encoded and parsed again unchanged.
func FuzzParseClientFrame(f *testing.F) {
	for _, seed := range []string{
		`{"action":"sendMessage","requestId":"r1","text":"hi"}`,
		`{"action":"sendMessage","requestId":"r1","conversationId":"01JABCDEFGHJKMNPQRSTVWXYZ0","promptId":"x","text":"héllo\n"}`,
		`{"action":"ping"}`,
		`{"action":"ping","requestId":"p"}`,
		`{"action":"ping","text":"x"}`,
		`{"action":"sendMessage","requestId":"r","text":"a","text":"b"}`,
		`{"action":"sendMessage","requestId":"r","text":"\u0000\ud800"}`,
		`{"requestId":"r","extra":{"a":[1,2,{"b":null}]}}`,
		`{"action":1e999}`,
		`{"action":"ping"} {}`,
		`{"action":"sendMessage","requestId":"r","text":"`,
		`[]`, `""`, `null`, ``, ` `, `{`, `}`, `{"":""}`,
		"{\"action\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	codes := map[string]bool{errcode.BadRequest: true, errcode.TooLarge: true}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, perr := wsapi.ParseClientFrame(data)
		if perr != nil {
			if !codes[perr.Code] {
				t.Fatalf("code %q is not one the parser may use", perr.Code)
			}
			if perr.Message == "" {
				t.Fatal("refusal without a message")
			}
			if perr.RequestID != "" && !wsapi.ValidRequestID(perr.RequestID) {
				t.Fatalf("echoes an invalid requestId %q", perr.RequestID)
			}
			return
		}
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		again, perr := wsapi.ParseClientFrame(b)
		if perr != nil {
			t.Fatalf("re-encoded %s is refused: %v", b, perr)
		}
		if !reflect.DeepEqual(again, got) {
			t.Fatalf("round trip changed %+v into %+v", got, again)
		}
	})
}
