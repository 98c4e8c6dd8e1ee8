package wshandler_test

import (
	"context"
	"strings"
	"testing"

	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/wsapi"
)

var knownCodes = map[string]bool{
	errcode.BadRequest: true, errcode.Unauthorized: true, errcode.Forbidden: true, errcode.NotFound: true,
	errcode.TooLarge: true, errcode.QuotaExceeded: true, errcode.RateLimited: true, errcode.UpstreamError: true,
	errcode.Internal: true,
}

// fuzzSeeds are the frames FuzzRoute starts from: each action valid, and
// near-valid variants of it (one field wrong) for the mutator to work
// from. MSG is replaced by the id of a reply that exists (with thinking,
// so a resume replays thinking frames too); 01JD0000000000000000000000 is
// an id that does not.
var fuzzSeeds = []string{
	// ping
	`{"action":"ping"}`,
	`{"action":"ping","requestId":"p1"}`,
	// sendMessage
	`{"action":"sendMessage","requestId":"r1","text":"hello"}`,
	`{"action":"sendMessage","requestId":"r1","text":"hello","conversationId":"01JD0000000000000000000000"}`,
	`{"action":"sendMessage","requestId":"r1","text":"hello","promptId":"x"}`,
	`{"action":"sendMessage","requestId":"r1","text":"[[fault=500]]"}`,
	`{"action":"sendMessage","requestId":"r1","text":"a","text":"b"}`,
	// sendMessage with model: allowed ids, then a retired, a partial, an
	// empty (the default) and a non-string one
	`{"action":"sendMessage","requestId":"m1","text":"hello","model":"claude-sonnet-4-5-20250929"}`,
	`{"action":"sendMessage","requestId":"m1","text":"hello","model":"claude-haiku-4-5-20251001"}`,
	`{"action":"sendMessage","requestId":"m1","text":"hello","model":"claude-3-opus-20240229"}`,
	`{"action":"sendMessage","requestId":"m1","text":"hello","model":"claude-opus-4-5"}`,
	`{"action":"sendMessage","requestId":"m1","text":"hello","model":""}`,
	`{"action":"sendMessage","requestId":"m1","text":"hello","model":7}`,
	// sendMessage with thinking: budgets the default model takes (1024 to
	// MAX_TOKENS-1 = 4095), then the least refused ones and wrong shapes
	`{"action":"sendMessage","requestId":"t1","text":"hello","thinking":{"budgetTokens":1024}}`,
	`{"action":"sendMessage","requestId":"t1","text":"hello","thinking":{"budgetTokens":4095}}`,
	`{"action":"sendMessage","requestId":"t1","text":"hello","model":"claude-haiku-4-5-20251001","thinking":{"budgetTokens":2048}}`,
	`{"action":"sendMessage","requestId":"t1","text":"hello","thinking":{"budgetTokens":1023}}`,
	`{"action":"sendMessage","requestId":"t1","text":"hello","thinking":{"budgetTokens":4096}}`,
	`{"action":"sendMessage","requestId":"t1","text":"hello","thinking":{"budgetTokens":0}}`,
	`{"action":"sendMessage","requestId":"t1","text":"hello","thinking":{"budgetTokens":1024.5}}`,
	`{"action":"sendMessage","requestId":"t1","text":"hello","thinking":{"budgetTokens":"1024"}}`,
	`{"action":"sendMessage","requestId":"t1","text":"hello","thinking":{"budgetTokens":1024,"type":"enabled"}}`,
	`{"action":"sendMessage","requestId":"t1","text":"hello","thinking":{}}`,
	`{"action":"sendMessage","requestId":"t1","text":"hello","thinking":true}`,
	// sendMessage with effort: the levels on the default model (which
	// takes effort), with thinking too, then an unknown level, the wrong
	// case, a model without effort and a number
	`{"action":"sendMessage","requestId":"e1","text":"hello","effort":"low"}`,
	`{"action":"sendMessage","requestId":"e1","text":"hello","effort":"medium"}`,
	`{"action":"sendMessage","requestId":"e1","text":"hello","effort":"high","thinking":{"budgetTokens":1024}}`,
	`{"action":"sendMessage","requestId":"e1","text":"hello","effort":"max"}`,
	`{"action":"sendMessage","requestId":"e1","text":"hello","effort":"LOW"}`,
	`{"action":"sendMessage","requestId":"e1","text":"hello","model":"claude-sonnet-4-5-20250929","effort":"low"}`,
	`{"action":"sendMessage","requestId":"e1","text":"hello","effort":1}`,
	// stop: a reply that exists (and ended), one that does not, then a
	// missing, an empty and a non-string messageId, a field resume has and
	// no requestId
	`{"action":"stop","requestId":"s1","messageId":"MSG"}`,
	`{"action":"stop","requestId":"s1","messageId":"01JD0000000000000000000000"}`,
	`{"action":"stop","requestId":"s1"}`,
	`{"action":"stop","requestId":"s1","messageId":""}`,
	`{"action":"stop","requestId":"s1","messageId":5}`,
	`{"action":"stop","requestId":"s1","messageId":"MSG","afterSeq":0}`,
	`{"action":"stop","messageId":"MSG"}`,
	// resume: from the start, after its thinking frame and past the end
	// of a reply that exists, one that does not, then afterSeq missing,
	// below -1, past int32, a string and a fraction, and a field it does
	// not take
	`{"action":"resume","requestId":"u1","messageId":"MSG","afterSeq":-1}`,
	`{"action":"resume","requestId":"u1","messageId":"MSG","afterSeq":0}`,
	`{"action":"resume","requestId":"u1","messageId":"MSG","afterSeq":100000}`,
	`{"action":"resume","requestId":"u1","messageId":"01JD0000000000000000000000","afterSeq":-1}`,
	`{"action":"resume","requestId":"u1","messageId":"MSG"}`,
	`{"action":"resume","requestId":"u1","messageId":"MSG","afterSeq":-2}`,
	`{"action":"resume","requestId":"u1","messageId":"MSG","afterSeq":2147483648}`,
	`{"action":"resume","requestId":"u1","messageId":"MSG","afterSeq":"0"}`,
	`{"action":"resume","requestId":"u1","messageId":"MSG","afterSeq":0.5}`,
	`{"action":"resume","requestId":"u1","messageId":"MSG","afterSeq":-1,"text":"x"}`,
	// not a frame
	`{"action":"nope"}`, `{`, `[]`, `null`, `"x"`, ``, "\xff\xfe",
}

