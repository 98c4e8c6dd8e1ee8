package wsapi_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/tokens"
	"github.com/p2/buddy/lambda/wsapi"
)

func TestEncode(t *testing.T) {
	seq0 := 0
	tests := []struct {
		name  string
		frame wsapi.Frame
		want  string
	}{
		{"pong carries only its type", wsapi.Frame{Type: wsapi.TypePong}, `{"type":"pong"}`},
		{"delta 0 keeps its seq", wsapi.Frame{Type: wsapi.TypeDelta, RequestID: "r", ConversationID: "c", Seq: &seq0, Text: "a"},
			`{"type":"delta","requestId":"r","conversationId":"c","seq":0,"text":"a"}`},
		{"markup is not HTML-escaped", wsapi.Frame{Type: wsapi.TypeDelta, Seq: &seq0, Text: "<b>&</b>"},
			`{"type":"delta","seq":0,"text":"<b>&</b>"}`},
		{"end carries every usage count, zeros included", wsapi.Frame{Type: wsapi.TypeEnd, RequestID: "r", StopReason: "end_turn", Usage: &tokens.Usage{InputTokens: 3}},
			`{"type":"end","requestId":"r","stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":0,"cacheReadInputTokens":0,"cacheCreationInputTokens":0,"cacheWrite5mInputTokens":0,"cacheWrite1hInputTokens":0}}`},
		{"error carries code and message", wsapi.Frame{Type: wsapi.TypeError, RequestID: "r", Code: errcode.NotFound, Message: "conversation not found"},
			`{"type":"error","requestId":"r","code":"not_found","message":"conversation not found"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(wsapi.Encode(tt.frame)); got != tt.want {
				t.Errorf("Encode = %s\nwant     %s", got, tt.want)
			}
		})
	}
}

// TestDeltaFramesFitAPIGatewayFrames proves MaxDeltaTextBytes: a delta
// carrying that much of the worst text for JSON (every byte escaped to six)
// with the longest requestId, an id-sized conversationId and the largest seq
// still fits in one API Gateway frame.
func TestDeltaFramesFitAPIGatewayFrames(t *testing.T) {
	n := wsapi.MaxDeltaTextBytes
	tests := []struct {
		name string
		text string
	}{
		{"control bytes, each escaped as \\u00XX", strings.Repeat("\x01", n)},
		{"NUL bytes", strings.Repeat("\x00", n)},
		{"invalid UTF-8, each byte becoming \\ufffd", strings.Repeat("\xff", n)},
		{"line separators, escaped as \\u2028", strings.Repeat("\u2028", n/3)},
		{"quotes and backslashes", strings.Repeat(`"\`, n/2)},
		{"four-byte characters", strings.Repeat("👋", n/4)},
		{"plain ASCII", strings.Repeat("a", n)},
	}
	seq := math.MaxInt
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.text) > n {
				t.Fatalf("test text of %d bytes exceeds MaxDeltaTextBytes", len(tt.text))
			}
			b := wsapi.Encode(wsapi.Frame{
				Type:           wsapi.TypeDelta,
				RequestID:      strings.Repeat("R", wsapi.MaxRequestIDLen),
				ConversationID: "01JABCDEFGHJKMNPQRSTVWXYZ0",
				Seq:            &seq,
				Text:           tt.text,
			})
			if len(b) > wsapi.MaxFrameBytes {
				t.Errorf("encoded delta is %d bytes, over MaxFrameBytes %d", len(b), wsapi.MaxFrameBytes)
			}
			if !json.Valid(b) {
				t.Error("encoded delta is not valid JSON")
			}
		})
	}
}

func TestSplitText(t *testing.T) {
	tests := []struct {
		name string
		text string
		max  int
		want []string
	}{
		{"empty text gives no pieces", "", 4, nil},
		{"short text is one piece", "abc", 4, []string{"abc"}},
		{"text of exactly max is one piece", "abcd", 4, []string{"abcd"}},
		{"ASCII is cut at max", "abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
		{"a two-byte character is not cut", "abcé", 4, []string{"abc", "é"}},
		{"a four-byte character is kept whole", "a👋b", 4, []string{"a", "👋", "b"}},
		{"three-byte characters pack per piece", "€€€", 7, []string{"€€", "€"}},
		{"invalid UTF-8 is cut anywhere, bytes kept", "\x80\x80\x80\x80\x80\x80", 4, []string{"\x80\x80\x80\x80", "\x80\x80"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := wsapi.SplitText(tt.text, tt.max)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("SplitText(%q, %d) = %q, want %q", tt.text, tt.max, got, tt.want)
			}
		})
	}
}

// TestSplitTextForDeltas splits long mixed text the way the relay does and
// checks the three promises a client relies on: the pieces join back to the
// text, each is valid UTF-8, and each makes a frame API Gateway accepts.
func TestSplitTextForDeltas(t *testing.T) {
	var sb strings.Builder
	for sb.Len() < 5*wsapi.MaxDeltaTextBytes {
		sb.WriteString("héllo 👋 \x01\"€\u2028 ")
	}
	text := sb.String()
	pieces := wsapi.SplitText(text, wsapi.MaxDeltaTextBytes)
	if len(pieces) < 5 {
		t.Fatalf("%d pieces for %d bytes", len(pieces), len(text))
	}
	for i, p := range pieces {
		if len(p) > wsapi.MaxDeltaTextBytes || !utf8.ValidString(p) {
			t.Fatalf("piece %d: %d bytes, valid UTF-8 %v", i, len(p), utf8.ValidString(p))
		}
		seq := i
		f := wsapi.Encode(wsapi.Frame{Type: wsapi.TypeDelta, RequestID: "r", ConversationID: "01JABCDEFGHJKMNPQRSTVWXYZ0", Seq: &seq, Text: p})
		if len(f) > wsapi.MaxFrameBytes {
			t.Fatalf("piece %d encodes to %d bytes", i, len(f))
		}
		var back wsapi.Frame
		if err := json.Unmarshal(f, &back); err != nil || back.Text != p {
			t.Fatalf("piece %d does not decode to itself (%v)", i, err)
		}
	}
	if strings.Join(pieces, "") != text {
		t.Error("pieces do not join back to the text")
	}
}

func TestSplitTextRefusesTooSmallMax(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("SplitText with max 3 did not panic; a 4-byte character could never fit")
		}
	}()
	wsapi.SplitText("👋", 3)
}