// FuzzRoute feeds arbitrary frames to the message route: it must never
// panic, always answer 200, and every frame it sends back is a known type
// with a known error code; the frames of a reply (start, thinking, delta,
// end) carry its messageId, and the streamed ones their seq.
func FuzzRoute(f *testing.F) {
	h := newHarness(f, harnessOpts{})
	conn := h.connect("fuzzer")
	reply := ""
	for _, fr := range h.send(conn, `{"action":"sendMessage","requestId":"seed","text":"hello","thinking":{"budgetTokens":1024}}`) {
		if fr.Type == wsapi.TypeStart {
			reply = fr.MessageID
		}
	}
	if reply == "" {
		f.Fatal("the seed reply did not start")
	}
	for _, s := range fuzzSeeds {
		f.Add(strings.ReplaceAll(s, "MSG", reply))
	}
	f.Fuzz(func(t *testing.T, body string) {
		resp, err := h.ws.Route(context.Background(), wsEvent(conn, "$default", body))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("answered %d %v", resp.StatusCode, err)
		}
		for _, fr := range h.posts.take(conn) {
			switch fr.Type {
			case wsapi.TypeStart, wsapi.TypeEnd:
				if fr.MessageID == "" {
					t.Fatalf("%s frame without messageId: %+v", fr.Type, fr)
				}
			case wsapi.TypeDelta, wsapi.TypeThinking:
				if fr.MessageID == "" || fr.Seq == nil {
					t.Fatalf("%s frame without messageId or seq: %+v", fr.Type, fr)
				}
			case wsapi.TypePong:
			case wsapi.TypeError:
				if !knownCodes[fr.Code] || fr.Message == "" {
					t.Fatalf("error frame with unknown code or no message: %+v", fr)
				}
			default:
				t.Fatalf("unknown frame type %+v", fr)
			}
		}
	})
}
